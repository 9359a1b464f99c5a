"""Pieces of applying an endpoint's objects: per-apply stamps, re-stamping an endpoint whose config is
unchanged, the endpoint key, and undoing a failed update."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._desired import EndpointPlan, config_objects
from endpointkit.adapters.aks._kube import KubeClient, Observation
from endpointkit.adapters.base import EXPIRES_AT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE, SPEC_HASH_TAG
from endpointkit.adapters.naming import expires_at
from endpointkit.errors import ProviderError
from endpointkit.spec import Deployment

__all__ = ["Stamp", "config_map", "ensure_key", "restamp", "restore", "runs_config", "stamper"]

Stamp = Callable[[dict[str, Any]], dict[str, Any]]


def stamper(deployment: Deployment, plan: EndpointPlan) -> Stamp:
    """Adds what changes per apply: spec hash and expiry labels; config and key-Secret annotations."""
    labels = _render.volatile_labels(deployment.spec_hash(), expires_at(deployment))
    annotations = {_render.ANNOTATION_CONFIG: plan.desired.config.name}
    if plan.render.api_key_secret is not None:
        annotations[_render.ANNOTATION_API_KEY] = plan.render.api_key_secret

    def stamp(obj: dict[str, Any]) -> dict[str, Any]:
        extra = annotations if obj["kind"] in ("Service", "Deployment") else {}
        return _render.stamp(obj, labels=labels, annotations=extra)

    return stamp


def config_map(deployment: Deployment, plan: EndpointPlan) -> dict[str, Any]:
    """The endpoint config's ConfigMap: the rendered objects and the summary ``read`` reports."""
    return _render.config_map(
        plan.desired.config.name,
        plan.render.namespace,
        endpoint=deployment.name,
        pool=plan.render.pool,
        objects=json.dumps(list(plan.objects), sort_keys=True),
        summary=json.dumps(dict(plan.desired.config.properties), sort_keys=True),
    )


def runs_config(before: Observation, plan: EndpointPlan) -> bool:
    """Whether the endpoint's Service and exactly its wanted Deployments are already on ``plan``'s config."""
    config = plan.desired.config.name
    wanted = {obj["metadata"]["name"] for obj in plan.objects if obj["kind"] == "Deployment"}
    return (
        _render.applied_config(before.service) == config
        and {d.name for d in before.deployments} == wanted
        and all(d.annotations.get(_render.ANNOTATION_CONFIG) == config for d in before.deployments)
    )


def restamp(deployment: Deployment, plan: EndpointPlan, kube: KubeClient, stamp: Stamp) -> None:
    """Re-apply the endpoint's objects with this apply's labels (spec hash, expiry) and annotations (tags).

    For an endpoint already on ``plan``'s config: Deployments, Service and ConfigMap are rendered exactly as
    running, so only metadata changes and no pod restarts; the model and key Secrets are re-applied from what
    they hold. Server-side apply drops what the field manager applied before and leaves out now, so an expiry
    label goes away with the ttl.
    """
    for obj in plan.objects:
        kube.apply(stamp(obj))
    kube.apply(stamp(config_map(deployment, plan)))
    namespace = plan.render.namespace
    for name in (plan.desired.model.name, plan.key_secret):
        found = kube.get("Secret", name, namespace)
        labels = dict((found or {}).get("metadata", {}).get("labels") or {})
        if found is None or labels.get(MANAGED_BY_TAG) != MANAGED_BY_VALUE:
            continue
        for volatile in (SPEC_HASH_TAG, EXPIRES_AT_TAG):
            labels.pop(volatile, None)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": found.get("type", "Opaque"),
            "data": dict(found.get("data") or {}),
        }
        kube.apply(stamp(secret))


def ensure_key(plan: EndpointPlan, kube: KubeClient, namespace: str, stamp: Stamp) -> None:
    """Create the endpoint key Secret when the spec asks for a key and none exists.

    Created once and kept: re-applying must not rotate a key that clients already hold.
    """
    if plan.render.api_key_secret is None or kube.get("Secret", plan.key_secret, namespace):
        return
    key = secrets.token_urlsafe(32)
    kube.apply(stamp(_render.key_secret(plan.key_secret, namespace, endpoint=plan.render.endpoint, key=key)))


def restore(
    kube: KubeClient, namespace: str, config_name: str | None, applied: set[str], before: Observation
) -> None:
    """Put the previous Deployments back after a failed update, from the previous config's record.

    Best effort: the update's own error is what the caller raises, so a failure here is swallowed.
    """
    if not config_name:
        return
    try:
        found = kube.get("ConfigMap", config_name, namespace)
        if found is None:
            return
        labels = (before.service or {}).get("metadata", {}).get("labels") or {}
        volatile = {k: v for k, v in labels.items() if k in (SPEC_HASH_TAG, EXPIRES_AT_TAG)}
        old = [o for o in config_objects(found.get("data") or {}) if o.get("kind") == "Deployment"]
        for obj in old:
            annotations = {_render.ANNOTATION_CONFIG: config_name}
            kube.apply(_render.stamp(obj, labels=volatile, annotations=annotations))
        for name in applied - {o["metadata"]["name"] for o in old}:
            kube.delete("Deployment", name, namespace)
    except ProviderError:
        return
