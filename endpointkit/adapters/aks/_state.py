"""An AKS endpoint's :class:`EndpointState`, from its cluster and what :func:`observe` read. Pure."""

from __future__ import annotations

from typing import Any

from endpointkit._endpoint_state import decode_expiry
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ClusterInfo
from endpointkit.adapters.aks._kube import Observation
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    SPEC_HASH_TAG,
    EndpointState,
    EndpointStatus,
    VariantState,
)
from endpointkit.spec import AksTarget

__all__ = ["CLUSTER_STATUS", "cluster_state", "endpoint_state"]

KIND = "aks"
# ARM provisioningState of the cluster while the endpoint cannot be read through it.
CLUSTER_STATUS = {
    "creating": EndpointStatus.CREATING,
    "updating": EndpointStatus.UPDATING,
    "upgrading": EndpointStatus.UPDATING,
    "scaling": EndpointStatus.UPDATING,
    "deleting": EndpointStatus.DELETING,
    "failed": EndpointStatus.FAILED,
}


def cluster_state(name: str, target_name: str, cluster: ClusterInfo | None) -> EndpointState:
    """The endpoint's state when its cluster is missing (NOT_FOUND) or not ``Succeeded``."""
    if cluster is None:
        return EndpointState(name, target_name, KIND, EndpointStatus.NOT_FOUND)
    status = CLUSTER_STATUS.get(cluster.provisioning_state.lower(), EndpointStatus.UNKNOWN)
    return EndpointState(
        name,
        target_name,
        KIND,
        status,
        region=cluster.location,
        reason=f"cluster {cluster.name} is {cluster.provisioning_state}",
    )


def endpoint_state(
    name: str, target_name: str, target: AksTarget, cluster: ClusterInfo, observation: Observation
) -> EndpointState:
    """IN_SERVICE when every Deployment rolled out, the Gateway is programmed and both routes are attached; FAILED
    with the pods' or the Gateway's own reason when they cannot serve; CREATING or UPDATING otherwise.

    The URL is ``https://HOST`` (``http://HOST`` with ``tls: off``) once the host is known. ``extra`` names the
    cluster (so ``AksAdapter.from_state`` can reach it), the config, the default model, the key Secret's name
    (never the key), and the front: ``host``, ``address`` (the Gateway's), ``gateway`` (``namespace/name``),
    ``gateway_programmed``, ``ca_certificate`` (the PEM of the endpoint's own CA with ``tls: auto``: public, what
    clients trust) and ``certificate_expires`` (ISO 8601) when known.
    """
    if not observation.exists:
        return EndpointState(name, target_name, KIND, EndpointStatus.NOT_FOUND, region=cluster.location)
    metadata = (observation.service or {}).get("metadata", {})
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    first = observation.deployments[0].annotations if observation.deployments else {}
    if observation.problem is not None:
        status, reason = EndpointStatus.FAILED, str(observation.problem)
    elif observation.ready:
        status, reason = EndpointStatus.IN_SERVICE, None
    elif observation.updating:
        status, reason = EndpointStatus.UPDATING, observation.describe()
    else:
        status, reason = EndpointStatus.CREATING, observation.describe()
    front = observation.front
    extra: dict[str, Any] = {
        "subscription_id": target.subscription_id,
        "resource_group": target.resource_group,
        "cluster": target.cluster,
        "namespace": target.namespace,
        "arm_endpoint": target.arm_endpoint,
        "service": _render.service_name(name),
        "config": annotations.get(_render.ANNOTATION_CONFIG),
        "default_model": first.get(_render.ANNOTATION_DEFAULT_MODEL),
        "api_key_secret": annotations.get(_render.ANNOTATION_API_KEY),
        "address": observation.address,
    }
    url = None
    if front is not None:
        extra |= {
            "host": front.host,
            "gateway": front.front.gateway_label,
            "gateway_programmed": front.gateway.programmed,
            "tls": front.front.tls,
        }
        if front.ca_certificate:
            extra["ca_certificate"] = front.ca_certificate
        if front.certificate is not None:
            extra["certificate_expires"] = front.certificate.not_after.isoformat()
        if front.host:
            url = f"{front.scheme}://{front.host}"
    return EndpointState(
        name,
        target_name,
        KIND,
        status,
        url=url,
        variants=_variants(observation),
        reason=reason,
        spec_hash=labels.get(SPEC_HASH_TAG),
        region=cluster.location,
        expires_at=decode_expiry(labels.get(EXPIRES_AT_TAG), endpoint=name),
        extra=extra,
    )


def _variants(observation: Observation) -> tuple[VariantState, ...]:
    """One entry per version of each variant: replicas, the spec weight the anchor Service records, and in the
    status text the share of traffic the HTTPRoute gives it now."""
    weights = _render.weights_of(observation.service)
    routed = observation.front.weights if observation.front is not None else {}
    total = sum(routed.values())
    variants = []
    for d in observation.deployments:
        status = f"{d.available}/{d.replicas} available"
        if total:
            status += f", {100 * routed.get(d.name, 0) / total:.3g}% of traffic"
        variants.append(VariantState(d.variant, None, d.replicas, weights.get(d.variant, 0.0), status))
    return tuple(variants)
