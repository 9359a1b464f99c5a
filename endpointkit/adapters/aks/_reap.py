"""Endpoints on a cluster found by their labels, and removed without the spec they came from (``reap``)."""

from __future__ import annotations

from typing import Any

from endpointkit._endpoint_state import decode_expiry
from endpointkit.adapters.aks import _gateway, _render
from endpointkit.adapters.aks._gateway import route_status
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    SPEC_HASH_TAG,
    EndpointState,
    EndpointStatus,
)
from endpointkit.errors import ConflictError, NotFoundError
from endpointkit.spec import AksTarget

__all__ = ["list_managed", "remove_endpoint"]

_MANAGED = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE}"


def list_managed(kube: KubeClient, target_name: str, target: AksTarget, region: str) -> list[EndpointState]:
    """Every endpointkit endpoint on the cluster (any namespace), from its anchor Service, with its URL from its
    HTTPRoute and Gateway: three list calls."""
    routes = {
        (
            str(r["metadata"].get("namespace")),
            str((r["metadata"].get("labels") or {}).get(_render.LABEL_ENDPOINT)),
        ): r
        for r in _listed(kube, "HTTPRoute", None, f"{_MANAGED},{_render.LABEL_ROLE}=route")
    }
    gateways = {
        (str(g["metadata"].get("namespace")), str(g["metadata"]["name"])): g
        for g in _listed(kube, "Gateway", None, f"{_MANAGED},{_render.LABEL_ROLE}=gateway")
    }
    states = []
    for service in kube.list("Service", None, label_selector=f"{_MANAGED},{_render.LABEL_ROLE}=endpoint"):
        metadata = service["metadata"]
        labels = metadata.get("labels") or {}
        name = labels.get(_render.LABEL_ENDPOINT)
        if not name:
            continue
        namespace = str(metadata.get("namespace", target.namespace))
        route = routes.get((namespace, str(name)))
        url, attached = _url(route, gateways, region)
        states.append(
            EndpointState(
                str(name),
                target_name,
                "aks",
                EndpointStatus.IN_SERVICE if attached else EndpointStatus.CREATING,
                url=url,
                spec_hash=labels.get(SPEC_HASH_TAG),
                region=region,
                expires_at=decode_expiry(labels.get(EXPIRES_AT_TAG), endpoint=str(name)),
                extra={
                    "subscription_id": target.subscription_id,
                    "resource_group": target.resource_group,
                    "cluster": target.cluster,
                    "namespace": namespace,
                    "arm_endpoint": target.arm_endpoint,
                    "service": metadata["name"],
                },
            )
        )
    return states


def _url(
    route: dict[str, Any] | None, gateways: dict[tuple[str, str], dict[str, Any]], region: str
) -> tuple[str | None, bool]:
    """The endpoint's URL from its HTTPRoute (host name) or its own Gateway (DNS label), and whether the route is
    attached (Accepted) to its Gateway."""
    if route is None:
        return None, False
    spec = route.get("spec") or {}
    parents = spec.get("parentRefs") or [{}]
    parent = (
        str(parents[0].get("namespace") or route["metadata"].get("namespace")),
        str(parents[0].get("name")),
    )
    gateway = gateways.get(parent)
    listeners = ((gateway or {}).get("spec") or {}).get("listeners") or [{}]
    scheme = "http" if listeners[0].get("protocol") == "HTTP" else "https"
    hosts = list(spec.get("hostnames") or ())
    if not hosts and gateway is not None:
        annotations = ((gateway.get("spec") or {}).get("infrastructure") or {}).get("annotations") or {}
        label = annotations.get(_gateway.ANNOTATION_AZURE_DNS_LABEL)
        if label:
            hosts = [_gateway.azure_dns_name(str(label), region)]
    attached = route_status(route, parent).accepted
    return (f"{scheme}://{hosts[0]}" if hosts else None), attached


def _listed(kube: KubeClient, kind: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
    """``kube.list``; for a Gateway API kind on a cluster without its CRDs (the API server answers 404 for the
    whole resource), nothing."""
    try:
        return kube.list(kind, namespace, label_selector=selector)
    except NotFoundError:
        if kind not in ("Gateway", "HTTPRoute", "GRPCRoute"):
            raise
        return []


# Deleted in this order: what routes traffic first, then what serves it, then the records and Secrets.
_KINDS = ("HTTPRoute", "GRPCRoute", "Gateway", "Service", "Deployment", "ConfigMap", "Secret")


def remove_endpoint(kube: KubeClient, namespace: str, name: str, *, records: bool = True) -> set[str]:
    """Delete an endpoint's routes, its own Gateway, its Services and Deployments, key and TLS Secrets and, with
    ``records``, its config ConfigMaps and model Secrets; returns the pools it used.

    Only objects labelled as endpointkit's for this endpoint go: a Gateway the spec named (``gateway``) stays.
    Idempotent. Refuses (ConflictError) an anchor Service of that name that endpointkit does not manage.
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
    for kind in _KINDS:
        if kind == "ConfigMap" and not records:
            continue
        for item in _listed(kube, kind, namespace, selector):
            labels = item["metadata"].get("labels") or {}
            if not records and labels.get(_render.LABEL_ROLE) == "model":
                continue
            if _render.LABEL_POOL in labels:
                pools.add(str(labels[_render.LABEL_POOL]))
            kube.delete(kind, item["metadata"]["name"], namespace)
    return pools
