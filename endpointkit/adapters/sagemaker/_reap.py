"""Managed SageMaker endpoints without their specs: listing them, and destroying a listed one with what it used."""

from __future__ import annotations

import logging

from endpointkit._endpoint_state import decode_expiry
from endpointkit._wait import Progress
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    EndpointState,
    ResourceKind,
)
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._artifacts import ArtifactStore
from endpointkit.adapters.sagemaker._state import Description, summary_state
from endpointkit.adapters.sagemaker._teardown import Teardown
from endpointkit.errors import ConflictError, NotFoundError

__all__ = ["Reaper"]

logger = logging.getLogger("endpointkit.sagemaker")


class Reaper:
    """``list_endpoints`` and ``destroy_by_state`` of ``SageMakerAdapter``, which documents them."""

    def __init__(self, api: SageMakerApi, *, teardown: Teardown, artifacts: ArtifactStore) -> None:
        self._api = api
        self._teardown = teardown
        self._artifacts = artifacts

    def list_endpoints(self, *, target_name: str) -> list[EndpointState]:
        """Every endpoint in the region tagged ``managed-by=endpointkit``, by name, with its expiry. Read-only."""
        states: list[EndpointState] = []
        for summary in self._api.list_endpoints():
            try:
                tags = self._api.tags(summary["EndpointArn"])
            except NotFoundError:
                logger.debug("endpoint %s went away while listing", summary.get("EndpointName"))
                continue
            if tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE:
                states.append(summary_state(summary, tags, target_name=target_name, region=self._api.region))
        return states

    def destroy_by_state(
        self, state: EndpointState, *, progress: Progress | None, timeout: float, purge_artifacts: bool
    ) -> None:
        """Delete a listed endpoint (waiting up to ``timeout`` until it is gone), then its managed config and models."""
        name = state.name
        if not name:
            raise ValueError("destroy_by_state needs the state of a named endpoint (from list_endpoints)")
        if state.region and state.region != self._api.region:
            raise ConflictError(
                f"endpoint {name} was listed in {state.region}; this adapter works in {self._api.region}: not "
                "deleting",
                provider="sagemaker",
                operation="delete_endpoint",
                code="WrongRegion",
            )
        self._api.forget_endpoint(name)  # read the tags afresh, not as listed
        description = self._teardown.managed_endpoint(name, "delete_endpoint")
        if description is None:
            return
        if state.expires_at is not None:
            tags = self._api.endpoint_tags(description)
            current = decode_expiry(tags.get(EXPIRES_AT_TAG), endpoint=name)
            if current != state.expires_at:
                raise ConflictError(
                    f"endpoint {name} now expires at {current.isoformat() if current else 'never'}, not at "
                    f"{state.expires_at.isoformat()} as listed (re-applied or re-tagged since): not deleting it",
                    provider="sagemaker",
                    operation="delete_endpoint",
                    code="ExpiryChanged",
                )
        config_name = description.get("EndpointConfigName")
        self._teardown.delete_described_endpoint(description, progress, timeout=timeout)
        if not config_name:
            return
        config = self._api.describe("endpoint_config", config_name)
        if config is None:
            logger.info("endpoint config %s of %s is already gone", config_name, name)
            return
        models = sorted({v["ModelName"] for v in config.get("ProductionVariants", []) if v.get("ModelName")})
        if self._is_managed_resource("endpoint_config", config_name, config):
            self._api.delete_config(config_name)
        for model_name in models:
            model = self._api.describe("model", model_name)
            if model is None:
                logger.debug("model %s is already gone", model_name)
            elif self._is_managed_resource("model", model_name, model):
                self._teardown.delete_model(
                    model_name,
                    purge_artifacts=purge_artifacts,
                    description=model,
                    owns_artifact=lambda url: self._artifacts.uploaded_for(url, name),
                )

    def _is_managed_resource(self, kind: ResourceKind, name: str, description: Description) -> bool:
        """Whether a described config or model carries ``managed-by=endpointkit`` (gone since: not ours)."""
        arn = description.get("EndpointConfigArn" if kind == "endpoint_config" else "ModelArn")
        try:
            managed = bool(arn) and self._api.tags(str(arn)).get(MANAGED_BY_TAG) == MANAGED_BY_VALUE
        except NotFoundError:
            return False
        if not managed:
            logger.warning(
                "keeping %s %s: the reaped endpoint used it, but it is not managed by endpointkit",
                kind.replace("_", " "),
                name,
            )
        return managed
