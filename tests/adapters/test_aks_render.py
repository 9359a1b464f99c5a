"""AKS objects and plan-time rules: pure, no server.

Every rendered object must pass kubernetes-validate in strict mode for Kubernetes 1.30 and for the newest
version the installed kubernetes-validate bundles; Gateway API objects, the vendored Gateway API CRD schemas.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

import endpointkit as ek
from endpointkit.adapters.aks import AksAdapter, _render
from endpointkit.adapters.aks._desired import plan_endpoint
from endpointkit.adapters.aks._storage import storage_suffix
from endpointkit.adapters.base import Capability
from endpointkit.spec import Spec
from tests.fakes.kube import aks_spec, repository
from tests.gateway_schemas import validate_gateway_object

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["repository"]

ARM = "https://management.azure.com"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def no_cloud(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("plan rules must fail before any cloud call")


def offline_adapter(spec: Spec) -> AksAdapter:
    return AksAdapter(
        spec.targets["azure"],  # type: ignore[arg-type]
        target_name="azure",
        credential=object(),
        arm_client_factory=no_cloud,
        kube_client_factory=no_cloud,
    )


def all_objects(spec: Spec) -> list[dict[str, Any]]:
    plan = plan_endpoint(spec.deployment("azure"))
    objects = [
        _render.stamp(o, labels={"endpointkit-spec-hash": "abc"}, annotations={}) for o in plan.objects
    ]
    objects += [
        _render.model_secret(
            plan.desired.model.name,
            "default",
            endpoint="vision",
            repository_uri="as://a/models/x",
            account="a",
            key="k",
        ),
        _render.key_secret(plan.key_secret, "default", endpoint="vision", key="secret"),
        _render.config_map(
            plan.desired.config.name,
            "default",
            endpoint="vision",
            pool="gpu",
            objects=json.dumps(list(plan.objects)),
            summary="{}",
        ),
        _render.device_plugin("gpu"),
        _render.namespace("inference"),
    ]
    return objects


def deployment_of(spec: Spec, index: int = 0) -> dict[str, Any]:
    plan = plan_endpoint(spec.deployment("azure"))
    return [o for o in plan.objects if o["kind"] == "Deployment"][index]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("flavour", ["gpu", "fpga", "cpu"])
def test_every_object_validates_strictly(repository: Path, version: str, flavour: str) -> None:
    target: dict[str, Any] = {"api_key": True, "namespace": "inference"}
    variant: dict[str, Any] = {"name": "primary", "accelerator": flavour, "cpu": 1.5, "memory": "6Gi"}
    if flavour == "fpga":
        target |= {
            "node_pool": {"name": "fpga", "vm_size": "Standard_NP10s", "count": 1},
            "fpga": {"resource_name": "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0"},
        }
    spec = aks_spec(repository, ARM, variants=[variant], target=target, tags={"team": "vision"}, ttl="8h")
    objects = all_objects(spec)
    kinds = {"Deployment", "Service", "Secret", "ConfigMap", "DaemonSet", "Gateway", "HTTPRoute", "GRPCRoute"}
    assert {o["kind"] for o in objects} >= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            validate_gateway_object(obj)
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_gpu_deployment_runs_triton_on_the_pool(repository: Path) -> None:
    spec = aks_spec(
        repository,
        ARM,
        variants=[
            {
                "name": "primary",
                "accelerator": "gpu",
                "instance_count": 2,
                "cpu": 2,
                "memory": "4Gi",
                "gpus": 1,
            }
        ],
    )
    deployment = deployment_of(spec)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == f"nvcr.io/nvidia/tritonserver:{_render.DEFAULT_TRITON_TAG}-py3"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": 1},
    }
    assert [p["containerPort"] for p in container["ports"]] == [8000, 8001, 8002]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 1800
    assert pod["tolerations"] == [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"kubernetes.azure.com/agentpool": "gpu"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert any(a.startswith("--model-repository=as://mymodels/models/") for a in container["args"])
    labels = deployment["metadata"]["labels"]
    assert labels["managed-by"] == "endpointkit" and labels["endpointkit-node-pool"] == "gpu"


def test_model_image_and_bare_tags(repository: Path) -> None:
    own = aks_spec(
        repository, ARM, model={"repository": str(repository), "image": "myacr.azurecr.io/triton:1"}
    )
    assert (
        deployment_of(own)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "myacr.azurecr.io/triton:1"
    )
    tag = aks_spec(repository, ARM, model={"repository": str(repository), "image": "24.05"})
    image = deployment_of(tag)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nvcr.io/nvidia/tritonserver:24.05-py3"


def test_endpoint_key_reaches_triton_without_being_in_the_object(repository: Path) -> None:
    spec = aks_spec(repository, ARM, target={"api_key": True})
    container = deployment_of(spec)["spec"]["template"]["spec"]["containers"][0]
    fence = [a for a in container["args"] if a.startswith("--http-restricted-api=")]
    assert fence == [
        "--http-restricted-api=metadata,inference,shared-memory,model-config,model-repository,"
        "statistics,trace,logging:endpointkit-key=$(ENDPOINTKIT_API_KEY)"
    ]
    assert any(a.startswith("--grpc-restricted-protocol=") for a in container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert env["ENDPOINTKIT_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "vision-api-key", "key": "key"}
    }


def test_service_exposes_http_and_grpc_but_not_metrics(repository: Path) -> None:
    spec = aks_spec(
        repository,
        ARM,
        variants=[
            {"name": "a", "accelerator": "gpu", "weight": 1},
            {"name": "b", "accelerator": "gpu", "weight": 1},
        ],
    )
    plan = plan_endpoint(spec.deployment("azure"))
    services = {o["metadata"]["name"]: o for o in plan.objects if o["kind"] == "Service"}
    anchor = services.pop("vision")
    assert anchor["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in anchor["spec"]["ports"]] == [8000, 8001]
    assert anchor["spec"]["selector"] == {"endpointkit-endpoint": "vision"}  # every variant's pods
    assert sorted(services) == sorted(plan.versions.values())
    for variant, name in plan.versions.items():
        service = services[name]
        assert service["spec"]["type"] == "ClusterIP"
        assert [(p["port"], p.get("appProtocol")) for p in service["spec"]["ports"]] == [
            (8000, None),
            (8001, "kubernetes.io/h2c"),
        ]
        selector = dict(service["spec"]["selector"])
        template = selector.pop("endpointkit-template")
        assert selector == {"endpointkit-endpoint": "vision", "endpointkit-variant": variant}
        assert name == f"vision-{variant}-{template[:8]}"  # one Service per version of a variant


def test_fpga_variant_uses_its_device_plugin_resource_and_taint(repository: Path) -> None:
    spec = aks_spec(
        repository,
        ARM,
        variants=[{"name": "fpga", "accelerator": "fpga"}],
        target={
            "node_pool": {"name": "fpga", "vm_size": "Standard_NP20s", "count": 1},
            "fpga": {"resource_name": "xilinx.com/fpga-u250"},
        },
    )
    pod = deployment_of(spec)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["xilinx.com/fpga-u250"] == 1
    assert pod["tolerations"][0]["value"] == "fpga"
    assert plan_endpoint(spec.deployment("azure")).pool.taint == "sku=fpga:NoSchedule"  # type: ignore[union-attr]


def test_rollout_surges_only_when_a_spare_gpu_exists(repository: Path) -> None:
    full = aks_spec(repository, ARM, variants=[{"name": "p", "accelerator": "gpu", "instance_count": 2}])
    spare = aks_spec(repository, ARM, variants=[{"name": "p", "accelerator": "gpu", "instance_count": 1}])
    assert deployment_of(full)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert deployment_of(spare)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_names_are_stable_and_follow_content(repository: Path) -> None:
    spec = aks_spec(repository, ARM)
    first, again = plan_endpoint(spec.deployment("azure")), plan_endpoint(spec.deployment("azure"))
    assert first.desired.config.name == again.desired.config.name
    bigger = aks_spec(
        repository,
        ARM,
        variants=[{"name": "primary", "accelerator": "gpu", "instance_count": 2, "cpu": 2, "memory": "4Gi"}],
    )
    changed = plan_endpoint(bigger.deployment("azure"))
    assert changed.desired.model.name == first.desired.model.name
    assert changed.desired.config.name != first.desired.config.name
    (repository / "echo" / "labels.txt").write_text("cat\n")
    assert plan_endpoint(spec.deployment("azure")).desired.model.name != first.desired.model.name


def test_expiry_label_is_label_safe() -> None:
    from datetime import datetime, timezone

    moment = datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert _render.volatile_labels("abc", moment) == {
        "endpointkit-spec-hash": "abc",
        "endpointkit-expires-at": "20260131T235959Z",  # the expiry codec's form: no ":"
    }
    assert _render.volatile_labels("abc", None) == {"endpointkit-spec-hash": "abc"}


# ----------------------------------------------------------------------------------------- plan-time rules


def plan_error(spec: Spec) -> BaseException:
    with pytest.raises((ek.SpecError, ek.UnsupportedCapabilityError)) as caught:
        ek.plan(spec, adapter=offline_adapter(spec))
    return caught.value


def test_gpu_variant_needs_a_gpu_vm_size(repository: Path) -> None:
    with pytest.raises(ek.SpecError, match="vm_size"):
        aks_spec(
            repository, ARM, target={"node_pool": {"name": "gpu", "vm_size": "Standard_D4s_v5", "count": 1}}
        )


def test_replicas_times_gpus_must_fit_the_pool(repository: Path) -> None:
    spec = aks_spec(repository, ARM, variants=[{"name": "p", "accelerator": "gpu", "instance_count": 3}])
    error = plan_error(spec)
    assert isinstance(error, ek.SpecError) and error.field == "targets.azure.node_pool"
    assert "need 3 accelerators" in str(error) and "at most 2" in str(error)


def test_autoscaled_pool_counts_its_max(repository: Path) -> None:
    spec = aks_spec(
        repository,
        ARM,
        variants=[{"name": "p", "accelerator": "gpu", "instance_count": 3}],
        target={
            "node_pool": {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_count": 1, "max_count": 3}
        },
    )
    assert not offline_adapter(spec).limitations(spec.deployment("azure")).get(Capability.GPU)


def test_a_replica_cannot_span_vms(repository: Path) -> None:
    spec = aks_spec(repository, ARM, variants=[{"name": "p", "accelerator": "gpu", "gpus": 2}])
    assert "a pod runs on one VM" in str(plan_error(spec))


def test_fpga_needs_its_resource_name_and_warns_of_np_retirement(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = {"node_pool": {"name": "fpga", "vm_size": "Standard_NP10s", "count": 1}}
    missing = aks_spec(repository, ARM, variants=[{"name": "f", "accelerator": "fpga"}], target=target)
    assert "fpga.resource_name" in str(plan_error(missing))
    named = aks_spec(
        repository,
        ARM,
        variants=[{"name": "f", "accelerator": "fpga"}],
        target={**target, "fpga": {"resource_name": "xilinx.com/fpga-u250"}},
    )
    with caplog.at_level(logging.WARNING, logger="endpointkit.aks"):
        offline_adapter(named).limitations(named.deployment("azure"))
    assert "2027-05-31" in caplog.text


def test_fpga_in_a_region_without_np_series_is_unsupported(repository: Path) -> None:
    spec = aks_spec(
        repository,
        ARM,
        variants=[{"name": "f", "accelerator": "fpga"}],
        target={
            "location": "brazilsouth",
            "node_pool": {"name": "fpga", "vm_size": "Standard_NP10s", "count": 1},
            "fpga": {"resource_name": "xilinx.com/fpga-u250"},
        },
    )
    error = plan_error(spec)
    assert isinstance(error, ek.UnsupportedCapabilityError) and "brazilsouth" in error.missing["fpga"]


def test_inferentia_is_unsupported_with_an_alternative(repository: Path) -> None:
    spec = aks_spec(repository, ARM, variants=[{"name": "p", "accelerator": "inferentia"}])
    error = plan_error(spec)
    assert isinstance(error, ek.UnsupportedCapabilityError)
    assert "ml.inf2" in error.missing["inferentia"]


def test_weights_are_independent_of_replicas_and_go_to_the_routes(repository: Path) -> None:
    uneven = aks_spec(
        repository,
        ARM,
        variants=[
            {"name": "a", "accelerator": "gpu", "weight": 0.9, "instance_count": 1},
            {"name": "b", "accelerator": "gpu", "weight": 0.1, "instance_count": 1},
        ],
    )
    assert Capability.TRAFFIC_SPLIT not in offline_adapter(uneven).limitations(uneven.deployment("azure"))
    plan = plan_endpoint(uneven.deployment("azure"))
    for kind in ("HTTPRoute", "GRPCRoute"):
        [route] = [o for o in plan.objects if o["kind"] == kind]
        [rule] = route["spec"]["rules"]
        weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
        assert weights == {plan.versions["a"]: 900, plan.versions["b"]: 100}, kind


def test_a_weight_change_changes_only_the_routes(repository: Path) -> None:
    def objects(weights: tuple[float, float]) -> dict[tuple[str, str], Any]:
        variants = [
            {"name": "a", "accelerator": "gpu", "weight": weights[0]},
            {"name": "b", "accelerator": "gpu", "weight": weights[1]},
        ]
        plan = plan_endpoint(aks_spec(repository, ARM, variants=variants).deployment("azure"))
        return {(o["kind"], o["metadata"]["name"]): o for o in plan.objects}

    before, after = objects((1, 1)), objects((3, 1))
    changed = sorted(key for key in before if before[key] != after[key])
    # the anchor Service records the spec's weights (status reports them)
    assert changed == [("GRPCRoute", "vision"), ("HTTPRoute", "vision"), ("Service", "vision")]


@pytest.mark.parametrize(
    ("repository_uri", "target", "field"),
    [
        ("s3://bucket/models", {}, "model.repository"),
        ("as://acct/models/x", {}, "targets.azure.storage_secret"),
        (None, {"storage_account": None}, "targets.azure.storage_account"),
    ],
)
def test_repository_must_be_readable_from_azure(
    repository: Path, repository_uri: str | None, target: dict[str, Any], field: str
) -> None:
    spec = aks_spec(repository_uri or repository, ARM, target=target)
    error = plan_error(spec)
    assert isinstance(error, ek.SpecError) and error.field == field


def test_autoscaling_on_invocations_is_unsupported(repository: Path) -> None:
    spec = aks_spec(repository, ARM, autoscaling={"min_instances": 1, "max_instances": 2})
    assert "min_count/max_count" in plan_error(spec).missing["autoscaling"]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ error mapping


def kube_error(status: int, reason: str, message: str) -> Exception:
    from kubernetes.client.exceptions import ApiException

    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "reason": reason, "message": message, "code": status})
    return error


@pytest.mark.parametrize(
    ("status", "reason", "message", "expected", "retryable"),
    [
        (
            403,
            "Forbidden",
            'pods "x" is forbidden: exceeded quota: gpu-quota, requested: nvidia.com/gpu=1',
            ek.QuotaError,
            False,
        ),
        (403, "Forbidden", "User cannot create deployments", ek.AuthError, False),
        (404, "NotFound", 'services "x" not found', ek.NotFoundError, False),
        (409, "Conflict", "Operation cannot be fulfilled", ek.ConflictError, False),
        (429, "TooManyRequests", "slow down", ek.ProviderError, True),
        (503, "ServiceUnavailable", "etcd leader changed", ek.ProviderError, True),
        (422, "Invalid", "spec.replicas: Invalid value", ek.ProviderError, False),
    ],
)
def test_kubernetes_errors_map_onto_the_tree(
    status: int, reason: str, message: str, expected: type[ek.ProviderError], retryable: bool
) -> None:
    from endpointkit.adapters.aks._errors import translate

    mapped = translate(kube_error(status, reason, message), provider="kubernetes", operation="apply")
    assert type(mapped) is expected and mapped.retryable is retryable  # type: ignore[union-attr]
    if expected is ek.QuotaError:
        assert mapped.details["quota"] == "gpu-quota"  # type: ignore[union-attr]


def test_operation_not_allowed_for_quota_is_a_quota_error() -> None:
    from azure.core.exceptions import HttpResponseError

    from endpointkit.adapters.aks._errors import translate

    error = HttpResponseError(message="Preflight validation failed")
    error.status_code = 400
    error.error = type(
        "Error",
        (),
        {
            "code": "OperationNotAllowed",
            "message": "Insufficient regional vcpu quota left for location eastus",
        },
    )()
    mapped = translate(error, provider="azure", operation="create cluster")
    assert isinstance(mapped, ek.QuotaError) and mapped.details["quota"] == "regional vcpu"


def test_the_latest_cluster_autoscaler_event_is_its_verdict() -> None:
    from endpointkit.adapters.aks._kube import _autoscaler_verdict

    triggered = [{"reason": "FailedScheduling"}, {"reason": "TriggeredScaleUp"}]
    refused = [*triggered, {"reason": "NotTriggerScaleUp"}]
    assert (_autoscaler_verdict(triggered) or {}).get("reason") == "TriggeredScaleUp"
    assert (_autoscaler_verdict(refused) or {}).get("reason") == "NotTriggerScaleUp"
    assert _autoscaler_verdict([{"reason": "FailedScheduling"}]) is None


@pytest.mark.parametrize(
    ("arm_endpoint", "suffix"),
    [
        ("https://management.azure.com", "core.windows.net"),
        ("https://management.chinacloudapi.cn/", "core.chinacloudapi.cn"),
        ("https://management.usgovcloudapi.net", "core.usgovcloudapi.net"),
        ("https://management.local.azurestack.external", "local.azurestack.external"),
        ("https://management.Redmond.Contoso.com", "redmond.contoso.com"),
        ("https://127.0.0.1:8443", "core.windows.net"),
    ],
)
def test_blob_suffix_follows_the_cloud_of_the_arm_endpoint(arm_endpoint: str, suffix: str) -> None:
    assert storage_suffix(arm_endpoint) == suffix
