"""The AKS adapter end to end on local fakes: real azure-mgmt-containerservice, azure-storage-blob and kubernetes
clients talking HTTPS to a fake ARM and a fake Kubernetes API, and invoke reaching the pods through the fake
Gateway's data plane over HTTPS (the endpoint's own CA, its Azure DNS name mapped to the data plane).
"""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.aks import AksAdapter
from endpointkit.adapters.aks._desired import plan_endpoint
from endpointkit.adapters.base import EndpointStatus
from endpointkit.provisioners import apply_plan
from endpointkit.spec import Spec
from tests.fakes.arm import GATEWAY_INGRESS_PROFILE, FakeTokenCredential
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def their_cluster(azure: FakeAzure) -> None:
    """A cluster someone else made, with the Gateway API add-on (app routing's Istio implementation) on."""
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": GATEWAY_INGRESS_PROFILE})


QUOTA_MESSAGE = (
    "Operation could not be completed as it results in exceeding approved standardNCASv3_T4Family Cores "
    "quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 0, "
    "Current Usage: 0, Additional Required: 8, (Minimum) New Limit Required: 8."
)


def spec_on(azure: FakeAzure, repository: Path | str, **options: Any) -> Spec:
    return aks_spec(repository, azure.arm.url, **options)


def adapter_for(azure: FakeAzure, spec: Spec, **options: Any) -> AksAdapter:
    adapter: AksAdapter = azure.adapter(spec.targets["azure"], **options)
    return adapter


def kube_writes(azure: FakeAzure) -> list[tuple[str, str, str]]:
    return [r for r in azure.kube.calls() if r[0] in ("PATCH", "DELETE", "POST", "PUT")]


def version_of(spec: Spec, variant: str = "primary") -> str:
    """The name of a variant's Deployment (and Service) for ``spec``: ``<endpoint>-<variant>-<rev8>``."""
    return plan_endpoint(spec.deployment("azure")).versions[variant]


def names(azure: FakeAzure, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in azure.kube.all(kind)]


@pytest.fixture
def deployed(azure: FakeAzure, repository: Path) -> Any:
    spec = spec_on(azure, repository, target={"api_key": True})
    adapter = adapter_for(azure, spec)
    state = ek.apply(spec, adapter=adapter)
    yield spec, adapter, state
    adapter.close()


# ---------------------------------------------------------------------------------------------- lifecycle


def test_apply_makes_cluster_pool_model_and_objects(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository, tags={"team": "vision"}, ttl="8h")
    credential = FakeTokenCredential()
    adapter = adapter_for(azure, spec, credential=credential)
    events: list[ek.EndpointStatus | str] = []
    state = ek.apply(spec, adapter=adapter, progress=lambda event: events.append(event.subject))
    try:
        assert state.status is EndpointStatus.IN_SERVICE
        host = state.extra["host"]
        assert host.startswith("vision-") and host.endswith(".eastus.cloudapp.azure.com")
        assert state.url == f"https://{host}" and state.extra["address"] == azure.lb_ip
        assert state.extra["gateway"] == "default/vision" and state.extra["gateway_programmed"] is True
        assert "BEGIN CERTIFICATE" in state.extra["ca_certificate"] and state.extra["certificate_expires"]
        assert state.region == "eastus" and state.expires_at is not None
        assert any("create cluster gpu-aks" in subject for subject in events)
        assert credential.scopes and credential.scopes[0] == (f"{azure.arm.url}/.default",)
        pool = azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]
        assert pool["mode"] == "User" and pool["vmSize"] == "Standard_NC4as_T4_v3" and pool["count"] == 2
        assert pool["nodeTaints"] == ["sku=gpu:NoSchedule"] and pool["tags"]["managed-by"] == "endpointkit"
        assert azure.arm.clusters[("rg", "gpu-aks")]["tags"]["managed-by"] == "endpointkit"
        blobs = sorted(name for (_, container, name) in azure.arm.blobs if container == "models")
        digest = blobs[0].split("/")[1]
        assert blobs == [
            f".endpointkit-uploads/{digest}",
            f"{digest}/echo/1/model.py",
            f"{digest}/echo/config.pbtxt",
        ]
        assert any(subject.startswith("upload to models/") for subject in events)
        version = version_of(spec)
        assert version.startswith("vision-primary-") and len(version) == len("vision-primary-") + 8
        assert names(azure, "Deployment") == [version]
        assert names(azure, "Service") == ["vision", version]
        assert azure.kube.get("Service", "vision")["spec"]["type"] == "ClusterIP"  # type: ignore[index]
        assert names(azure, "Gateway") == names(azure, "HTTPRoute") == names(azure, "GRPCRoute") == ["vision"]
        assert {"vision-ca", "vision-tls"} <= set(names(azure, "Secret"))
        labels = azure.kube.get("Service", "vision")["metadata"]["labels"]  # type: ignore[index]
        assert labels["managed-by"] == "endpointkit" and labels["endpointkit-spec-hash"] == state.spec_hash
        assert labels["endpointkit-expires-at"].endswith("Z") and ":" not in labels["endpointkit-expires-at"]
        deployment = azure.kube.get("Deployment", version)
        assert deployment is not None and deployment["metadata"]["labels"]["managed-by"] == "endpointkit"
        assert azure.kube.get("DaemonSet", "endpointkit-nvidia-device-plugin-gpu", "kube-system") is not None
        patches = azure.kube.calls("PATCH")
        assert patches and all(c == "application/apply-patch+yaml" for _, _, c in patches)
    finally:
        adapter.close()


def test_unchanged_reapply_writes_nothing(deployed: Any, azure: FakeAzure) -> None:
    spec, adapter, _ = deployed
    arm_writes, kube_before, blob_puts = (
        len(azure.arm.writes),
        len(kube_writes(azure)),
        len(azure.arm.calls("PUT", "/mymodels/")),
    )
    plan = ek.plan(spec, adapter=adapter)
    assert not plan.has_changes, str(plan)
    assert ek.apply(spec, adapter=adapter).status is EndpointStatus.IN_SERVICE
    assert len(azure.arm.writes) == arm_writes
    assert len(kube_writes(azure)) == kube_before
    assert len(azure.arm.calls("PUT", "/mymodels/")) == blob_puts


def test_invoke_sends_the_endpoint_key(deployed: Any, azure: FakeAzure) -> None:
    _spec, adapter, state = deployed
    data = np.arange(6, dtype=np.float32)
    response = ek.invoke_endpoint(state, {"INPUT0": data}, adapter=adapter)
    np.testing.assert_array_equal(response["OUTPUT0"], data)
    path, headers = azure.gateway.requests[-1]
    assert path == "/v2/models/echo/infer" and headers["endpointkit-key"]
    assert headers["host"] == state.extra["host"]
    assert headers["endpointkit-key"] not in str(state.to_dict())
    assert headers["endpointkit-key"] not in str(azure.kube.all("Deployment"))


def test_invoke_from_state_alone_reads_the_key(deployed: Any, azure: FakeAzure) -> None:
    _, _, state = deployed
    fresh = AksAdapter.from_state(state, **azure.adapter_options())
    try:
        response = ek.invoke_endpoint(state, {"INPUT0": np.ones(3, np.float32)}, adapter=fresh)
        np.testing.assert_array_equal(response["OUTPUT0"], np.ones(3, np.float32))
    finally:
        fresh.close()


def test_ainvoke_sends_the_endpoint_key_without_blocking(deployed: Any, azure: FakeAzure) -> None:
    _spec, adapter, state = deployed
    data = np.arange(4, dtype=np.float32)

    async def run() -> list[ek.InferResponse]:
        try:
            return await asyncio.gather(
                *(ek.ainvoke_endpoint(state, {"INPUT0": data}, adapter=adapter) for _ in range(8))
            )
        finally:
            await adapter.aclose()

    for response in asyncio.run(run()):
        np.testing.assert_array_equal(response["OUTPUT0"], data)
    path, headers = azure.gateway.requests[-1]
    assert path == "/v2/models/echo/infer" and headers["endpointkit-key"]


def test_grpc_goes_to_the_gateways_tls_port_with_the_key_as_metadata(deployed: Any, azure: FakeAzure) -> None:
    _spec, adapter, state = deployed

    connection, model = adapter.grpc_connection(state)

    mapped = azure.gateway.connect_to()[":443"]
    assert (connection.address, connection.tls, model) == (mapped, True, "echo")
    assert adapter.grpc_connection(state)[0] is connection  # one channel per address, reused
    (metadata,) = connection._metadata
    assert metadata[0] == "triton-grpc-protocol-endpointkit-key" and metadata[1]
    assert metadata[1] not in repr(connection)


def test_a_request_without_the_key_is_refused(deployed: Any, azure: FakeAzure) -> None:
    _spec, _adapter, state = deployed
    host = state.extra["host"]
    status, _, _ = azure.gateway.serve(
        "POST",
        host,
        "/v2/models/echo/infer",
        {"Content-Type": "application/json"},
        b"{}",
        tls=True,
        server_name=host,
    )
    assert status == 403


def test_update_rolls_to_the_new_config_without_arm_writes(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    _spec, adapter, before = deployed
    bigger = spec_on(
        azure,
        repository,
        target={"api_key": True},
        variants=[{"name": "primary", "accelerator": "gpu", "instance_count": 2, "cpu": 2, "memory": "4Gi"}],
    )
    writes = len(azure.arm.writes)
    plan = ek.plan(bigger, adapter=adapter)
    assert [c.action for c in plan.changes] == ["noop", "create", "update", "delete"]
    after = ek.apply(bigger, adapter=adapter)
    assert after.status is EndpointStatus.IN_SERVICE and after.variants[0].instance_count == 2
    assert after.extra["config"] != before.extra["config"]
    assert azure.kube.get("ConfigMap", before.extra["config"]) is None
    assert len(azure.arm.writes) == writes
    assert not ek.plan(bigger, adapter=adapter).has_changes


def test_pool_count_change_is_an_update_of_the_pool(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    _spec, adapter, _ = deployed
    grown = spec_on(
        azure,
        repository,
        target={"api_key": True, "node_pool": {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "count": 3}},
    )
    assert [c.action for c in ek.plan(grown, adapter=adapter).changes if c.resource == "endpoint"] == [
        "update"
    ]
    ek.apply(grown, adapter=adapter)
    assert azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]["count"] == 3


def test_vm_size_change_plans_a_replace_with_the_reason(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    _, adapter, _ = deployed
    a100 = spec_on(
        azure,
        repository,
        target={
            "api_key": True,
            "node_pool": {"name": "gpu", "vm_size": "Standard_NC24ads_A100_v4", "count": 2},
        },
    )
    plan = ek.plan(a100, adapter=adapter)
    [change] = [c for c in plan.changes if c.resource == "endpoint"]
    assert change.action == "replace" and "cannot change in place" in change.reason
    assert "Standard_NC4as_T4_v3" in change.reason and "Standard_NC24ads_A100_v4" in change.reason
    state = ek.apply(a100, adapter=adapter)
    assert state.status is EndpointStatus.IN_SERVICE
    assert azure.arm.pools[("rg", "gpu-aks", "gpu")]["properties"]["vmSize"] == "Standard_NC24ads_A100_v4"
    assert azure.arm.calls("DELETE", "/agentPools/gpu")


def test_vm_size_of_someone_elses_pool_is_never_changed(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    spec = spec_on(azure, repository, target={"create_cluster": False})
    adapter = adapter_for(azure, spec)
    try:
        ek.apply(spec, adapter=adapter)
        other = spec_on(
            azure,
            repository,
            target={
                "create_cluster": False,
                "node_pool": {"name": "gpu", "vm_size": "Standard_NC24ads_A100_v4", "count": 2},
            },
        )
        writes = len(azure.arm.writes)
        with pytest.raises(ek.ConflictError, match="endpointkit did not create it"):
            ek.apply(other, adapter=adapter)
        assert len(azure.arm.writes) == writes
        assert ek.status(spec, adapter=adapter).status is EndpointStatus.IN_SERVICE  # type: ignore[union-attr]
    finally:
        adapter.close()


def test_destroy_twice_removes_what_endpointkit_made(deployed: Any, azure: FakeAzure) -> None:
    spec, adapter, _ = deployed
    assert ek.destroy(spec, adapter=adapter) is True
    assert ek.destroy(spec, adapter=adapter) is False
    assert azure.arm.clusters == {}
    assert ek.status(spec, adapter=adapter) is None
    assert azure.arm.blobs  # content-addressed blobs stay for the next apply


def test_destroy_leaves_a_cluster_endpointkit_did_not_make(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    spec = spec_on(azure, repository, target={"create_cluster": False})
    adapter = adapter_for(azure, spec)
    try:
        ek.apply(spec, adapter=adapter)
        assert ek.destroy(spec, adapter=adapter) is True
        assert azure.arm.calls("DELETE") == [] and ("rg", "gpu-aks", "gpu") in azure.arm.pools
        assert azure.kube.all("Deployment") == [] and azure.kube.all("Service") == []
        for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "Secret", "ConfigMap"):
            assert names(azure, kind) == [], kind
    finally:
        adapter.close()


def test_reapply_after_destroy_skips_the_upload(deployed: Any, azure: FakeAzure) -> None:
    spec, adapter, _ = deployed
    ek.destroy(spec, adapter=adapter)
    uploads = len(azure.arm.calls("PUT", "/mymodels/"))
    assert ek.apply(spec, adapter=adapter).status is EndpointStatus.IN_SERVICE
    assert len(azure.arm.calls("PUT", "/mymodels/")) == uploads


def test_missing_cluster_without_create_cluster_names_the_fix(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository, target={"create_cluster": False})
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.NotFoundError, match="create_cluster: true"):
        ek.apply(spec, adapter=adapter)


# ------------------------------------------------------------------------------------------------- faults


def test_quota_exceeded_names_the_quota_and_rolls_back(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository)
    azure.arm.fail("pool.put", code="QuotaExceeded", message=QUOTA_MESSAGE)
    adapter = adapter_for(azure, spec)
    try:
        with pytest.raises(ek.QuotaError) as caught:
            ek.apply(spec, adapter=adapter)
        assert "standardNCASv3_T4Family Cores" in str(caught.value)
        assert caught.value.details["quota"].startswith("standardNCASv3_T4Family Cores")
        assert azure.arm.clusters == {}  # the cluster this run made was deleted again
        assert ek.status(spec, adapter=adapter) is None
    finally:
        adapter.close()


def test_allocation_failure_is_a_capacity_error(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository)
    azure.arm.fail("pool.put", code="ZonalAllocationFailed", message="Allocation failed.", asynchronous=True)
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.CapacityError, match="ZonalAllocationFailed"):
        ek.apply(spec, adapter=adapter)
    assert azure.arm.clusters == {}


def test_unschedulable_pods_end_the_wait_with_the_schedulers_words(
    azure: FakeAzure, repository: Path
) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=1)
    spec = spec_on(
        azure,
        repository,
        target={"create_cluster": False},
        variants=[{"name": "primary", "accelerator": "gpu", "instance_count": 2}],
    )
    started = time.monotonic()
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.CapacityError) as caught:
        ek.apply(spec, adapter=adapter)
    # Far below the 90 s autoscaler grace the wait must not run to, with room for a loaded two-core machine.
    assert time.monotonic() - started < 60
    assert "Unschedulable: 0/2 nodes are available:" in str(caught.value)
    assert "1 Insufficient nvidia.com/gpu" in str(caught.value)
    assert azure.kube.all("Deployment") == [] and azure.arm.calls("DELETE") == []


def test_image_pull_backoff_is_reported(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(
        azure, repository, model={"repository": str(repository), "image": "nvcr.io/nvidia/does-not-exist:1"}
    )
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.ProviderError) as caught:
        ek.apply(spec, adapter=adapter)
    assert caught.value.code == "ImagePullBackOff" and "does-not-exist" in str(caught.value)


def test_crash_loop_reports_the_last_log_lines(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository)
    azure.kube.crash_logs[version_of(spec)] = [
        "I0101 loading model echo",
        "E0101 failed to load 'echo': CUDA driver version is insufficient",
    ]
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.ProviderError) as caught:
        ek.apply(spec, adapter=adapter)
    assert caught.value.code == "CrashLoopBackOff" and "exit code 1" in str(caught.value)
    assert "CUDA driver version is insufficient" in str(caught.value)


def test_failed_update_puts_the_old_deployment_back(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    spec, adapter, before = deployed
    broken = spec_on(
        azure,
        repository,
        target={"api_key": True},
        model={"repository": str(repository), "image": "nvcr.io/nvidia/does-not-exist:2"},
    )
    with pytest.raises(ek.ProviderError, match="ImagePullBackOff"):
        ek.apply(broken, adapter=adapter)
    state = ek.status(spec, adapter=adapter)
    assert state is not None and state.status is EndpointStatus.IN_SERVICE
    assert state.extra["config"] == before.extra["config"]
    assert not ek.plan(spec, adapter=adapter).has_changes


def test_throttling_is_retried_and_auth_failure_is_not(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(azure, repository)
    azure.arm.fail("cluster.get", code="TooManyRequests", status=429, times=2)
    with adapter_for(azure, spec) as adapter:
        assert ek.plan(spec, adapter=adapter).has_changes
        azure.arm.fail("cluster.get", code="AuthorizationFailed", status=403)
        calls = len(azure.arm.calls("GET", "/managedClusters/gpu-aks"))
        with pytest.raises(ek.AuthError, match="AuthorizationFailed"):
            ek.plan(spec, adapter=adapter)
        assert len(azure.arm.calls("GET", "/managedClusters/gpu-aks")) == calls + 1
        azure.arm.fail("pool.put", code="InternalServerError", status=500)
        assert ek.apply(spec, adapter=adapter).status is EndpointStatus.IN_SERVICE
        assert len(azure.arm.calls("PUT", "/agentPools/gpu")) == 2  # the 500, then the retry


def test_a_slow_rollout_times_out_with_the_last_state(azure: FakeAzure, repository: Path) -> None:
    azure.kube.ready_after_polls = 10_000
    spec = spec_on(azure, repository, timeouts={"create": "1s"})
    with adapter_for(azure, spec) as adapter, pytest.raises(ek.ProvisionTimeout) as caught:
        ek.apply(spec, adapter=adapter)
    assert caught.value.last_state is not None and caught.value.last_state.status is EndpointStatus.CREATING


# ------------------------------------------------------------------------------------------- credentials


def test_kubeconfig_certificates_are_private_and_removed(deployed: Any) -> None:
    _, adapter, _ = deployed
    folder = Path(adapter._kube.temp_dir)  # type: ignore[union-attr]
    files = [p for p in folder.iterdir()]
    assert files and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    adapter.close()
    assert not folder.exists()


def test_requests_ca_bundle_is_honoured(
    azure: FakeAzure, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure.tls.ca_file))
    spec = spec_on(azure, repository)
    with adapter_for(azure, spec, arm_options={"polling_interval": 0}) as adapter:
        assert ek.plan(spec, adapter=adapter).has_changes
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with (
        adapter_for(azure, spec, arm_options={"polling_interval": 0}) as adapter,
        pytest.raises(ek.ProviderError),
    ):
        ek.plan(spec, adapter=adapter)


# --------------------------------------------------------------------------------------- more shapes


def test_uploaded_as_repository_is_used_as_given_with_its_secret(azure: FakeAzure, repository: Path) -> None:
    spec = spec_on(
        azure,
        "as://shared/models/echo-v1",
        model={"repository": "as://shared/models/echo-v1", "default_model": "echo"},
        target={"storage_secret": "shared-storage", "storage_account": None},
    )
    with adapter_for(azure, spec) as adapter:
        state = ek.apply(spec, adapter=adapter)
        assert state.extra["default_model"] == "echo"
        assert azure.arm.blobs == {} and azure.arm.calls("POST", "/listKeys") == []
        deployment = azure.kube.get("Deployment", version_of(spec))
        assert deployment is not None
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "--model-repository=as://shared/models/echo-v1" in container["args"]
        env = {e["name"]: e for e in container["env"]}
        assert env["AZURE_STORAGE_ACCOUNT"]["value"] == "shared"
        assert env["AZURE_STORAGE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "shared-storage"
        response = ek.invoke_endpoint(state, {"INPUT0": np.zeros(2, np.float32)}, adapter=adapter)
        assert response.model_name == "echo"


def test_two_variants_are_weighted_by_the_routes_in_their_namespace(
    azure: FakeAzure, repository: Path
) -> None:
    variants = [
        {"name": "blue", "accelerator": "gpu", "instance_count": 1, "weight": 3},
        {"name": "green", "accelerator": "gpu", "instance_count": 1, "weight": 1},
    ]
    spec = spec_on(azure, repository, variants=variants, target={"namespace": "inference"})
    with adapter_for(azure, spec) as adapter:
        state = ek.apply(spec, adapter=adapter)
        assert [(v.name, v.instance_count, v.weight) for v in state.variants] == [
            ("blue", 1, 3.0),
            ("green", 1, 1.0),
        ]
        assert "75% of traffic" in str(state.variants[0].status)
        assert azure.kube.get("Namespace", "inference") is not None
        blue, green = version_of(spec, "blue"), version_of(spec, "green")
        assert sorted(names(azure, "Service")) == sorted(["vision", blue, green])
        route = azure.kube.get("HTTPRoute", "vision", "inference")
        assert route is not None
        [rule] = route["spec"]["rules"]
        assert {r["name"]: r["weight"] for r in rule["backendRefs"]} == {blue: 750, green: 250}
        assert len(azure.kube.all("Deployment")) == 2
        assert ek.destroy(spec, adapter=adapter) is True


def test_reap_destroys_only_expired_endpoints(azure: FakeAzure, repository: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from endpointkit.provisioners.reap import reap

    spec = spec_on(azure, repository, ttl="1h")
    with adapter_for(azure, spec) as adapter:
        ek.apply(spec, adapter=adapter)
        [listed] = adapter.list_endpoints()
        assert listed.name == "vision" and listed.expires_at is not None
        early = reap(adapter, now=datetime.now(timezone.utc))
        assert early.outcomes == () and azure.kube.all("Service")
        late = reap(adapter, now=datetime.now(timezone.utc) + timedelta(hours=2))
        assert [o.action for o in late.outcomes] == ["destroyed"]
        assert azure.arm.clusters == {}  # the last endpoint on an endpointkit cluster takes it along
        adapter.destroy_by_state(listed)  # idempotent


def test_the_public_api_passes_credential_and_options_to_the_adapter(
    azure: FakeAzure, repository: Path
) -> None:
    spec = spec_on(azure, repository)
    credential = FakeTokenCredential()
    options = azure.adapter_options(credential=credential)
    state = ek.apply(spec, target="azure", **options)
    assert state.status is EndpointStatus.IN_SERVICE and credential.scopes
    assert ek.status(spec, target="azure", **options) is not None
    assert ek.destroy(spec, target="azure", **options) is True
    assert ek.status(spec, target="azure", **options) is None


def test_a_shared_cluster_goes_with_its_last_endpoint(azure: FakeAzure, repository: Path) -> None:
    first = spec_on(azure, repository)
    second = spec_on(azure, repository, name="detector")
    with adapter_for(azure, first) as adapter:
        ek.apply(first, adapter=adapter)
        ek.apply(second, adapter=adapter)
        assert ek.destroy(first, adapter=adapter) is True
        assert ("rg", "gpu-aks", "gpu") in azure.arm.pools  # detector still runs on it
        assert ek.status(second, adapter=adapter).status is EndpointStatus.IN_SERVICE  # type: ignore[union-attr]
        assert ek.destroy(second, adapter=adapter) is True
        assert azure.arm.clusters == {}


def test_a_plan_made_before_another_run_created_the_endpoint_leaves_that_endpoint_alone(
    azure: FakeAzure, repository: Path
) -> None:
    first = spec_on(azure, repository)
    second = spec_on(
        azure,
        repository,
        variants=[{"name": "primary", "accelerator": "gpu", "instance_count": 2, "cpu": 2, "memory": "4Gi"}],
    )
    adapter = adapter_for(azure, second)
    stale = ek.plan(second, adapter=adapter)  # planned while the endpoint did not exist yet
    before = ek.apply(first, adapter=adapter_for(azure, first))

    with pytest.raises(ek.ConflictError, match="run apply again") as raised:
        apply_plan(second.deployment("azure"), adapter, stale)

    assert raised.value.code == "ChangedSincePlan"
    after = ek.status(first, adapter=adapter)
    assert after is not None and after.status is EndpointStatus.IN_SERVICE
    assert after.extra["config"] == before.extra["config"]
    assert not ek.plan(first, adapter=adapter).has_changes
    adapter.close()
