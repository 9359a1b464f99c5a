"""Pieces of applying an endpoint's objects: per-apply stamps, which objects need a write, re-stamping an endpoint
whose config is unchanged, and the endpoint key.

What a write touches: a version (Deployment and its Service) carries no per-apply stamp, so it is written only
when it is new, its rendering changed (replicas, strategy) or it drifted; the anchor Service, the Gateway, the
routes and the Secrets carry the spec-hash and expiry labels and are re-stamped by every apply that changes them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._desired import EndpointPlan
from endpointkit.adapters.aks._drift import deployment_drift
from endpointkit.adapters.aks._kube import KubeClient, Observation
from endpointkit.adapters.base import EXPIRES_AT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE, SPEC_HASH_TAG
from endpointkit.adapters.naming import content_hash, expires_at
from endpointkit.spec import Deployment

__all__ = [
    "ANNOTATION_RENDERED",
    "Stamp",
    "apply_changed",
    "apply_versions",
    "config_map",
    "ensure_key",
    "is_version",
    "rendered_hash",
    "restamp",
    "runs_config",
    "stamper",
]

Stamp = Callable[[dict[str, Any]], dict[str, Any]]
#: a hash of the object as rendered (before stamps): an equal hash on the live object means it needs no write
ANNOTATION_RENDERED = "endpointkit-rendered"


def is_version(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` belongs to one version of a variant: its Deployment or its ClusterIP Service."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return obj.get("kind") == "Deployment" or labels.get(_render.LABEL_ROLE) == "backend"


def stamper(deployment: Deployment, plan: EndpointPlan) -> Stamp:
    """Adds what changes per apply. Every object gets the hash of its rendering; all but the versions get the
    spec-hash and expiry labels; the anchor Service and the routes name the config; the anchor the key Secret."""
    labels = _render.volatile_labels(deployment.spec_hash(), expires_at(deployment))
    anchor = {_render.ANNOTATION_CONFIG: plan.desired.config.name}
    if plan.render.api_key_secret is not None:
        anchor[_render.ANNOTATION_API_KEY] = plan.render.api_key_secret
    anchor_name = _render.service_name(plan.render.endpoint)

    def stamp(obj: dict[str, Any]) -> dict[str, Any]:
        annotations = {ANNOTATION_RENDERED: content_hash(obj)[:16]}
        if obj["kind"] in ("HTTPRoute", "GRPCRoute"):
            annotations[_render.ANNOTATION_CONFIG] = plan.desired.config.name
        elif obj["kind"] == "Service" and obj["metadata"]["name"] == anchor_name:
            annotations |= anchor
        return _render.stamp(obj, labels={} if is_version(obj) else labels, annotations=annotations)

    return stamp


def rendered_hash(obj: Mapping[str, Any] | None) -> str | None:
    """The rendering hash a live object was stamped with, if any."""
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_RENDERED)


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
    """Whether the endpoint's anchor Service names ``plan``'s config and exactly its versions run."""
    return _render.applied_config(before.service) == plan.desired.config.name and {
        d.name for d in before.deployments
    } == set(plan.versions.values())


def apply_versions(
    kube: KubeClient, plan: EndpointPlan, stamp: Stamp, live: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Write the plan's versions that are missing, rendered differently, or drifted (fields set by hand);
    leave the others alone. ``live`` is the endpoint's Deployments (``_drift.live_deployments``).

    Returns the names of the Deployments written.
    """
    by_name = {str(obj["metadata"]["name"]): obj for obj in live}
    written = []
    for obj in plan.deployments:
        name = str(obj["metadata"]["name"])
        stamped = stamp(obj)
        current = by_name.get(name)
        if (
            current is None
            or rendered_hash(current) != rendered_hash(stamped)
            or deployment_drift([current], [obj])
        ):
            kube.apply(stamped)
            written.append(name)
    selector = (
        f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{_render.LABEL_ENDPOINT}={plan.render.endpoint},"
        f"{_render.LABEL_ROLE}=backend"
    )
    services = {
        str(s["metadata"]["name"]): s
        for s in kube.list("Service", plan.render.namespace, label_selector=selector)
    }
    for obj in plan.objects:
        if obj["kind"] == "Service" and is_version(obj):
            stamped = stamp(obj)
            if rendered_hash(services.get(obj["metadata"]["name"])) != rendered_hash(stamped):
                kube.apply(stamped)
    return written


def apply_changed(kube: KubeClient, stamped: dict[str, Any], *, force: bool = False) -> bool:
    """Apply ``stamped`` unless the live object already carries its labels and annotations (the rendering hash
    among them); returns whether it wrote. ``force`` writes anyway (a field changed by hand: drift)."""
    metadata = stamped["metadata"]
    live = None if force else kube.get(stamped["kind"], metadata["name"], metadata.get("namespace"))
    if live is not None:
        current = live.get("metadata") or {}
        annotations = current.get("annotations") or {}
        if (current.get("labels") or {}) == metadata.get("labels", {}) and all(
            annotations.get(key) == value for key, value in (metadata.get("annotations") or {}).items()
        ):
            return False
    kube.apply(stamped)
    return True


def restamp(
    deployment: Deployment, plan: EndpointPlan, kube: KubeClient, stamp: Stamp, *, routes: bool = False
) -> None:
    """Re-stamp the endpoint's objects with this apply's labels (spec hash, expiry) and annotations (tags).

    For an endpoint already on ``plan``'s config: the anchor Service, Gateway, routes and ConfigMap are rendered
    exactly as running, so only metadata changes, and an object already carrying the stamps is not written; the
    routes are written with ``routes`` (their weights were changed by hand). Versions are not written
    (:func:`apply_versions` puts back what was changed by hand); the model and key Secrets are re-applied from
    what they hold. Server-side apply drops what the field manager applied before and leaves out now, so an
    expiry label goes away with the ttl.
    """
    for obj in plan.objects:
        if not is_version(obj):
            apply_changed(kube, stamp(obj), force=routes and obj["kind"] in ("HTTPRoute", "GRPCRoute"))
    apply_changed(kube, stamp(config_map(deployment, plan)))
    namespace = plan.render.namespace
    volatile = _volatile(stamp)
    for name in (plan.desired.model.name, plan.key_secret):
        found = kube.get("Secret", name, namespace)
        labels = dict((found or {}).get("metadata", {}).get("labels") or {})
        if found is None or labels.get(MANAGED_BY_TAG) != MANAGED_BY_VALUE:
            continue
        if {k: v for k, v in labels.items() if k in (SPEC_HASH_TAG, EXPIRES_AT_TAG)} == volatile:
            continue
        for stale in (SPEC_HASH_TAG, EXPIRES_AT_TAG):
            labels.pop(stale, None)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": found.get("type", "Opaque"),
            "data": dict(found.get("data") or {}),
        }
        kube.apply(_render.stamp(secret, labels=volatile, annotations={}))


def _volatile(stamp: Stamp) -> dict[str, str]:
    """The spec-hash and expiry labels ``stamp`` puts on an unversioned object."""
    probe = stamp({"kind": "ConfigMap", "metadata": {"name": "probe", "labels": {}}})
    labels = probe["metadata"]["labels"]
    return {k: v for k, v in labels.items() if k in (SPEC_HASH_TAG, EXPIRES_AT_TAG)}


def ensure_key(plan: EndpointPlan, kube: KubeClient, namespace: str, stamp: Stamp) -> None:
    """Create the endpoint key Secret when the spec asks for a key and none exists.

    Created once and kept: re-applying must not rotate a key that clients already hold.
    """
    if plan.render.api_key_secret is None or kube.get("Secret", plan.key_secret, namespace):
        return
    key = secrets.token_urlsafe(32)
    secret = _render.key_secret(plan.key_secret, namespace, endpoint=plan.render.endpoint, key=key)
    kube.apply(_render.stamp(secret, labels=_volatile(stamp), annotations={}))
