"""Node pool fields set only at creation (VM size, taints) and FPGA regions are judged in plan, on the fakes.

A pool endpointkit made and nothing else uses is replaced (plan says so); any other pool is never changed, so
plan itself refuses, naming the field, both values and the fix, before any mutating call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.spec import Spec
from tests.fakes.arm import GATEWAY_INGRESS_PROFILE
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def their_cluster(azure: FakeAzure) -> None:
    """A cluster someone else made, with the Gateway API add-on (app routing's Istio implementation) on."""
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": GATEWAY_INGRESS_PROFILE})


T4 = "Standard_NC4as_T4_v3"
A100 = "Standard_NC24ads_A100_v4"


def writes(azure: FakeAzure) -> tuple[int, int]:
    """(ARM resource writes, Kubernetes writes) so far."""
    kube = [r for r in azure.kube.calls() if r[0] in ("PATCH", "DELETE", "POST", "PUT")]
    return len(azure.arm.writes), len(kube)


def on_pool(azure: FakeAzure, repository: Path, vm_size: str, **fields: Any) -> Spec:
    target = {"create_cluster": False, "node_pool": {"name": "gpu", "vm_size": vm_size, "count": 2}}
    return aks_spec(repository, azure.arm.url, target=target, **fields)


def test_a_vm_size_change_on_someone_elses_pool_is_refused_in_plan(
    azure: FakeAzure, repository: Path
) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size=T4, count=2)
    spec = on_pool(azure, repository, T4)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
        before = writes(azure)
        with pytest.raises(ek.ConflictError) as caught:
            ek.plan(on_pool(azure, repository, A100), adapter=adapter)
        message = str(caught.value)
        assert f"vm_size is {T4}, the spec needs {A100}" in message
        assert "endpointkit did not create it" in message
        assert f"set targets.azure.node_pool.vm_size: {T4}" in message
        assert caught.value.details["fields"] == {"vm_size": [T4, A100]}
        assert writes(azure) == before


def test_a_spec_refused_in_plan_can_still_be_destroyed(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size=T4, count=2)
    spec = on_pool(azure, repository, T4)
    edited = on_pool(azure, repository, A100)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
        with pytest.raises(ek.ConflictError):
            ek.apply(edited, adapter=adapter)
        assert ek.destroy(edited, adapter=adapter)
        assert ek.status(spec, adapter=adapter) is None


def test_a_vm_size_change_on_a_shared_pool_is_refused_in_plan(azure: FakeAzure, repository: Path) -> None:
    first = aks_spec(repository, azure.arm.url)
    second = aks_spec(repository, azure.arm.url, name="detector")
    with azure.adapter(first.targets["azure"]) as adapter:
        ek.apply(first, adapter=adapter)
        ek.apply(second, adapter=adapter)
        before = writes(azure)
        bigger = aks_spec(
            repository, azure.arm.url, target={"node_pool": {"name": "gpu", "vm_size": A100, "count": 2}}
        )
        with pytest.raises(ek.ConflictError, match="endpoints detector run on it") as caught:
            ek.plan(bigger, adapter=adapter)
        assert f"vm_size is {T4}, the spec needs {A100}" in str(caught.value)
        assert writes(azure) == before


def test_a_taint_the_pods_do_not_tolerate_is_refused_in_plan(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size=T4, count=2)
    pool = azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]
    pool["nodeTaints"] = ["sku=gpu:NoSchedule", "team=batch:NoSchedule"]
    spec = on_pool(azure, repository, T4)
    with azure.adapter(spec.targets["azure"]) as adapter:
        with pytest.raises(ek.ConflictError) as caught:
            ek.plan(spec, adapter=adapter)
        message = str(caught.value)
        assert (
            "taints is [sku=gpu:NoSchedule, team=batch:NoSchedule], the spec needs [sku=gpu:NoSchedule]"
            in message
        )
        assert "choose another targets.azure.node_pool.name" in message
        assert writes(azure) == (0, 0)


def test_someone_elses_pool_without_the_sku_taint_still_serves(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size=T4, count=2)
    azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]["nodeTaints"] = []
    spec = on_pool(azure, repository, T4)
    with azure.adapter(spec.targets["azure"]) as adapter:
        assert ek.apply(spec, adapter=adapter).status is ek.EndpointStatus.IN_SERVICE
        assert azure.arm.writes == []


def test_a_changed_taint_on_our_own_pool_plans_a_replace(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
        azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]["nodeTaints"] = [
            "nvidia.com/gpu=true:NoSchedule"
        ]
        [change] = [c for c in ek.plan(spec, adapter=adapter).changes if c.resource == "endpoint"]
        assert change.action == "replace"
        assert (
            "taints is [nvidia.com/gpu=true:NoSchedule], the spec needs [sku=gpu:NoSchedule]" in change.reason
        )
        assert ek.apply(spec, adapter=adapter).status is ek.EndpointStatus.IN_SERVICE
        assert azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]["nodeTaints"] == ["sku=gpu:NoSchedule"]


def test_fpga_on_a_cluster_in_a_region_without_np_vms_is_refused_before_any_write(
    azure: FakeAzure, repository: Path
) -> None:
    azure.arm.location = "northeurope"
    their_cluster(azure)
    spec = aks_spec(
        repository,
        azure.arm.url,
        variants=[{"name": "primary", "accelerator": "fpga", "instance_count": 1}],
        target={
            "create_cluster": False,
            "location": None,
            "node_pool": {"name": "fpga", "vm_size": "Standard_NP10s", "count": 1},
            "fpga": {"resource_name": "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0"},
        },
    )
    with azure.adapter(spec.targets["azure"]) as adapter:
        with pytest.raises(ek.UnsupportedCapabilityError, match="northeurope") as caught:
            ek.plan(spec, adapter=adapter)
        assert caught.value.missing == {"fpga": "not offered in northeurope"}
        assert "eastus" in str(caught.value) and "targets.azure.cluster" in str(caught.value)
        with pytest.raises(ek.UnsupportedCapabilityError):
            ek.apply(spec, adapter=adapter)
    assert writes(azure) == (0, 0)
