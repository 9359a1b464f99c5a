"""Drift on AKS: the live Deployments, anchor Service, routes and labels of an endpoint against the objects its
config records.

Compared only while the endpoint runs the config the spec renders (otherwise the config changes because the spec
did, which plan shows as an update by itself), and only the fields the rendered objects set: each Deployment's
``spec.replicas``, the Triton container's image, args and resource requests and limits. Quantities are compared
as quantities, since the API server returns them in canonical form (``nvidia.com/gpu: 1`` comes back as ``"1"``,
``0.5`` CPU as ``"500m"``); a field another tool added (a limit endpointkit does not set) is not drift, as
server-side apply leaves another manager's fields alone. Tags are the Service's labels and the user tags it
carries in its ``endpointkit-tags`` annotation, compared while the spec is the one last applied. The routes'
weights (a share moved by hand, or a rollout cut short) are compared per backend Service of the HTTPRoute's main
rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from endpointkit._lazy import require
from endpointkit._observations import Drift
from endpointkit.adapters._drift import tag_drift
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._kube import KubeClient, Observation
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE, SPEC_HASH_TAG, DesiredState

__all__ = ["ROUTES_FIELD", "SERVICE_FIELD", "deployment_drift", "endpoint_drift", "live_deployments"]

#: the field of a missing anchor Service (the endpoint's record and in-cluster address)
SERVICE_FIELD = "service"
#: the field of the routes' weights
ROUTES_FIELD = "routes.weights"
# Where plan_endpoint puts the spec's own tags: on the Service and Deployments as one JSON annotation, since
# tag values need not be valid label values.
_TAGS_ANNOTATION = "endpointkit-tags"
_CONTAINER = "triton"


def live_deployments(kube: KubeClient, namespace: str, endpoint: str) -> list[dict[str, Any]]:
    """The endpoint's Deployments as the API server returns them (one list call). Read-only."""
    selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{_render.LABEL_ENDPOINT}={endpoint}"
    return kube.list("Deployment", namespace, label_selector=selector)


def endpoint_drift(
    observation: Observation,
    live: Sequence[Mapping[str, Any]],
    rendered: Sequence[Mapping[str, Any]],
    desired: DesiredState,
) -> tuple[Drift, ...]:
    """Every field of an existing endpoint that differs from ``rendered`` (the objects of ``desired.config``).

    ``observation`` gives the Service; ``live`` the Deployments (:func:`live_deployments`). Makes no call.
    """
    if not observation.exists or _running_config(observation) != desired.config.name:
        return ()
    found: list[Drift] = []
    if observation.service is None:
        found.append(Drift(SERVICE_FIELD, None, _render.service_name(desired.endpoint.name)))
    found.extend(deployment_drift(live, rendered))
    found.extend(_route_drift(observation, rendered))
    if observation.service is not None:
        labels = dict(observation.service.get("metadata", {}).get("labels") or {})
        if labels.get(SPEC_HASH_TAG) in (None, desired.spec_hash):
            found.extend(tag_drift(_live_tags(observation.service), desired.tags))
    return tuple(found)


def deployment_drift(live: Sequence[Mapping[str, Any]], rendered: Sequence[Mapping[str, Any]]) -> list[Drift]:
    """The fields where the live Deployments differ from the rendered ones, a missing or extra variant included."""
    wanted = [obj for obj in rendered if obj.get("kind") == "Deployment"]
    by_name = {str(obj["metadata"]["name"]): obj for obj in live}
    found: list[Drift] = []
    for obj in wanted:
        variant = _variant_of(obj)
        current = by_name.pop(str(obj["metadata"]["name"]), None)
        if current is None:
            found.append(Drift(f"variants.{variant}", None, "present"))
        else:
            found.extend(_fields_drift(f"variants.{variant}", current, obj))
    for extra in by_name.values():
        found.append(Drift(f"variants.{_variant_of(extra)}", "present", None))
    return found


def _fields_drift(prefix: str, live: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Drift]:
    found: list[Drift] = []
    live_replicas = int(live.get("spec", {}).get("replicas", 1))
    wanted_replicas = int(wanted["spec"].get("replicas", 1))
    if live_replicas != wanted_replicas:
        found.append(Drift(f"{prefix}.replicas", live_replicas, wanted_replicas))
    live_container, wanted_container = _container(live), _container(wanted)
    for key in ("image", "args"):
        if live_container.get(key) != wanted_container.get(key):
            found.append(Drift(f"{prefix}.{key}", live_container.get(key), wanted_container.get(key)))
    live_resources = live_container.get("resources") or {}
    for section, quantities in sorted((wanted_container.get("resources") or {}).items()):
        current = live_resources.get(section) or {}
        for name, quantity in sorted(quantities.items()):
            if not _same_quantity(current.get(name), quantity):
                found.append(Drift(f"{prefix}.resources.{section}.{name}", current.get(name), str(quantity)))
    return found


def _route_drift(observation: Observation, rendered: Sequence[Mapping[str, Any]]) -> list[Drift]:
    """The HTTPRoute's weights per backend Service against the rendered ones (missing route: no weights)."""
    if observation.front is None:
        return []
    route = next((obj for obj in rendered if obj.get("kind") == "HTTPRoute"), None)
    if route is None:
        return []
    wanted = {
        str(ref["name"]): int(ref.get("weight", 1))
        for rule in route["spec"]["rules"]
        if not any(match.get("headers") for match in rule.get("matches") or ())
        for ref in rule.get("backendRefs") or ()
    }
    live = observation.front.weights
    if live == wanted and not observation.front.preview:
        return []
    return [Drift(ROUTES_FIELD, live or None, wanted)]


def _running_config(observation: Observation) -> str | None:
    """The config the anchor Service was applied from, or without it the one the routes were."""
    if observation.service is not None:
        return _render.applied_config(observation.service)
    route = observation.front.http_route if observation.front is not None else None
    return _render.applied_config(route)


def _live_tags(service: Mapping[str, Any]) -> dict[str, str]:
    metadata = service.get("metadata", {})
    tags = dict(metadata.get("labels") or {})
    try:
        user = json.loads((metadata.get("annotations") or {}).get(_TAGS_ANNOTATION, "{}"))
    except ValueError:
        user = {}  # an annotation edited into invalid JSON holds no tag: each one shows as missing
    if isinstance(user, dict):
        tags.update({str(key): str(value) for key, value in user.items()})
    return tags


def _variant_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    return str((metadata.get("labels") or {}).get(_render.LABEL_VARIANT, metadata.get("name")))


def _container(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    named = [c for c in containers if c.get("name") == _CONTAINER]
    return named[0] if named else {}


def _same_quantity(live: Any, wanted: Any) -> bool:
    if live is None:
        return False
    quantity = require("kubernetes.utils.quantity", extra="aks")
    try:
        parsed_live: Decimal = quantity.parse_quantity(live)
        parsed_wanted: Decimal = quantity.parse_quantity(wanted)
    except ValueError:
        return str(live) == str(wanted)
    return parsed_live == parsed_wanted
