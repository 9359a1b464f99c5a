"""An in-memory target with no I/O: for tests, and for ``--dry-run`` plans.

It records every call (``calls``), can be told to fail an operation (``fail``), and keeps its resources in a
dict so that several adapters can share one "cloud" (``MemoryCloud``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from endpointkit._endpoint_state import decode_expiry
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters._drift import tag_drift
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    SPEC_HASH_TAG,
    Capability,
    DesiredState,
    EndpointState,
    EndpointStatus,
    ObservedState,
    RawResponse,
    Resource,
    ResourceKind,
    VariantState,
    VerifyHook,
)
from endpointkit.adapters.naming import content_name, managed_tags
from endpointkit.errors import ConflictError, NotFoundError, ProviderError
from endpointkit.spec import Deployment

__all__ = ["MemoryAdapter", "MemoryCloud"]

READ_OPERATIONS = frozenset({"read", "status", "desired", "limitations", "list"})


@dataclass
class MemoryCloud:
    """The resources of an in-memory "cloud", by kind then name."""

    resources: dict[ResourceKind, dict[str, Resource]] = field(
        default_factory=lambda: {"model": {}, "endpoint_config": {}, "endpoint": {}}
    )
    endpoint_status: dict[str, EndpointStatus] = field(default_factory=dict)
    endpoint_reason: dict[str, str] = field(default_factory=dict)
    endpoint_tags: dict[str, dict[str, str]] = field(default_factory=dict)


class MemoryAdapter:
    """A target that lives in a dict. Supports every capability unless told otherwise (``unsupported``)."""

    kind: str = "memory"
    payload_protocol: Literal["triton", "sagemaker"] = "triton"
    #: no request size limit, as on Triton itself; a test may set one on an instance
    max_request_bytes: int | None = None

    def __init__(
        self,
        target: object = None,
        *,
        target_name: str = "memory",
        cloud: MemoryCloud | None = None,
        unsupported: Mapping[Capability, str] | None = None,
        responder: Any = None,
    ) -> None:
        self.target_name = target_name
        self.cloud = cloud or MemoryCloud()
        self.unsupported = dict(unsupported or {})
        self.calls: list[tuple[str, str, str]] = []
        self.failures: dict[tuple[str, str], Exception] = {}
        self.responder = responder

    @classmethod
    def from_state(cls, state: EndpointState, **options: Any) -> MemoryAdapter:
        """An adapter named after ``state``'s target; pass ``cloud=`` to reach the endpoints it lives in."""
        return cls(None, target_name=state.target, **options)

    def fail(self, operation: str, kind: str, error: Exception) -> None:
        """Make the next ``operation`` (create, update, delete) on ``kind`` raise ``error``."""
        self.failures[(operation, kind)] = error

    @property
    def mutating_calls(self) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] not in READ_OPERATIONS]

    def _record(self, operation: str, kind: str, name: str) -> None:
        self.calls.append((operation, kind, name))
        error = self.failures.pop((operation, kind), None)
        if error is not None:
            raise error

    def limitations(self, deployment: Deployment) -> Mapping[Capability, str]:
        return dict(self.unsupported)

    def desired(self, deployment: Deployment) -> DesiredState:
        spec = deployment.spec
        model_content = {
            "repository": spec.model.repository,
            "image": spec.model.image,
            "environment": spec.model.environment,
        }
        model = Resource("model", content_name(spec.name, model_content), model_content)
        variants = [variant.model_dump() for variant in deployment.variants]
        config_content = {"model": model.name, "variants": variants}
        config = Resource("endpoint_config", content_name(spec.name, config_content), config_content)
        endpoint = Resource("endpoint", spec.name, {"config": config.name})
        return DesiredState(
            spec.name, deployment.spec_hash(), model, config, endpoint, managed_tags(deployment)
        )

    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        self.calls.append(("read", "endpoint", deployment.name))
        existing = frozenset(
            (resource.kind, resource.name)
            for resource in (desired.model, desired.config)
            if resource.name in self.cloud.resources[resource.kind]
        )
        endpoint = self.cloud.resources["endpoint"].get(deployment.name)
        if endpoint is None:
            return ObservedState(self._state(deployment.name), existing=existing)
        config = self.cloud.resources["endpoint_config"].get(endpoint.properties["config"])
        model = self.cloud.resources["model"].get(config.properties["model"]) if config else None
        drift = tuple(tag_drift(self.cloud.endpoint_tags.get(deployment.name, {}), desired.tags))
        return ObservedState(self._state(deployment.name), model, config, existing, drift=drift)

    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        self._record("create", resource.kind, resource.name)
        self.cloud.resources[resource.kind][resource.name] = resource
        if resource.kind == "endpoint":
            self.cloud.endpoint_status[resource.name] = EndpointStatus.IN_SERVICE
            self.cloud.endpoint_tags[resource.name] = managed_tags(deployment)
            if progress is not None:
                progress(ProgressEvent(resource.name, "IN_SERVICE", 0.0, deployment.spec.timeouts.create))

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Point the endpoint at ``desired.config``; ``verify`` first checks a candidate state of that config
        (``extra["candidate"]`` is True), and when it raises the endpoint is left as it was."""
        self._record("update", "endpoint", desired.endpoint.name)
        if desired.endpoint.name not in self.cloud.resources["endpoint"]:
            raise NotFoundError(
                f"endpoint {desired.endpoint.name} does not exist", provider="memory", operation="update"
            )
        if verify is not None:
            verify(self._candidate(desired))
        self.cloud.resources["endpoint"][desired.endpoint.name] = desired.endpoint
        self.cloud.endpoint_tags[desired.endpoint.name] = dict(desired.tags)

    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        self._record("delete", kind, name)
        if kind == "endpoint":
            self._forget_endpoint(name)
        else:
            self.cloud.resources[kind].pop(name, None)

    def status(self, deployment: Deployment) -> EndpointState:
        self.calls.append(("status", "endpoint", deployment.name))
        return self._state(deployment.name)

    def list_endpoints(self) -> list[EndpointState]:
        """Every endpoint tagged ``managed-by=endpointkit``, with its expiry; one recorded ``list`` call."""
        self.calls.append(("list", "endpoint", "*"))
        return [
            self._state(name)
            for name in sorted(self.cloud.resources["endpoint"])
            if self.cloud.endpoint_tags.get(name, {}).get(MANAGED_BY_TAG) == MANAGED_BY_VALUE
        ]

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Delete the endpoint, then the config and model it uses. Idempotent; refuses unmanaged endpoints."""
        endpoint = self.cloud.resources["endpoint"].get(state.name)
        if endpoint is None:
            return
        if self.cloud.endpoint_tags.get(state.name, {}).get(MANAGED_BY_TAG) != MANAGED_BY_VALUE:
            raise ConflictError(
                f"endpoint {state.name} is not managed by endpointkit", provider="memory", operation="delete"
            )
        config = self.cloud.resources["endpoint_config"].get(endpoint.properties["config"])
        self._record("delete", "endpoint", state.name)
        self._forget_endpoint(state.name)
        if config is not None:
            self._record("delete", "endpoint_config", config.name)
            self.cloud.resources["endpoint_config"].pop(config.name, None)
            model = config.properties.get("model")
            if model is not None and model in self.cloud.resources["model"]:
                self._record("delete", "model", model)
                self.cloud.resources["model"].pop(model, None)

    def _forget_endpoint(self, name: str) -> None:
        self.cloud.resources["endpoint"].pop(name, None)
        self.cloud.endpoint_status.pop(name, None)
        self.cloud.endpoint_reason.pop(name, None)
        self.cloud.endpoint_tags.pop(name, None)

    def _state(self, name: str) -> EndpointState:
        endpoint = self.cloud.resources["endpoint"].get(name)
        if endpoint is None:
            return EndpointState(name, self.target_name, self.kind, EndpointStatus.NOT_FOUND)
        tags = self.cloud.endpoint_tags.get(name, {})
        config = self.cloud.resources["endpoint_config"].get(endpoint.properties["config"])
        variants = tuple(
            VariantState(v["name"], v.get("instance_type"), v["instance_count"], v["weight"])
            for v in (config.properties["variants"] if config else [])
        )
        return EndpointState(
            name,
            self.target_name,
            self.kind,
            self.cloud.endpoint_status.get(name, EndpointStatus.IN_SERVICE),
            url=f"memory://{name}",
            variants=variants,
            reason=self.cloud.endpoint_reason.get(name),
            spec_hash=tags.get(SPEC_HASH_TAG),
            expires_at=decode_expiry(tags.get(EXPIRES_AT_TAG), endpoint=name),
            extra={"config": endpoint.properties["config"]},
        )

    def _candidate(self, desired: DesiredState) -> EndpointState:
        """The state the endpoint will have on ``desired.config``, marked as a candidate."""
        variants = tuple(
            VariantState(v["name"], v.get("instance_type"), v["instance_count"], v["weight"])
            for v in desired.config.properties["variants"]
        )
        return EndpointState(
            desired.endpoint_name,
            self.target_name,
            self.kind,
            EndpointStatus.IN_SERVICE,
            url=f"memory://{desired.endpoint_name}",
            variants=variants,
            spec_hash=desired.spec_hash,
            extra={"config": desired.config.name, "candidate": True},
        )

    def invoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Answer with ``responder(body, headers)``; without one, an error like Triton's for a missing model."""
        self.calls.append(("invoke", "endpoint", state.name))
        if state.name not in self.cloud.resources["endpoint"]:
            raise NotFoundError(
                f"endpoint {state.name} does not exist", provider="memory", operation="invoke"
            )
        joined = body if isinstance(body, bytes) else b"".join(bytes(part) for part in body)
        if self.responder is None:
            raise ProviderError(
                "the memory target has no model to run", provider="memory", operation="invoke"
            )
        response: RawResponse = self.responder(joined, dict(headers))
        return response

    def close(self) -> None:
        return None
