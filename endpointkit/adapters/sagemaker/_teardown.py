"""Deleting SageMaker endpoints and models: only what endpointkit manages, waiting until an endpoint is gone.

An endpoint's rollout alarms (``_alarms``) go with it: before the endpoint itself, so that a teardown cut short
leaves the endpoint, with its ``ALARMS_TAG``, for the next one to find them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from endpointkit._wait import Progress
from endpointkit.adapters.sagemaker._alarms import ALARMS_TAG, RolloutAlarms
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._artifacts import ArtifactStore
from endpointkit.adapters.sagemaker._autoscaling import Autoscaler
from endpointkit.adapters.sagemaker._state import MOVING, Description, EndpointWaiter
from endpointkit.errors import ConflictError, NotFoundError, ProviderError

__all__ = ["Teardown"]

logger = logging.getLogger("endpointkit.sagemaker")


class Teardown:
    """Deletes managed endpoints (autoscaling first, then a bounded wait until gone) and models with their archives.

    Shared by a spec's deletes (``SageMakerAdapter.delete``), the retry of a create on a fallback instance type
    and reaping without a spec (``_reap.Reaper``). Deletes are idempotent: what is already gone is skipped.
    """

    def __init__(
        self,
        api: SageMakerApi,
        *,
        autoscaler: Autoscaler,
        waiter: EndpointWaiter,
        artifacts: ArtifactStore,
        alarms: RolloutAlarms,
    ) -> None:
        self._api = api
        self._autoscaler = autoscaler
        self._waiter = waiter
        self._artifacts = artifacts
        self._alarms = alarms

    def delete_model(
        self,
        name: str,
        *,
        purge_artifacts: bool,
        owns_artifact: Callable[[str], bool],
        description: Description | None = None,
    ) -> None:
        """Delete a model (gone already is fine); with ``purge_artifacts``, its archive too if ``owns_artifact``."""
        url: str | None = None
        if purge_artifacts:
            if description is None:
                description = self._api.describe("model", name)
            url = (description or {}).get("PrimaryContainer", {}).get("ModelDataUrl")
        try:
            self._api.call("delete_model", f"model {name}", ModelName=name)
        except NotFoundError:
            logger.debug("model %s is already gone", name)
        if url and owns_artifact(url):
            self._artifacts.delete(url)

    def managed_endpoint(self, name: str, operation: str) -> Description | None:
        """DescribeEndpoint (None when it does not exist), refusing an endpoint endpointkit does not manage.

        Raises:
            ConflictError: the endpoint has no ``managed-by=endpointkit`` tag (code ``NotManaged``).
        """
        description = self._api.describe("endpoint", name)
        try:
            managed = description is not None and self._api.is_managed(description)
        except NotFoundError:  # deleted between DescribeEndpoint and ListTags
            description = None
        if description is None:
            self._api.forget_endpoint(name)
            return None
        if not managed:
            raise ConflictError(
                f"endpoint {name} in {self._api.region} is not managed by endpointkit (no managed-by=endpointkit "
                "tag): not deleting it",
                provider="sagemaker",
                operation=operation,
                code="NotManaged",
            )
        return description

    def delete_endpoint(self, name: str, progress: Progress | None, *, timeout: float) -> None:
        """Delete the endpoint ``name`` if it exists and is managed, and wait until it is gone, within ``timeout``."""
        description = self.managed_endpoint(name, "delete_endpoint")
        if description is not None:
            self.delete_described_endpoint(description, progress, timeout=timeout)

    def delete_described_endpoint(
        self, description: Description, progress: Progress | None, *, timeout: float
    ) -> None:
        """Deregister autoscaling, delete the rollout alarms (when the endpoint's tags say it has some), delete the
        (managed) endpoint and wait until it is gone, within ``timeout``."""
        name = str(description["EndpointName"])
        try:
            has_alarms = ALARMS_TAG in self._api.endpoint_tags(description)  # read already: it is managed
        except NotFoundError:
            has_alarms = False  # gone meanwhile: its tags went with it
        self._api.forget_endpoint(name)
        self._autoscaler.deregister(
            name, [v["VariantName"] for v in description.get("ProductionVariants", [])]
        )
        if has_alarms:
            self._alarms.delete_all(name)
        status = str(description.get("EndpointStatus"))
        if status != "Deleting":
            try:
                self._api.call("delete_endpoint", f"endpoint {name}", EndpointName=name)
            except NotFoundError:
                return
            except ProviderError:
                if status not in MOVING:
                    raise
                # Refused while it is still changing: let it settle (bounded like the rest), then delete.
                self._waiter.wait(
                    name,
                    first_status=status,
                    done=lambda d: d is None or d.get("EndpointStatus") not in MOVING,
                    timeout=timeout,
                    progress=progress,
                )
                try:
                    self._api.call("delete_endpoint", f"endpoint {name}", EndpointName=name)
                except NotFoundError:
                    return
        self._waiter.wait(
            name, first_status="Deleting", done=lambda d: d is None, timeout=timeout, progress=progress
        )
