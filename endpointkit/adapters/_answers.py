"""What every HTTP inference call shares, for ``invoke`` and the ``verify`` checks alike: the target's size limit
before the request, and the answer after it (decoded, or the error of a non-200 status)."""

from __future__ import annotations

import orjson

from endpointkit.adapters.base import Adapter, EndpointState, RawResponse
from endpointkit.errors import InvalidRequestError, NotFoundError, ProviderError
from endpointkit.payloads import EncodedRequest, InferResponse, check_size, decode_response, error_message

__all__ = ["check_request_size", "decoded_answer", "response_error"]


def check_request_size(adapter: Adapter, encoded: EncodedRequest) -> None:
    """Refuse, before sending, a request above the target's limit (``PayloadError`` saying so); none when the
    target has no limit."""
    if adapter.max_request_bytes is not None:
        check_size(encoded, adapter.max_request_bytes)


def decoded_answer(raw: RawResponse, state: EndpointState) -> InferResponse:
    """The decoded response of a 200 answer; else the error :func:`response_error` maps it to."""
    if raw.status != 200:
        raise response_error(raw, state)
    return decode_response(raw.body, raw.headers)


def response_error(raw: RawResponse, state: EndpointState) -> ProviderError:
    """The error of a non-200 HTTP answer, with Triton's own message."""
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
