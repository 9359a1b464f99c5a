"""Inference requests: ``encode_request`` for clients, ``decode_request`` for servers and fakes of them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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
from endpointkit.payloads.types import (
    Body,
    EncodedRequest,
    InferRequest,
    ParameterValue,
    RequestedOutput,
    Tensor,
)

__all__ = ["RESERVED_PARAMETERS", "RESERVED_PARAMETER_PREFIX", "decode_request", "encode_request"]

RESERVED_PARAMETERS = frozenset(
    {"sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "headers", "binary_data_output"}
)
"""Request parameters Triton or its clients interpret themselves (tritonclient
``TRITON_RESERVED_REQUEST_PARAMS``, server ``docs/protocol/extension_parameters.md``); custom ``parameters``
may not use them."""
RESERVED_PARAMETER_PREFIX = "triton_"
"""Triton answers 400 to any request parameter starting with this (server ``ParseJsonTritonParams``)."""


def _custom_parameters(parameters: Mapping[str, ParameterValue] | None) -> dict[str, ParameterValue]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        message = "parameters must be a mapping of name to str, int, float or bool"
        raise PayloadError(message, field="parameters")
    checked: dict[str, ParameterValue] = {}
    for key, value in parameters.items():
        field = f"parameters[{key!r}]"
        if not isinstance(key, str) or not key:
            raise PayloadError(f"parameter names must be non-empty strings, got {key!r}", field="parameters")
        if key in RESERVED_PARAMETERS or key.startswith(RESERVED_PARAMETER_PREFIX):
            raise PayloadError(
                f"parameter {key!r} is reserved by Triton (names starting with "
                f"{RESERVED_PARAMETER_PREFIX!r} and {', '.join(sorted(RESERVED_PARAMETERS))}); "
                "binary_data_output follows the binary argument",
                field=field,
            )
        finite = not isinstance(value, float) or math.isfinite(value)
        if not isinstance(value, (str, int, float)) or not finite:
            raise PayloadError(
                f"parameter {key!r} must be a str, int, finite float or bool, got {value!r}", field=field
            )
        checked[key] = value
    return checked


def _requested_outputs(
    outputs: Sequence[str | RequestedOutput] | str | RequestedOutput | None, binary: bool
) -> list[dict[str, Any]]:
    if outputs is None:
        return []
    if isinstance(outputs, (str, RequestedOutput)):
        outputs = [outputs]
    if not isinstance(outputs, Sequence):
        raise PayloadError("outputs must be a sequence of names or RequestedOutput", field="outputs")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for output in outputs:
        requested = RequestedOutput(output) if isinstance(output, str) else output
        valid = isinstance(requested, RequestedOutput) and isinstance(requested.name, str) and requested.name
        if not valid:
            message = f"outputs must be non-empty names or RequestedOutput, got {output!r}"
            raise PayloadError(message, field="outputs")
        field = f"outputs[{requested.name}]"
        if requested.name in seen:
            raise PayloadError(f"output {requested.name!r} is requested twice", field=field)
        seen.add(requested.name)
        if requested.binary is not None and not isinstance(requested.binary, bool):
            raise PayloadError(f"{field}: binary must be True, False or None", field=field)
        count = requested.class_count
        if type(count) is not int or count < 0:
            raise PayloadError(f"{field}: class_count must be an integer >= 0, got {count!r}", field=field)
        parameters: dict[str, Any] = {"binary_data": binary if requested.binary is None else requested.binary}
        if count:
            parameters["classification"] = count
        entries.append({"name": requested.name, "parameters": parameters})
    return entries


def encode_request(
    inputs: Mapping[str, Any] | Sequence[Tensor],
    outputs: Sequence[str | RequestedOutput] | None = None,
    *,
    binary: bool | None = None,
    protocol: str = "triton",
    request_id: str | None = None,
    parameters: Mapping[str, ParameterValue] | None = None,
) -> EncodedRequest:
    """Encode an inference request for Triton's ``/v2/models/NAME/infer`` or SageMaker ``/invocations``.

    Args:
        inputs: a mapping of input name to array-like, or a sequence of :class:`Tensor`. The numpy dtype picks
            the Triton datatype (object, bytes and str arrays are BYTES; str is encoded as UTF-8).
        outputs: output names or :class:`RequestedOutput` to ask for; ``None`` (or empty) asks for all.
        binary: ``True`` binary tensors, ``False`` JSON, ``None`` binary only when needed: a tensor is FP16 or
            BF16, a BYTES element is not UTF-8, or the tensors exceed 1 KiB. A binary request also asks for
            binary outputs (``binary_data_output`` when ``outputs`` is None, else each output's
            ``binary_data``, unless its own ``binary`` says otherwise); a JSON request asks for JSON outputs,
            so name FP16/BF16 outputs with ``RequestedOutput(name, binary=True)``.
        protocol: ``"triton"`` frames binary bodies with the ``Inference-Header-Content-Length`` header,
            ``"sagemaker"`` with the ``application/vnd.sagemaker-triton.binary+json;json-header-size=N``
            content type. JSON bodies are ``application/json`` for both.
        request_id: echoed back in the response's ``id``.
        parameters: custom request parameters; Triton's reserved names are refused.

    Returns:
        An :class:`EncodedRequest`. Binary tensors already C-contiguous and little-endian are not copied: the
        body holds memoryviews of them. Others are copied once (to C order, little-endian).

    Raises:
        PayloadError: invalid names, datatypes, values (out of range for the datatype, non-UTF-8 text in
            JSON, FP16/BF16 with ``binary=False``), reserved parameters, duplicate names.
    """
    checked_protocol = check_protocol(protocol)
    tensors = prepare_tensors(inputs, "inputs")
    request_binary = choose_binary(tensors, binary, "inputs")
    document: dict[str, Any] = {}
    if request_id is not None:
        if not isinstance(request_id, str):
            raise PayloadError(f"request_id must be a string, got {request_id!r}", field="id")
        if request_id:
            document["id"] = request_id
    request_parameters: dict[str, Any] = dict(_custom_parameters(parameters))
    requested = _requested_outputs(outputs, request_binary)
    if not requested and request_binary:
        request_parameters["binary_data_output"] = True
    if request_parameters:
        document["parameters"] = request_parameters
    entries, chunks = encode_tensor_entries(tensors)
    document["inputs"] = entries
    if requested:
        document["outputs"] = requested
    frame = frame_body(document, chunks, any(tensor.binary for tensor in tensors), checked_protocol)
    return EncodedRequest(frame.body, frame.headers, frame.content_type, frame.json_header_length)


def _decoded_outputs(raw: object) -> list[RequestedOutput]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PayloadError("'outputs' must be a JSON array", field="outputs")
    outputs: list[RequestedOutput] = []
    for index, entry in enumerate(raw):
        field = f"outputs[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PayloadError(f"{field} must be an object with a string 'name'", field=field)
        parameters = entry.get("parameters", {})
        if not isinstance(parameters, dict):
            raise PayloadError(f"{field}.parameters must be a JSON object", field=f"{field}.parameters")
        binary_data = parameters.get("binary_data", False)
        if not isinstance(binary_data, bool):
            message = f"{field}.parameters.binary_data must be a boolean"
            raise PayloadError(message, field=f"{field}.parameters")
        class_count = parameters.get("classification", 0)
        if type(class_count) is not int or class_count < 0:
            raise PayloadError(
                f"{field}.parameters.classification must be an integer >= 0", field=f"{field}.parameters"
            )
        outputs.append(RequestedOutput(entry["name"], binary_data, class_count))
    return outputs


def decode_request(
    body: Body | str,
    headers: HeadersLike = None,
    *,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
) -> InferRequest:
    """Decode an inference request body, as Triton's HTTP or SageMaker front end would read it.

    Args:
        body: the body, bytes-like or a sequence of buffers (an :class:`EncodedRequest` ``.body`` works).
        headers: the request headers (any case) or just its Content-Type; gzip/deflate ``Content-Encoding``
            is undone first (the header length counts uncompressed bytes).
        max_inflated_bytes: the most bytes a compressed body may inflate to, as for :func:`decode_response`.

    Returns:
        An :class:`InferRequest`; arrays follow the conventions of :func:`decode_response`.

    Raises:
        PayloadError: any framing or content fault, naming the field or byte offset (a compressed body that
            inflates past ``max_inflated_bytes`` included). Nothing else escapes.
    """
    data, framing = read_body(body, headers, max_inflated_bytes)
    document = parse_document(data, framing)
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise PayloadError("'id' must be a string", field="id")
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise PayloadError("'parameters' must be a JSON object", field="parameters")
    if "inputs" not in document:
        raise PayloadError("the request has no 'inputs'", field="inputs")
    outputs = _decoded_outputs(document.get("outputs"))
    tensors = decode_tensors(data, framing, document["inputs"], "inputs")
    return InferRequest(tensors.arrays, outputs, request_id, parameters, tensors.datatypes)
