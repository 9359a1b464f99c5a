"""Pods of an autoscaled node pool wait for the cluster autoscaler, on the fakes (its verdicts are events).

A pool with ``min_count: 0`` has no GPU node until the first pod asks: that pod is Unschedulable before the
autoscaler reacts, which must not end the wait; a NotTriggerScaleUp verdict, or silence past the grace, must.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import endpointkit as ek
from endpointkit._wait import ProgressEvent
from endpointkit.spec import Spec
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def autoscaled(azure: FakeAzure, repository: Path) -> Spec:
    pool = {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_count": 0, "max_count": 2}
    return aks_spec(repository, azure.arm.url, target={"node_pool": pool})


def reasons(azure: FakeAzure) -> list[str]:
    return [str(event["reason"]) for event in azure.kube.all("Event")]


def test_a_pool_scaled_from_zero_waits_for_the_autoscalers_node(azure: FakeAzure, repository: Path) -> None:
    azure.kube.autoscaler_after_polls = 4
    spec = autoscaled(azure, repository)
    with azure.adapter(spec.targets["azure"]) as adapter:
        state = ek.apply(spec, adapter=adapter)
    assert state.status is ek.EndpointStatus.IN_SERVICE
    assert reasons(azure) == ["FailedScheduling", "TriggeredScaleUp"]
    pool = azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]
    assert pool["enableAutoScaling"] is True and pool["count"] == 1


def test_the_autoscalers_refusal_ends_the_wait_at_once(azure: FakeAzure, repository: Path) -> None:
    azure.kube.autoscaler_after_polls = 1
    azure.kube.scale_up = lambda pool: (
        "NotTriggerScaleUp",
        "pod didn't trigger scale-up: 1 max node group size reached",
    )
    spec = autoscaled(azure, repository)
    started = time.monotonic()
    with azure.adapter(spec.targets["azure"]) as adapter, pytest.raises(ek.CapacityError) as caught:
        ek.apply(spec, adapter=adapter)
    assert time.monotonic() - started < 60  # far from the 90 s grace, with room for a loaded machine
    message = str(caught.value)
    assert "Unschedulable: 0/1 nodes are available" in message
    assert (
        "the cluster autoscaler will not add a node: pod didn't trigger scale-up: 1 max node group" in message
    )
    assert caught.value.details["autoscaler"].startswith("pod didn't trigger scale-up")


def test_silence_from_the_autoscaler_ends_the_wait_after_the_grace(
    azure: FakeAzure, repository: Path
) -> None:
    spec = autoscaled(azure, repository)  # the fake runs no autoscaler: no verdict ever comes
    started = time.monotonic()
    with (
        azure.adapter(spec.targets["azure"], scale_up_grace=0.5) as adapter,
        pytest.raises(ek.CapacityError, match="gave no verdict within 0.5 s") as caught,
    ):
        ek.apply(spec, adapter=adapter)
    assert 0.5 <= time.monotonic() - started < 60  # the grace, not the spec's create timeout (30 min)
    assert "Unschedulable: 0/1 nodes are available" in str(caught.value)


def test_a_pod_waiting_for_the_autoscaler_reads_as_creating(azure: FakeAzure, repository: Path) -> None:
    azure.kube.autoscaler_after_polls = 6
    spec = autoscaled(azure, repository)
    seen: list[tuple[str, ek.EndpointStatus | None]] = []
    with azure.adapter(spec.targets["azure"]) as adapter, azure.adapter(spec.targets["azure"]) as reader:

        def progress(event: ProgressEvent) -> None:
            if "until the cluster autoscaler" in event.status:
                state = reader.status(spec.deployment("azure")) if not seen else None
                seen.append((event.status, state.status if state is not None else None))

        assert ek.apply(spec, adapter=adapter, progress=progress).status is ek.EndpointStatus.IN_SERVICE
    # Outside a wait there is no grace to time: a pod with no verdict yet is pending, not failed.
    assert seen[0][1] is ek.EndpointStatus.CREATING
    assert "unschedulable until the cluster autoscaler adds a node" in seen[0][0]
