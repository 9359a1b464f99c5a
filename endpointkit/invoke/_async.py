"""ainvoke_endpoint(): one inference from asyncio, without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from endpointkit._api import SpecLike
from endpointkit.adapters._answers import check_request_size, decoded_answer
from endpointkit.adapters.base import Adapter, AsyncAdapter, EndpointState, RawResponse
from endpointkit.invoke._common import asynchronous_invoker, connect, grpc_connection
from endpointkit.payloads import InferResponse, RequestedOutput, encode_request
from endpointkit.payloads._grpc import encode_grpc_request

__all__ = ["ainvoke_endpoint"]


async def ainvoke_endpoint(
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
    transport: str | None = None,
    asynchronous: bool = False,
    adapter: Adapter | None = None,
    **options: Any,
) -> InferResponse:
    """:func:`invoke_endpoint` as a coroutine: same arguments, same result, same errors.

    HTTP goes through the adapter's asyncio transport (local and AKS: pooled keep-alive connections, at most
    ``max_concurrency`` requests in flight per server, 64 by default; SageMaker: a bounded executor), gRPC
    through ``grpc.aio``. Cancelling the awaiting task cancels the request; the pooled connections stay usable.
    Given a spec rather than a state, the one status read runs in a worker thread.
    """
    if isinstance(spec_or_state, EndpointState):
        active, state, chosen = connect(spec_or_state, target, adapter, options, transport=transport)
    else:
        active, state, chosen = await asyncio.to_thread(
            connect, spec_or_state, target, adapter, options, transport=transport
        )
    queue = asynchronous_invoker(active, state, chosen) if asynchronous else None
    if chosen == "grpc":
        connection, model_name = grpc_connection(active, state, model)
        request = encode_grpc_request(
            inputs, outputs, model_name=model_name, request_id=request_id, parameters=parameters
        )
        return await connection.ainfer(request, timeout)
    encoded = encode_request(
        inputs,
        outputs,
        binary=binary,
        protocol=active.payload_protocol,
        request_id=request_id,
        parameters=parameters,
    )
    if queue is not None:
        raw = await asyncio.to_thread(
            queue.invoke_asynchronous, state, encoded.body, encoded.headers, model=model, timeout=timeout
        )
    else:
        check_request_size(active, encoded)
        raw = await _send(active, state, encoded.body, encoded.headers, model, timeout)
    return decoded_answer(raw, state)


async def _send(
    active: Adapter,
    state: EndpointState,
    body: bytes | Sequence[bytes | bytearray | memoryview],
    headers: Mapping[str, str],
    model: str | None,
    timeout: float | None,
) -> RawResponse:
    if isinstance(active, AsyncAdapter):
        return await active.ainvoke(state, body, headers, model=model, timeout=timeout)
    # An adapter without an asyncio path (the memory adapter, a custom one) runs in a worker thread.
    return await asyncio.to_thread(active.invoke, state, body, headers, model=model, timeout=timeout)
