"""Reading an AKS endpoint: one observation of what runs (Deployments, pods, Gateway, routes), and what ``read``
reports beyond its state: which of the desired names exist, the config and model it runs, and the drift from
what its config records (fields changed by hand, a certificate due)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from endpointkit._observations import Drift
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._desired import EndpointPlan, config_objects
from endpointkit.adapters.aks._drift import endpoint_drift, live_deployments
from endpointkit.adapters.aks._front import read_front
from endpointkit.adapters.aks._infra import pool_request_for
from endpointkit.adapters.aks._kube import KubeClient, Observation, ScaleUpGrace, observe
from endpointkit.adapters.aks._routes import front_of
from endpointkit.adapters.aks._secrets import certificate_drift
from endpointkit.adapters.base import DesiredState, Resource, ResourceKind
from endpointkit.spec import AksTarget, Deployment

__all__ = ["Records", "existing_names", "observe_endpoint", "records"]


def observe_endpoint(
    kube: KubeClient,
    deployment: Deployment,
    *,
    location: str | None,
    log_lines: int,
    grace: ScaleUpGrace | None = None,
) -> Observation:
    """Read the endpoint once: Deployments, anchor Service, pods' problems, and (when it exists) its Gateway and
    routes. Read-only."""
    target = deployment.target
    assert isinstance(target, AksTarget)
    pool = pool_request_for(deployment)
    observation = observe(
        kube,
        namespace=target.namespace,
        endpoint=deployment.name,
        service=_render.service_name(deployment.name),
        autoscaling=pool is not None and pool.autoscale,
        log_lines=log_lines,
        grace=grace,
    )
    if not observation.exists:
        return observation
    front = read_front(kube, front_of(deployment.name, target), location=location)
    return replace(observation, front=front)


def existing_names(
    kube: KubeClient, namespace: str, desired: DesiredState
) -> frozenset[tuple[ResourceKind, str]]:
    """The desired model (its Secret) and config (its ConfigMap) that exist already. Two reads."""
    existing: set[tuple[ResourceKind, str]] = set()
    if kube.get("Secret", desired.model.name, namespace) is not None:
        existing.add(("model", desired.model.name))
    if kube.get("ConfigMap", desired.config.name, namespace) is not None:
        existing.add(("endpoint_config", desired.config.name))
    return frozenset(existing)


@dataclass(frozen=True)
class Records:
    """The running config and model, the drift, and the plan line of a certificate apply would replace."""

    config: Resource | None
    model: Resource | None
    drift: tuple[Drift, ...]
    certificate_note: str | None


def records(
    kube: KubeClient,
    deployment: Deployment,
    desired: DesiredState,
    plan: EndpointPlan,
    observation: Observation,
    running: str | None,
) -> Records:
    """Read the record of the ``running`` config and compare what runs against it. Read-only.

    Without a record (someone deleted the ConfigMap), the spec's render stands in for it: the same content hash.
    """
    namespace = plan.render.namespace
    config = model = None
    found = kube.get("ConfigMap", running, namespace) if running else None
    if found is not None:
        summary = json.loads((found.get("data") or {}).get("summary.json", "{}"))
        config = Resource("endpoint_config", str(running), summary)
        model = Resource("model", str(summary.get("model")), {}) if summary.get("model") else None
    rendered = config_objects(found.get("data") or {}) if found else plan.objects
    live = live_deployments(kube, namespace, deployment.name)
    drift = endpoint_drift(observation, live, rendered, desired)
    front = observation.front
    renewal = certificate_drift(
        deployment, plan.front, front.host if front else None, front.certificate if front else None
    )
    note = None
    if renewal is not None:
        drift = (*drift, renewal)
        note = f"~ certificate {plan.front.tls_secret} ({renewal.wanted}: {renewal.live or 'missing'})"
    return Records(config, model, drift, note)
