"""Endpoints on a cluster found by their labels, and removed without the spec they came from (``reap``)."""

from __future__ import annotations

from endpointkit._endpoint_state import decode_expiry
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    SPEC_HASH_TAG,
    EndpointState,
    EndpointStatus,
)
from endpointkit.errors import ConflictError
from endpointkit.spec import AksTarget

__all__ = ["list_managed", "remove_endpoint"]

_MANAGED = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE}"


def list_managed(kube: KubeClient, target_name: str, target: AksTarget, region: str) -> list[EndpointState]:
    """Every endpointkit endpoint on the cluster (any namespace), from its Service: one list call."""
    states = []
    for service in kube.list("Service", None, label_selector=f"{_MANAGED},{_render.LABEL_ROLE}=endpoint"):
        metadata = service["metadata"]
        labels = metadata.get("labels") or {}
        name = labels.get(_render.LABEL_ENDPOINT)
        if not name:
            continue
        ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
        address = (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None
        states.append(
            EndpointState(
                str(name),
                target_name,
                "aks",
                EndpointStatus.IN_SERVICE if address else EndpointStatus.CREATING,
                url=f"http://{address}:{_render.HTTP_PORT}" if address else None,
                spec_hash=labels.get(SPEC_HASH_TAG),
                region=region,
                expires_at=decode_expiry(labels.get(EXPIRES_AT_TAG), endpoint=str(name)),
                extra={
                    "subscription_id": target.subscription_id,
                    "resource_group": target.resource_group,
                    "cluster": target.cluster,
                    "namespace": metadata.get("namespace", target.namespace),
                    "arm_endpoint": target.arm_endpoint,
                    "service": metadata["name"],
                },
            )
        )
    return states


def remove_endpoint(kube: KubeClient, namespace: str, name: str) -> set[str]:
    """Delete an endpoint's Service, Deployments, config and model objects and key; returns the pools it used.

    Idempotent. Refuses (ConflictError) a Service of that name that endpointkit does not manage.
    """
    service = kube.get("Service", _render.service_name(name), namespace)
    if (
        service is not None
        and (service["metadata"].get("labels") or {}).get(MANAGED_BY_TAG) != MANAGED_BY_VALUE
    ):
        raise ConflictError(
            f"Service {_render.service_name(name)} in namespace {namespace} is not managed by endpointkit: "
            "leaving it",
            provider="kubernetes",
            operation=f"destroy endpoint {name}",
        )
    selector = f"{_MANAGED},{_render.LABEL_ENDPOINT}={name}"
    pools: set[str] = set()
    kube.delete("Service", _render.service_name(name), namespace)
    for kind in ("Deployment", "ConfigMap", "Secret"):
        for item in kube.list(kind, namespace, label_selector=selector):
            labels = item["metadata"].get("labels") or {}
            if _render.LABEL_POOL in labels:
                pools.add(str(labels[_render.LABEL_POOL]))
            kube.delete(kind, item["metadata"]["name"], namespace)
    return pools
