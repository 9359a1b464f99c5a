"""What a spec asks of an AKS target, computed without any call: names, rendered objects, the node pool.

The three resources:

- model ``<endpoint>-<hash8>``: the repository in Blob storage (``as://ACCOUNT/models/<content sha256>``) and a
  Secret of that name holding where it is and, for an uploaded repository, the storage key;
- endpoint config ``<endpoint>-<hash8>``: a ConfigMap recording the rendered Deployments and Service;
- endpoint ``<endpoint>``: the cluster and accelerator pool, the applied objects, the LoadBalancer address.

The config hash covers the rendered objects without the labels that change per apply (spec hash, expiry), so
re-applying an unchanged spec plans no change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import PoolRequest
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

    @property
    def key_secret(self) -> str:
        return f"{self.render.endpoint}-api-key"


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
    local: Path | None = None
    digest: str | None = None
    default_model = spec.model.default_model
    if "://" in deployment.repository:
        uri = deployment.repository
        account = _account_of(uri)
    else:
        repository = load_repository(deployment.repository)
        local, digest = repository.path, repository.content_hash()
        default_model = repository.default_model(spec.model.default_model)
        account = str(target.storage_account)
        uri = f"as://{account}/models/{digest}"
    model_properties = {"repository": uri, "content_sha256": digest, "storage_secret": target.storage_secret}
    model = Resource("model", content_name(name, model_properties), model_properties)

    accelerators = {v.accelerator for v in deployment.variants if v.accelerator in ("gpu", "fpga")}
    accelerator = next(iter(accelerators), "cpu")
    pool = pool_request(target, accelerator) if accelerator != "cpu" else None
    capacity = pool_capacity(target)
    needed = sum(accelerators_per_replica(v) * v.instance_count for v in deployment.variants)
    variants = tuple(
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
    taint = TAINTS.get(accelerator)
    resource = (
        GPU_RESOURCE if accelerator == "gpu" else target.fpga.resource_name if accelerator == "fpga" else None
    )
    endpoint_render = _render.EndpointRender(
        endpoint=name,
        namespace=target.namespace,
        image=_render.triton_image(spec.model.image),
        repository_uri=uri,
        storage_account=account,
        storage_key_secret=target.storage_secret or model.name,
        environment=dict(spec.model.environment),
        default_model=default_model,
        variants=variants,
        pool=pool.name if pool else None,
        accelerator_resource=resource,
        taint=taint,
        api_key_secret=f"{name}-api-key" if target.api_key else None,
        startup_seconds=spec.timeouts.create,
        user_annotations={"endpointkit-tags": json.dumps(spec.tags, sort_keys=True)} if spec.tags else {},
    )
    objects = (*(_render.deployment(endpoint_render, v) for v in variants), _render.service(endpoint_render))
    pool_summary = (
        None
        if pool is None
        else {
            "name": pool.name,
            "vm_size": pool.vm_size,
            "count": pool.count,
            "min_count": pool.min_count,
            "max_count": pool.max_count,
        }
    )
    summary = {
        "model": model.name,
        "image": endpoint_render.image,
        "default_model": default_model,
        "node_pool": pool_summary,
        "api_key": target.api_key,
        "variants": [
            {
                "name": v.name,
                "replicas": v.replicas,
                "weight": v.weight,
                "cpu": v.cpu,
                "memory": v.memory,
                "accelerators": v.accelerators,
                "rollout": "surge" if v.surge else "one at a time (no spare GPU)",
            }
            for v in variants
        ],
    }
    config_name = content_name(name, {"model": model.name, "objects": list(objects), "pool": pool_summary})
    config = Resource("endpoint_config", config_name, summary)
    endpoint = Resource(
        "endpoint",
        name,
        {
            "config": config_name,
            "cluster": target.cluster,
            "resource_group": target.resource_group,
            "namespace": target.namespace,
            "service": _render.service_name(name),
            "node_pool": pool_summary,
        },
    )
    infra_tags = {**spec.tags, MANAGED_BY_TAG: MANAGED_BY_VALUE, CREATED_FOR_TAG: name}
    desired = DesiredState(name, deployment.spec_hash(), model, config, endpoint, managed_tags(deployment))
    return EndpointPlan(
        desired, endpoint_render, objects, local, digest, account, pool, accelerator, infra_tags
    )


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
