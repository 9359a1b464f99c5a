"""What every way of invoking shares: finding the endpoint and its adapter, the transport, the errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from endpointkit import adapters
from endpointkit._api import SpecLike, connection_pool, resolve
from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters.base import (
    Adapter,
    AsyncInferenceAdapter,
    EndpointState,
    EndpointStatus,
    GrpcAdapter,
)
from endpointkit.errors import (
    NotFoundError,
    UnsupportedCapabilityError,
    UsageError,
)

__all__ = [
    "TRANSPORTS",
    "Transport",
    "asynchronous_invoker",
    "chosen_transport",
    "connect",
    "grpc_connection",
]

Transport = Literal["http", "grpc"]
TRANSPORTS: tuple[Transport, ...] = ("http", "grpc")


def connect(
    spec_or_state: SpecLike | EndpointState,
    target: str | None,
    adapter: Adapter | None,
    options: Mapping[str, Any],
    *,
    transport: str | None = None,
) -> tuple[Adapter, EndpointState, Transport]:
    """The adapter to call, the endpoint's state, and the transport to use.

    With a state, the facade's pooled adapter for it (no call). With a spec, the target's adapter and one status
    read, refused unless the endpoint is IN_SERVICE. A transport the adapter cannot speak is refused before any
    call.
    """
    if isinstance(spec_or_state, EndpointState):
        active = adapter or connection_pool.adapter_for(spec_or_state, options)
        state = spec_or_state
        return active, state, _checked(active, state.kind, chosen_transport(transport, state.extra))
    deployment = resolve(spec_or_state, target)
    active = adapter or adapters.create_adapter(deployment, **options)
    try:
        wanted = _checked(
            active, deployment.kind, chosen_transport(transport, {"transport": deployment.target.transport})
        )
        state = active.status(deployment)
    except BaseException:
        if adapter is None:
            active.close()
        raise
    if state.status is not EndpointStatus.IN_SERVICE:
        if adapter is None:
            active.close()
        raise NotFoundError(
            f"endpoint {deployment.name} on {deployment.target_name} is {state.status.value}"
            + (f": {state.reason}" if state.reason else "")
            + "; run `endpointkit apply` first",
            provider=deployment.kind,
            operation="invoke",
            code=state.status.value,
        )
    if adapter is None:
        active = connection_pool.keep(state, active, options)
    return active, state, wanted


def chosen_transport(requested: str | None, extra: Mapping[str, Any]) -> Transport:
    """``requested``, else the target's ``transport`` setting (carried in a state's ``extra``), else HTTP."""
    value = requested or extra.get("transport") or "http"
    if value == "http":
        return "http"
    if value == "grpc":
        return "grpc"
    raise UsageError(f"transport {value!r} is not one of: {', '.join(TRANSPORTS)}")


def _checked(active: Adapter, kind: str, transport: Transport) -> Transport:
    if transport == "grpc" and not isinstance(active, GrpcAdapter):
        raise UnsupportedCapabilityError(
            f"the {kind} target does not serve Triton's gRPC API: call it with transport='http'",
            missing={"grpc": f"{kind} endpoints are reached over HTTP only"},
        )
    return transport


def asynchronous_invoker(
    active: Adapter, state: EndpointState, transport: Transport
) -> AsyncInferenceAdapter:
    """The adapter as one that queues requests (SageMaker asynchronous inference), or the reason it is not."""
    if transport != "http":
        raise UsageError("asynchronous inference goes through the target's HTTP API: drop transport='grpc'")
    if not isinstance(active, AsyncInferenceAdapter):
        raise UnsupportedCapabilityError(
            f"the {state.kind} target has no asynchronous inference: call {state.name} without asynchronous=True",
            missing={"async_inference": "only SageMaker endpoints with an async: section queue requests"},
        )
    return active


def grpc_connection(active: Adapter, state: EndpointState, model: str | None) -> tuple[GrpcConnection, str]:
    """The adapter's gRPC connection to the endpoint and the model to call (refused when it has none)."""
    if not isinstance(active, GrpcAdapter):
        _checked(active, state.kind, "grpc")
        raise AssertionError("unreachable: _checked refuses an adapter without gRPC")
    return active.grpc_connection(state, model=model)
