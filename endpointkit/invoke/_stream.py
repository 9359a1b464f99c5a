"""invoke_stream(): the responses of a decoupled model, one by one, over a gRPC stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from endpointkit._api import SpecLike
from endpointkit.adapters.base import Adapter, EndpointState
from endpointkit.invoke._common import connect, grpc_connection
from endpointkit.payloads import InferResponse, RequestedOutput
from endpointkit.payloads._grpc import GrpcInferRequest, encode_grpc_request

__all__ = ["ainvoke_stream", "invoke_stream"]


def invoke_stream(
    spec_or_state: SpecLike | EndpointState,
    inputs: Mapping[str, Any] | Sequence[Any],
    *,
    target: str | None = None,
    outputs: Sequence[str | RequestedOutput] | None = None,
    timeout: float | None = None,
    model: str | None = None,
    request_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> Iterator[InferResponse]:
    """Send one request on a gRPC stream and yield each response as it arrives (decoupled models).

    A decoupled model (``model_transaction_policy { decoupled: true }``) may answer one request with many
    responses; the iteration ends on Triton's final-response flag. A model that is not decoupled yields its one
    response. Stopping early (``break``, an exception, ``close()``) cancels the call, which Triton passes on to
    the model. The endpoint is found and the request encoded now, so bad input raises here; the call starts on
    the first ``next()``. Local and AKS targets (gRPC); arguments as for :func:`invoke_endpoint`.

    Raises:
        UnsupportedCapabilityError: the target has no gRPC (SageMaker), before any call.
        PayloadError, InvalidRequestError, NotFoundError, ProviderError: as :func:`invoke_endpoint`, during the
            iteration for what the server says (``code="ModelError"`` when the model fails mid-stream).
    """
    active, state, _ = connect(spec_or_state, target, adapter, options, transport="grpc")
    connection, model_name = grpc_connection(active, state, model)
    request = _stream_request(inputs, outputs, model_name, request_id, parameters)
    return connection.stream([request], timeout)


async def ainvoke_stream(
    spec_or_state: SpecLike | EndpointState,
    inputs: Mapping[str, Any] | Sequence[Any],
    *,
    target: str | None = None,
    outputs: Sequence[str | RequestedOutput] | None = None,
    timeout: float | None = None,
    model: str | None = None,
    request_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> AsyncIterator[InferResponse]:
    """:func:`invoke_stream` for asyncio: ``async for response in ainvoke_stream(...)``.

    Leaving the loop early cancels the call (close the generator, e.g. with ``contextlib.aclosing``, to do so at
    once rather than when it is collected).
    """
    if isinstance(spec_or_state, EndpointState):
        active, state, _ = connect(spec_or_state, target, adapter, options, transport="grpc")
    else:
        active, state, _ = await asyncio.to_thread(
            connect, spec_or_state, target, adapter, options, transport="grpc"
        )
    connection, model_name = grpc_connection(active, state, model)
    request = _stream_request(inputs, outputs, model_name, request_id, parameters)
    async for response in connection.astream([request], timeout):
        yield response


def _stream_request(
    inputs: Mapping[str, Any] | Sequence[Any],
    outputs: Sequence[str | RequestedOutput] | None,
    model_name: str,
    request_id: str | None,
    parameters: Mapping[str, Any] | None,
) -> GrpcInferRequest:
    return encode_grpc_request(
        inputs, outputs, model_name=model_name, request_id=request_id, parameters=parameters, stream=True
    )
