"""What a spec asks of an AKS target, computed without any call: names, rendered objects, the node pool.

The three resources:

- model ``<endpoint>-<hash8>``: the repository in Blob storage (``as://ACCOUNT/models/<content sha256>``) and a
  Secret of that name holding where it is and, for an uploaded repository, the storage key;
- endpoint config ``<endpoint>-<hash8>``: a ConfigMap recording the rendered objects: per variant a Deployment and
  ClusterIP Service named after its pod template (``<endpoint>-<variant>-<rev8>``), the anchor Service, the Gateway
  (unless the spec names an existing one) and the HTTPRoute and GRPCRoute that weight the variants;
- endpoint ``<endpoint>``: the cluster and accelerator pool, the applied objects, the TLS Secrets, the Gateway's
  address and host.

The config hash covers the rendered objects without the labels that change per apply (spec hash, expiry), so
re-applying an unchanged spec plans no change; a change of weights alone changes only the routes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpointkit.adapters.aks import _gateway, _render
from endpointkit.adapters.aks._arm import PoolRequest
from endpointkit.adapters.aks._routes import Front, front_of
from endpointkit.adapters.aks._rules import accelerators_per_replica, pool_capacity
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE, DesiredState, Resource
from endpointkit.adapters.naming import content_name, managed_tags
from endpointkit.modelrepo import load_repository
from endpointkit.spec import AksTarget, Deployment

__all__ = [
    "CREATED_FOR_TAG",
    "GPU_RESOURCE",
    "TAINTS",
    "EndpointPlan",
    "config_objects",
    "plan_endpoint",
    "pool_request",
]

GPU_RESOURCE = "nvidia.com/gpu"
# AKS does not taint GPU nodes itself; sku=gpu:NoSchedule is the AKS docs' convention
# (https://learn.microsoft.com/azure/aks/use-nvidia-gpu).
TAINTS = {"gpu": ("sku", "gpu"), "fpga": ("sku", "fpga")}
CREATED_FOR_TAG = "endpointkit-created-for"


@dataclass(frozen=True)
class EndpointPlan:
    """Everything create/update/delete need, derived from the spec alone."""

    desired: DesiredState
    render: _render.EndpointRender
    objects: tuple[dict[str, Any], ...]
    local_repository: Path | None
    content_digest: str | None
    storage_account: str
    pool: PoolRequest | None
    accelerator: str
    infra_tags: Mapping[str, str]
    front: Front

    @property
    def key_secret(self) -> str:
        return f"{self.render.endpoint}-api-key"

    @property
    def versions(self) -> dict[str, str]:
        """Each variant's version: the name of its Deployment and Service."""
        return {
            obj["metadata"]["labels"][_render.LABEL_VARIANT]: obj["metadata"]["name"]
            for obj in self.objects
            if obj["kind"] == "Deployment"
        }

    @property
    def weights(self) -> dict[str, float]:
        """The spec's weight of each variant."""
        return {v.name: v.weight for v in self.render.variants}

    @property
    def deployments(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == "Deployment"]


def _account_of(uri: str) -> str:
    # as://ACCOUNT/CONTAINER/PATH
    return uri.split("://", 1)[1].split("/", 1)[0]


def plan_endpoint(deployment: Deployment) -> EndpointPlan:
    """The desired state of ``deployment`` on its AKS target.

    Reads the local repository (to hash it and find the default model); makes no cloud call.

    Raises:
        SpecError: the repository is invalid or the default model cannot be determined.
    """
    target = deployment.target
    assert isinstance(target, AksTarget)
    spec = deployment.spec
    name = spec.name
    source = _model_source(deployment, target)
    model_properties = {
        "repository": source.uri,
        "content_sha256": source.digest,
        "storage_secret": target.storage_secret,
    }
    model = Resource("model", content_name(name, model_properties), model_properties)
    accelerator = _accelerator_of(deployment)
    pool = pool_request(target, accelerator) if accelerator != "cpu" else None
    endpoint_render = _endpoint_render(
        deployment, target, source, model.name, _variant_renders(deployment, target), accelerator, pool
    )
    front = front_of(name, target, annotations=endpoint_render.user_annotations)
    objects = _objects(endpoint_render, front)
    pool_summary = _pool_summary(pool)
    config_name = content_name(name, {"model": model.name, "objects": list(objects), "pool": pool_summary})
    config = Resource(
        "endpoint_config",
        config_name,
        _config_summary(model.name, endpoint_render, pool_summary, target, objects),
    )
    endpoint = Resource(
        "endpoint",
        name,
        {
            "config": config_name,
            "cluster": target.cluster,
            "resource_group": target.resource_group,
            "namespace": target.namespace,
            "service": _render.service_name(name),
            "gateway": front.gateway_label,
            "host": front.host,
            "tls": front.tls,
            "node_pool": pool_summary,
        },
    )
    infra_tags = {**spec.tags, MANAGED_BY_TAG: MANAGED_BY_VALUE, CREATED_FOR_TAG: name}
    desired = DesiredState(name, deployment.spec_hash(), model, config, endpoint, managed_tags(deployment))
    return EndpointPlan(
        desired,
        endpoint_render,
        objects,
        source.local,
        source.digest,
        source.account,
        pool,
        accelerator,
        infra_tags,
        front,
    )


def _objects(render: _render.EndpointRender, front: Front) -> tuple[dict[str, Any], ...]:
    """Deployments, their Services, the anchor Service, the Gateway (when the endpoint has its own) and the
    routes: what the config records and apply makes, in that order."""
    deployments = [_render.deployment(render, v) for v in render.variants]
    services = [
        _gateway.variant_service(
            obj["metadata"]["name"],
            render.namespace,
            selector=_render.version_selector(obj),
            labels={
                **_render.base_labels(render.endpoint),
                _render.LABEL_VARIANT: obj["metadata"]["labels"][_render.LABEL_VARIANT],
                _render.LABEL_ROLE: "backend",
            },
        )
        for obj in deployments
    ]
    shares = {obj["metadata"]["name"]: v.weight for obj, v in zip(deployments, render.variants, strict=True)}
    weights = _gateway.integer_weights(shares)
    backends = [_gateway.Backend(service, weights[service]) for service in sorted(weights)]
    gateway = front.gateway_object()
    return (
        *deployments,
        *services,
        _render.service(render),
        *([gateway] if gateway is not None else []),
        *front.routes(backends),
    )


@dataclass(frozen=True)
class _ModelSource:
    """Where Triton reads the repository (``as://`` URI, storage account) and, for a local one, its hash."""

    uri: str
    account: str
    default_model: str | None
    local: Path | None = None
    digest: str | None = None


def _model_source(deployment: Deployment, target: AksTarget) -> _ModelSource:
    """An ``as://`` repository as given; a local folder hashed, at its Blob address under ``models/``."""
    explicit_default = deployment.spec.model.default_model
    if "://" in deployment.repository:
        return _ModelSource(deployment.repository, _account_of(deployment.repository), explicit_default)
    repository = load_repository(deployment.repository)
    digest = repository.content_hash()
    account = str(target.storage_account)
    return _ModelSource(
        uri=f"as://{account}/models/{digest}",
        account=account,
        default_model=repository.default_model(explicit_default),
        local=repository.path,
        digest=digest,
    )


def _accelerator_of(deployment: Deployment) -> str:
    """``gpu`` or ``fpga`` when a variant asks for one (the rules allow one kind per spec), else ``cpu``."""
    accelerators = {v.accelerator for v in deployment.variants if v.accelerator in ("gpu", "fpga")}
    return next(iter(accelerators), "cpu")


def _variant_renders(deployment: Deployment, target: AksTarget) -> tuple[_render.VariantRender, ...]:
    """One render per variant; a variant's rollout surges only if the pool has an accelerator to spare."""
    capacity = pool_capacity(target)
    needed = sum(accelerators_per_replica(v) * v.instance_count for v in deployment.variants)
    return tuple(
        _render.VariantRender(
            name=v.name,
            replicas=v.instance_count,
            weight=v.weight,
            cpu=v.cpu,
            memory=v.memory,
            accelerators=accelerators_per_replica(v),
            # A surge pod needs a free accelerator while the old ones still run.
            surge=accelerators_per_replica(v) == 0 or needed + accelerators_per_replica(v) <= capacity.total,
        )
        for v in deployment.variants
    )


def _endpoint_render(
    deployment: Deployment,
    target: AksTarget,
    source: _ModelSource,
    model_name: str,
    variants: tuple[_render.VariantRender, ...],
    accelerator: str,
    pool: PoolRequest | None,
) -> _render.EndpointRender:
    """What the endpoint's Deployments and Service are rendered from."""
    spec = deployment.spec
    resource = (
        GPU_RESOURCE if accelerator == "gpu" else target.fpga.resource_name if accelerator == "fpga" else None
    )
    return _render.EndpointRender(
        endpoint=spec.name,
        namespace=target.namespace,
        image=_render.triton_image(spec.model.image),
        repository_uri=source.uri,
        storage_account=source.account,
        storage_key_secret=target.storage_secret or model_name,
        environment=dict(spec.model.environment),
        default_model=source.default_model,
        variants=variants,
        pool=pool.name if pool else None,
        accelerator_resource=resource,
        taint=TAINTS.get(accelerator),
        api_key_secret=f"{spec.name}-api-key" if target.api_key else None,
        startup_seconds=spec.timeouts.create,
        user_annotations={"endpointkit-tags": json.dumps(spec.tags, sort_keys=True)} if spec.tags else {},
    )


def _pool_summary(pool: PoolRequest | None) -> dict[str, Any] | None:
    """The accelerator pool as plans show and config hashes cover it; None without one."""
    if pool is None:
        return None
    return {
        "name": pool.name,
        "vm_size": pool.vm_size,
        "count": pool.count,
        "min_count": pool.min_count,
        "max_count": pool.max_count,
    }


def _config_summary(
    model_name: str,
    render: _render.EndpointRender,
    pool_summary: dict[str, Any] | None,
    target: AksTarget,
    objects: tuple[dict[str, Any], ...],
) -> dict[str, Any]:
    """The endpoint config's properties: what a plan shows of it."""
    versions = {
        obj["metadata"]["labels"][_render.LABEL_VARIANT]: obj["metadata"]["name"]
        for obj in objects
        if obj["kind"] == "Deployment"
    }
    return {
        "model": model_name,
        "image": render.image,
        "default_model": render.default_model,
        "node_pool": pool_summary,
        "api_key": target.api_key,
        "variants": [
            {
                "name": v.name,
                "version": versions[v.name],
                "replicas": v.replicas,
                "weight": v.weight,
                "cpu": v.cpu,
                "memory": v.memory,
                "accelerators": v.accelerators,
                "rollout": "surge" if v.surge else "one at a time (no spare GPU)",
            }
            for v in render.variants
        ],
    }


def pool_request(target: AksTarget, accelerator: str) -> PoolRequest:
    """The accelerator User pool of ``target``: its size bounds, the taint and a label for the accelerator."""
    pool = target.node_pool
    key, value = TAINTS[accelerator]
    return PoolRequest(
        name=pool.name,
        vm_size=pool.vm_size,
        count=pool.count,
        min_count=pool.min_count,
        max_count=pool.max_count,
        taint=f"{key}={value}:NoSchedule",
        labels={"endpointkit-accelerator": accelerator},
    )


def config_objects(data: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rendered objects a config ConfigMap records."""
    parsed = json.loads(data.get("objects.json", "[]"))
    return [obj for obj in parsed if isinstance(obj, dict)]
