"""Inference responses: ``decode_response`` for clients, ``encode_response`` for servers and fakes of them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from endpointkit.errors import PayloadError
from endpointkit.payloads._codec import (
    check_protocol,
    choose_binary,
    decode_tensors,
    encode_tensor_entries,
    frame_body,
    parse_document,
    read_body,
)
from endpointkit.payloads._inflate import DEFAULT_MAX_INFLATED_BYTES
from endpointkit.payloads._tensors import prepare_tensors
from endpointkit.payloads.content_types import HeadersLike
from endpointkit.payloads.types import Body, Buffer, EncodedResponse, InferResponse, Tensor

__all__ = ["decode_response", "encode_response", "error_message"]

_MAX_MESSAGE = 2000
_TAGS = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


def encode_response(
    outputs: Mapping[str, Any] | Sequence[Tensor],
    *,
    model_name: str,
    model_version: str = "1",
    binary: bool | None = None,
    protocol: str = "triton",
    request_id: str | None = None,
) -> EncodedResponse:
    """Encode an inference response the way Triton writes one.

    Args:
        outputs: a mapping of output name to array-like, or a sequence of :class:`Tensor` (a tensor's own
            ``binary`` wins: pass ``InferRequest.output_is_binary(name)`` to honour what a request asked).
        model_name: the model's name.
        model_version: the version, written as a string like Triton does.
        binary: as for :func:`encode_request`.
        protocol: ``"triton"`` or ``"sagemaker"`` binary framing, as for :func:`encode_request`.
        request_id: the request's id, echoed when not empty.

    Returns:
        An :class:`EncodedResponse`; binary tensors are not copied when already C-contiguous little-endian.

    Raises:
        PayloadError: as for :func:`encode_request`.
    """
    checked_protocol = check_protocol(protocol)
    if not isinstance(model_name, str):
        raise PayloadError(f"model_name must be a string, got {model_name!r}", field="model_name")
    if not isinstance(model_version, (str, int)) or isinstance(model_version, bool):
        raise PayloadError(f"model_version must be a string, got {model_version!r}", field="model_version")
    tensors = prepare_tensors(outputs, "outputs")
    choose_binary(tensors, binary, "outputs")
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        if not isinstance(request_id, str):
            raise PayloadError(f"request_id must be a string, got {request_id!r}", field="id")
        if request_id:
            document["id"] = request_id
    entries, chunks = encode_tensor_entries(tensors)
    document["outputs"] = entries
    frame = frame_body(document, chunks, any(tensor.binary for tensor in tensors), checked_protocol)
    return EncodedResponse(frame.body, frame.headers, frame.content_type, frame.json_header_length)


def decode_response(
    body: Body | str,
    headers: HeadersLike = None,
    *,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
) -> InferResponse:
    """Decode a Triton inference response body.

    Args:
        body: the response body, bytes-like or a sequence of buffers.
        headers: the response headers in any case (a mapping, an ``http.client`` message, pairs), or just the
            Content-Type string (enough for SageMaker, whose content type carries ``json-header-size``).
            ``Content-Encoding: gzip``/``deflate`` is undone first; the header length counts uncompressed
            bytes (server ``src/http_server.cc`` ``SetResponseHeader`` runs before compression).
        max_inflated_bytes: the most bytes a compressed body may inflate to (default
            :data:`DEFAULT_MAX_INFLATED_BYTES`, 64 MiB); inflation stops as soon as it is passed.

    Returns:
        An :class:`InferResponse`. Outputs are matched by name (Triton orders them as the model made them).
        Binary outputs are zero-copy views of the body, read-only when it is ``bytes``, possibly unaligned;
        BF16 comes back as float32, BYTES as object arrays of ``bytes`` (JSON strings encoded as UTF-8).

    Raises:
        PayloadError: any framing or content fault: header length missing while binary data is present,
            negative, not a number or beyond the body; sizes that do not add up; truncated body; trailing
            bytes; bad JSON; unknown datatype; shape and element count disagreeing; an ``{"error": ...}``
            body; a compressed body that inflates past ``max_inflated_bytes``. ``offset`` or ``field`` says
            where. Nothing else escapes.
    """
    data, framing = read_body(body, headers, max_inflated_bytes)
    document = parse_document(data, framing)
    if "outputs" not in document and isinstance(document.get("error"), str):
        raise PayloadError(f"the body is an error response: {document['error']}", field="error")
    model_name = document.get("model_name", "")
    if not isinstance(model_name, str):
        raise PayloadError("'model_name' must be a string", field="model_name")
    model_version = document.get("model_version", "")
    if type(model_version) is int:
        model_version = str(model_version)
    if not isinstance(model_version, str):
        raise PayloadError("'model_version' must be a string", field="model_version")
    response_id = document.get("id")
    if response_id is not None and not isinstance(response_id, str):
        raise PayloadError("'id' must be a string", field="id")
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise PayloadError("'parameters' must be a JSON object", field="parameters")
    tensors = decode_tensors(data, framing, document.get("outputs", []), "outputs")
    arrays, datatypes = tensors.arrays, tensors.datatypes
    return InferResponse(arrays, model_name, model_version, response_id, parameters, datatypes)


def error_message(body: Buffer | str | None) -> str | None:
    """Triton's error message from an error response body, for transports to put in their exceptions.

    ``{"error": "..."}`` gives the message; any other non-empty body (an HTML page from a proxy, plain text)
    gives its text with tags and runs of whitespace collapsed, cut to 2,000 characters. An empty body gives
    ``None``. Never raises.
    """
    if body is None:
        return None
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, str):
            return error
        if error is not None:
            return orjson.dumps(error).decode()
    text = raw.decode("utf-8", "replace")
    text = _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()
    if not text:
        return None
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
