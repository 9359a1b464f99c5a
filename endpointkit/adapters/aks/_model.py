"""The model of an AKS endpoint: a local repository uploaded to Blob storage once (by content), and the Secret
that tells Triton where it is and, for an uploaded repository, holds the storage key."""

from __future__ import annotations

from endpointkit._wait import Progress
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ArmClient
from endpointkit.adapters.aks._desired import EndpointPlan
from endpointkit.adapters.aks._errors import RetryPolicy
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.aks._rollout import Stamp
from endpointkit.adapters.aks._storage import CONTAINER, ContainerFactory, upload_repository

__all__ = ["create_model"]


def create_model(
    plan: EndpointPlan,
    kube: KubeClient,
    stamp: Stamp,
    *,
    arm: ArmClient,
    containers: ContainerFactory,
    retry: RetryPolicy,
    progress: Progress | None,
) -> None:
    """Upload a local repository (skipped when its content is there already) and apply the model Secret.

    With ``storage_secret`` in the target, Triton reads with the user's Secret and endpointkit keeps no copy of
    the storage key.
    """
    key = None
    if plan.local_repository is not None and plan.content_digest is not None:
        key = arm.storage_key(plan.storage_account)
        container = containers(plan.storage_account, key, CONTAINER)
        try:
            upload_repository(
                container, plan.local_repository, plan.content_digest, retry=retry, progress=progress
            )
        finally:
            if hasattr(container, "close"):
                container.close()
        if arm.target.storage_secret is not None:
            key = None
    secret = _render.model_secret(
        plan.desired.model.name,
        plan.render.namespace,
        endpoint=plan.render.endpoint,
        repository_uri=plan.render.repository_uri,
        account=plan.storage_account,
        key=key,
    )
    kube.apply(stamp(secret))
