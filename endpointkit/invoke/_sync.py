"""invoke_endpoint(): one blocking inference, over HTTP (the adapter's transport) or Triton's gRPC API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from endpointkit._api import SpecLike
from endpointkit.adapters._answers import check_request_size, decoded_answer
from endpointkit.adapters.base import Adapter, EndpointState
from endpointkit.invoke._common import asynchronous_invoker, connect, grpc_connection
from endpointkit.payloads import InferResponse, RequestedOutput, encode_request
from endpointkit.payloads._grpc import encode_grpc_request

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
    transport: str | None = None,
    asynchronous: bool = False,
    adapter: Adapter | None = None,
    **options: Any,
) -> InferResponse:
    """Run one inference on a deployed endpoint and return its outputs as numpy arrays. Blocks; thread-safe.

    Args:
        spec_or_state: a spec (or its path, or a resolved Deployment) with ``target``, or an
            :class:`EndpointState` from ``apply``/``status``.
        inputs: name -> array-like, or a sequence of :class:`~endpointkit.payloads.Tensor`.
        outputs: output names or :class:`RequestedOutput` (default: all outputs).
        binary: True/False forces binary+json or JSON over HTTP; None picks per request (moot over gRPC, whose
            tensors always travel raw).
        timeout: seconds for the whole request.
        model: the Triton model to call (default: the endpoint's default model).
        transport: ``"http"`` or ``"grpc"`` (Triton's ``GRPCInferenceService``; local and AKS targets); default:
            the target's ``transport`` setting, else HTTP.
        asynchronous: queue the request and wait for its result (SageMaker endpoints with an ``async:``
            section: the request goes through S3, up to 1 GB, and ``timeout`` bounds the wait, 900 s by default).
        adapter: an adapter to use instead of the one the target names (tests, custom transports).
        options: passed to the adapter when one is made (``credential=`` for AKS, client factories, …).

    Raises:
        PayloadError: the inputs cannot be encoded, the request is over the target's size limit, or the response
            cannot be decoded.
        InvalidRequestError: the endpoint refused the request itself (an unknown input, output or model, a wrong
            datatype or shape, data the model cannot read); carries Triton's message.
        UnsupportedCapabilityError: ``transport="grpc"`` on a target without gRPC (SageMaker), or
            ``asynchronous=True`` on an endpoint that does not queue requests, before any call.
        NotFoundError: the endpoint does not exist or is not serving.
        ProviderError: the endpoint answered with another error; carries Triton's message (``code="Timeout"``
            when ``timeout`` passed, ``retryable`` when the server could not be reached).
    """
    active, state, chosen = connect(spec_or_state, target, adapter, options, transport=transport)
    queue = asynchronous_invoker(active, state, chosen) if asynchronous else None
    if chosen == "grpc":
        connection, model_name = grpc_connection(active, state, model)
        request = encode_grpc_request(
            inputs, outputs, model_name=model_name, request_id=request_id, parameters=parameters
        )
        return connection.infer(request, timeout)
    encoded = encode_request(
        inputs,
        outputs,
        binary=binary,
        protocol=active.payload_protocol,
        request_id=request_id,
        parameters=parameters,
    )
    if queue is not None:
        # The queueing adapter checks the size itself, against the limit of asynchronous requests.
        raw = queue.invoke_asynchronous(state, encoded.body, encoded.headers, model=model, timeout=timeout)
    else:
        check_request_size(active, encoded)
        raw = active.invoke(state, encoded.body, encoded.headers, model=model, timeout=timeout)
    return decoded_answer(raw, state)
