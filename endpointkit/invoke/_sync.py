"""invoke_endpoint(): encode with payloads, send through the target's adapter, decode, map errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from endpointkit._api import SpecLike, connection_pool, resolve
from endpointkit.adapters import create_adapter
from endpointkit.adapters.base import Adapter, EndpointState, EndpointStatus, RawResponse
from endpointkit.errors import InvalidRequestError, NotFoundError, ProviderError
from endpointkit.payloads import (
    InferResponse,
    RequestedOutput,
    check_size,
    decode_response,
    encode_request,
    error_message,
)

__all__ = ["invoke_endpoint"]


def invoke_endpoint(
    spec_or_state: SpecLike | EndpointState,
    inputs: Mapping[str, Any] | Sequence[Any],
    *,
    target: str | None = None,
    outputs: Sequence[str | RequestedOutput] | None = None,
    binary: bool | None = None,
    timeout: float | None = None,
    model: str | None = None,
    request_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> InferResponse:
    """Run one inference on a deployed endpoint and return its outputs as numpy arrays.

    Args:
        spec_or_state: a spec (or its path, or a resolved Deployment) with ``target``, or an
            :class:`EndpointState` from ``apply``/``status``.
        inputs: name -> array-like, or a sequence of :class:`~endpointkit.payloads.Tensor`.
        outputs: output names or :class:`RequestedOutput` (default: all outputs).
        binary: True/False forces binary+json or JSON; None picks per request.
        timeout: seconds for the whole request.
        model: the Triton model to call (default: the endpoint's default model).
        adapter: an adapter to use instead of the one the target names (tests, custom transports).
        options: passed to the adapter when one is made (``credential=`` for AKS, client factories, …).

    Raises:
        PayloadError: the inputs cannot be encoded, the request is over the target's size limit, or the response
            cannot be decoded.
        InvalidRequestError: the endpoint refused the request itself (an unknown input, output or model, a wrong
            datatype or shape, data the model cannot read); carries Triton's message.
        NotFoundError: the endpoint does not exist or is not serving.
        ProviderError: the endpoint answered with another error; carries Triton's message.
    """
    active, state = _connect(spec_or_state, target, adapter, options)
    encoded = encode_request(
        inputs,
        outputs,
        binary=binary,
        protocol=active.payload_protocol,
        request_id=request_id,
        parameters=parameters,
    )
    limit = active.max_request_bytes
    if limit is not None:
        check_size(encoded, limit)
    raw = active.invoke(state, encoded.body, encoded.headers, model=model, timeout=timeout)
    if raw.status != 200:
        raise _response_error(raw, state)
    return decode_response(raw.body, raw.headers)


def _connect(
    spec_or_state: SpecLike | EndpointState,
    target: str | None,
    adapter: Adapter | None,
    options: dict[str, Any],
) -> tuple[Adapter, EndpointState]:
    if isinstance(spec_or_state, EndpointState):
        if adapter is not None:
            return adapter, spec_or_state
        return connection_pool.adapter_for(spec_or_state, options), spec_or_state
    deployment = resolve(spec_or_state, target)
    active = adapter or create_adapter(deployment, **options)
    state = active.status(deployment)
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
    if adapter is not None:
        return adapter, state
    return connection_pool.keep(state, active), state


def _response_error(raw: RawResponse, state: EndpointState) -> ProviderError:
    message = error_message(raw.body) or f"HTTP {raw.status}"
    return _error_class(raw)(
        f"{state.name} answered {raw.status}: {message}",
        provider=state.kind,
        operation="invoke",
        code=str(raw.status),
        retryable=raw.status in (429, 502, 503, 504),
    )


def _error_class(raw: RawResponse) -> type[ProviderError]:
    """Bad input when Triton refused the request itself; not found when nothing answers for the endpoint.

    Triton answers 400 for a request it cannot run as given (unknown input or output, wrong datatype or shape,
    data the model refuses) and 404 with its ``{"error": ...}`` document for a model or version it does not
    serve (https://github.com/triton-inference-server/server/blob/main/docs/protocol/README.md, HTTP status
    codes). A 404 without that document comes from something in front of Triton: the endpoint is not there.
    """
    if raw.status == 400 or (raw.status == 404 and _is_triton_error(raw.body)):
        return InvalidRequestError
    if raw.status == 404:
        return NotFoundError
    return ProviderError


def _is_triton_error(body: bytes | bytearray | memoryview) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and isinstance(document.get("error"), str)
