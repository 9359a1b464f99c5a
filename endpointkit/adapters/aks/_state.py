"""An AKS endpoint's :class:`EndpointState`, from its cluster and what :func:`observe` read. Pure."""

from __future__ import annotations

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
    """IN_SERVICE when every Deployment rolled out and the Service has an address; FAILED with the pods' own
    reason when they cannot run; CREATING or UPDATING otherwise.

    ``extra`` names the cluster (so ``AksAdapter.from_state`` can reach it), the config, the default model
    and the key Secret's name, never the key.
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
    variants = tuple(
        VariantState(d.variant, None, d.replicas, d.weight, f"{d.available}/{d.replicas} available")
        for d in observation.deployments
    )
    extra = {
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
    return EndpointState(
        name,
        target_name,
        KIND,
        status,
        url=f"http://{observation.address}:{_render.HTTP_PORT}" if observation.address else None,
        variants=variants,
        reason=reason,
        spec_hash=labels.get(SPEC_HASH_TAG),
        region=cluster.location,
        expires_at=decode_expiry(labels.get(EXPIRES_AT_TAG), endpoint=name),
        extra=extra,
    )
