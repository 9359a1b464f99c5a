"""Triton's gRPC inference messages: ``ModelInferRequest`` out, ``ModelInferResponse`` in, tensors as raw bytes.

The same inputs, outputs and parameters as :func:`~endpointkit.payloads.encode_request`, the same
:class:`~endpointkit.payloads.InferResponse` as :func:`~endpointkit.payloads.decode_response`. Tensors travel in
``raw_input_contents`` / ``raw_output_contents`` only (little-endian, row-major, BYTES with 4-byte length
prefixes: server ``docs/protocol/extension_binary_data.md``), never in the per-element ``contents`` fields.

How it stays cheap with large tensors, where the protobuf runtime would copy each tensor three times (into the
message, into the serialized bytes, out of a parsed message on every field access):

- A request is the serialized message *without* its tensors, then one ``raw_input_contents`` field per tensor
  written by hand: key, varint length, bytes. Protobuf parsers accept fields in any order and a repeated
  field's entries spread over the message (https://protobuf.dev/programming-guides/encoding/#optional), so
  the result parses exactly as the full message would. The tensors' bytes are copied once, by the join
  (a 16 MiB FP32 request took 47 ms to build and serialize through protobuf on this project's machine, 0.9 ms
  this way).
- A response's fixed-size outputs are ``np.frombuffer`` views of the received bytes (read-only, no copy). A
  response up to 64 KiB is parsed whole by protobuf, in C, and its raw contents are located from Triton's layout;
  a larger one is walked field by field, so that only its small fields go through protobuf.

The message classes come from ``tritonclient.grpc.service_pb2``, imported on first use, so importing
``endpointkit.payloads`` needs no tritonclient.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from endpointkit.errors import MissingDependencyError, PayloadError
from endpointkit.payloads._binary import array_from_binary
from endpointkit.payloads._request import _custom_parameters, _requested_outputs
from endpointkit.payloads._tensors import PreparedTensor, prepare_tensors
from endpointkit.payloads.datatypes import DATATYPES, DataType, lookup_datatype
from endpointkit.payloads.types import InferResponse, ParameterValue, RequestedOutput, Tensor

__all__ = [
    "FINAL_RESPONSE_PARAMETER",
    "GrpcInferRequest",
    "GrpcStreamMessage",
    "decode_grpc_response",
    "decode_grpc_stream_message",
    "encode_grpc_request",
]

FINAL_RESPONSE_PARAMETER = "triton_final_response"
"""Response parameter Triton sets on every streamed response: true on the last one of its request."""
EMPTY_FINAL_RESPONSE_PARAMETER = "triton_enable_empty_final_response"
"""Request parameter that makes Triton send a decoupled model's flag-only final response instead of dropping it
(server ``src/grpc/stream_infer_handler.cc`` ``StreamInferResponseComplete``)."""

# Field numbers and wire types of triton-inference-server/common protobuf/grpc_service.proto, and the encoding's
# wire types (https://protobuf.dev/programming-guides/encoding/#structure).
_RAW_INPUT_CONTENTS_TAG = b"\x3a"  # ModelInferRequest field 7, wire type 2 (length-delimited)
_RAW_OUTPUT_CONTENTS_FIELD = 6
_RAW_OUTPUT_CONTENTS_KEY = 0x32  # ModelInferResponse field 6, wire type 2
_STREAM_ERROR_FIELD = 1
_STREAM_RESPONSE_FIELD = 2
_LENGTH_DELIMITED = 2
_VARINT, _FIXED64, _FIXED32 = 0, 1, 5
# numpy dtypes whose bytes are already Triton's wire form, with the datatype that carries them (BF16 excluded:
# numpy has no native bfloat16). A big-endian array's dtype is not equal to these, so it is converted.
_WIRE_DATATYPES = {
    datatype.wire_dtype: name
    for name, datatype in DATATYPES.items()
    if datatype.wire_dtype is not None and name != "BF16"
}
_RESPONSE_FIELDS = frozenset({_RAW_OUTPUT_CONTENTS_FIELD})
_STREAM_FIELDS = frozenset({_STREAM_ERROR_FIELD, _STREAM_RESPONSE_FIELD})
_CHECKED_DATATYPES = frozenset({"BOOL", "BF16"})  # their bytes need a check (BOOL) or a conversion (BF16)
_FIXED_SIZE_DATATYPES = {
    name: datatype for name, datatype in DATATYPES.items() if datatype.wire_dtype is not None
}
# Responses up to this size are parsed whole by protobuf (its copy of them is cheaper than walking the fields).
_PARSE_WHOLE_LIMIT = 64 * 1024


@functools.cache
def _service() -> Any:
    try:
        from tritonclient.grpc import service_pb2
    except ImportError as exc:
        raise MissingDependencyError(
            "tritonclient[grpc] is needed for gRPC payloads and is not installed: pip install 'endpointkit[local]'"
        ) from exc
    return service_pb2


# ---- requests --------------------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value > 0x7F:
        encoded.append((value & 0x7F) | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


@dataclass(frozen=True, slots=True)
class GrpcInferRequest:
    """An encoded ``ModelInferRequest``, ready to be joined into its wire form.

    ``parts`` is the serialized message without its tensors, then for each input in order the key and length of
    its ``raw_input_contents`` field and the tensor's bytes: memoryviews of the caller's arrays where no
    conversion was needed (do not change the arrays until the request is sent). ``model_name`` is kept for error
    messages.
    """

    parts: tuple[bytes | memoryview, ...]
    model_name: str

    @property
    def raw_input_contents(self) -> tuple[bytes | memoryview, ...]:
        """The tensors' bytes, one buffer per input, in input order."""
        return self.parts[2::2]

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data carried (the serialized message is a little longer)."""
        return sum(memoryview(chunk).nbytes for chunk in self.raw_input_contents)

    def serialize(self) -> bytes:
        """The wire form of the whole message; the tensors' bytes are copied once."""
        return b"".join(self.parts)

    def to_message(self) -> Any:
        """The complete ``service_pb2.ModelInferRequest`` (a copy of everything; for inspection and tests)."""
        return _service().ModelInferRequest.FromString(self.serialize())


def _set_parameter(parameter: Any, value: ParameterValue) -> None:
    if isinstance(value, bool):  # before int: bool is an int
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = value


def encode_grpc_request(
    inputs: Mapping[str, Any] | Sequence[Tensor],
    outputs: Sequence[str | RequestedOutput] | None = None,
    *,
    model_name: str,
    model_version: str = "",
    request_id: str | None = None,
    parameters: Mapping[str, ParameterValue] | None = None,
    stream: bool = False,
) -> GrpcInferRequest:
    """Encode an inference request for Triton's ``GRPCInferenceService/ModelInfer`` (or ``ModelStreamInfer``).

    Args:
        inputs: as for :func:`~endpointkit.payloads.encode_request`: name -> array-like, or :class:`Tensor`.
        outputs: output names or :class:`RequestedOutput` (``binary`` is moot: gRPC outputs are always raw;
            ``class_count`` asks for classification); ``None`` asks for all.
        model_name: the model to run.
        model_version: the version; empty for the model's policy default.
        request_id: echoed back in the response's ``id``.
        parameters: custom request parameters; Triton's reserved names are refused.
        stream: the request goes on a stream: ask Triton for a flag-only final response, so the reader knows
            when a decoupled model is done with it.

    Returns:
        A :class:`GrpcInferRequest`; arrays already C-contiguous and little-endian are not copied.

    Raises:
        PayloadError: the same faults as :func:`~endpointkit.payloads.encode_request`, and a model name that is
            not a non-empty string.
    """
    if not isinstance(model_name, str) or not model_name:
        raise PayloadError(f"model_name must be a non-empty string, got {model_name!r}", field="model_name")
    if not isinstance(model_version, str):
        raise PayloadError(f"model_version must be a string, got {model_version!r}", field="model_version")
    if request_id is not None and not isinstance(request_id, str):
        raise PayloadError(f"request_id must be a string, got {request_id!r}", field="id")
    tensors = _plain_arrays(inputs) or [
        (tensor.name, tensor.datatype.name, tensor.shape, _tensor_bytes(tensor))
        for tensor in prepare_tensors(inputs, "inputs")
    ]
    custom = _custom_parameters(parameters)
    requested = _requested_outputs(outputs, True)
    message = _service().ModelInferRequest(model_name=model_name)
    if model_version:
        message.model_version = model_version
    if request_id:
        message.id = request_id
    for key, value in custom.items():
        _set_parameter(message.parameters[key], value)
    if stream:
        message.parameters[EMPTY_FINAL_RESPONSE_PARAMETER].bool_param = True
    add_input = message.inputs.add
    parts: list[bytes | memoryview] = [b""]
    for name, datatype, shape, chunk in tensors:
        add_input(name=name, datatype=datatype, shape=shape)
        parts += (_RAW_INPUT_CONTENTS_TAG + _varint(memoryview(chunk).nbytes), chunk)
    for entry in requested:
        output = message.outputs.add(name=entry["name"])
        class_count = entry["parameters"].get("classification")
        if class_count:
            output.parameters["classification"].int64_param = class_count
    parts[0] = message.SerializeToString()
    return GrpcInferRequest(tuple(parts), model_name)


def _tensor_bytes(tensor: PreparedTensor) -> bytes | memoryview:
    # A prepared fixed-size array is C-contiguous: memoryview().cast is 5x cheaper than binary_chunk().
    if tensor.array is None or not tensor.array.size:
        return tensor.binary_chunk()
    return memoryview(tensor.array).cast("B")  # type: ignore[arg-type]


def _plain_arrays(inputs: object) -> list[tuple[str, str, tuple[int, ...], bytes | memoryview]] | None:
    """The inputs in wire form when they are the common case, or None for :func:`prepare_tensors` to handle.

    The common case: a dict of named numpy arrays that are C-contiguous and already in a little-endian numeric or
    bool dtype, sent as they are (no copy, nothing to check). Anything else (sequences of :class:`Tensor`, other
    dtypes, strided or big-endian arrays) goes through the general preparation with its checks and conversions.
    """
    if type(inputs) is not dict:
        return None
    plain: list[tuple[str, str, tuple[int, ...], bytes | memoryview]] = []
    for name, array in inputs.items():
        if type(array) is not np.ndarray or type(name) is not str or not name:
            return None
        datatype = _WIRE_DATATYPES.get(array.dtype)
        if datatype is None or not array.flags.c_contiguous:
            return None
        chunk = memoryview(array).cast("B") if array.size else b""  # type: ignore[arg-type]
        plain.append((name, datatype, array.shape, chunk))
    return plain


# ---- responses -------------------------------------------------------------------------------------------------
def _read_varint(data: bytes | memoryview, position: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while position < end:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            break
    raise PayloadError(f"malformed protobuf varint at byte {position}", offset=position)


def _scan(
    data: bytes | memoryview, start: int, end: int, wanted: frozenset[int]
) -> tuple[list[tuple[int, int, int]], bytes | memoryview]:
    """Walk the top-level fields of the message in ``data[start:end]`` and set the ``wanted`` ones aside.

    Returns each wanted length-delimited field as (number, start, end), in wire order, and the bytes of all the
    other fields. Keys and lengths below 128 (nearly all of them) are read inline: this runs on every response.
    """
    found: list[tuple[int, int, int]] = []
    other_spans: list[list[int]] = []
    position = start
    while position < end:
        field_start = position
        key = data[position]
        position += 1
        if key >= 0x80:
            key, position = _read_varint(data, field_start, end)
        wire_type = key & 7
        if wire_type == _LENGTH_DELIMITED:
            length = data[position] if position < end else 0x80
            position += 1
            if length >= 0x80:
                length, position = _read_varint(data, position - 1, end)
            value_start = position
            position += length
            if key >> 3 in wanted:
                if position > end:
                    break
                found.append((key >> 3, value_start, position))
                continue
        elif wire_type == _VARINT:
            _, position = _read_varint(data, position, end)
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
        else:
            raise PayloadError(
                f"unsupported protobuf wire type {wire_type} at byte {field_start}", offset=field_start
            )
        if other_spans and other_spans[-1][1] == field_start:
            other_spans[-1][1] = position
        else:
            other_spans.append([field_start, position])
    if position > end:
        raise PayloadError(
            f"protobuf field {key >> 3} at byte {field_start} runs past the end of its message ({end})",
            offset=field_start,
        )
    if len(other_spans) == 1:  # the usual case: Triton writes fields in number order, raw contents last
        low, high = other_spans[0]
        return found, data[low:high]
    return found, b"".join(data[low:high] for low, high in other_spans)


def _parameters(entries: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for key, value in entries.items():
        choice = value.WhichOneof("parameter_choice")
        parameters[key] = None if choice is None else getattr(value, choice)
    return parameters


def _output_array(data: bytes | memoryview, low: int, high: int, output: Any, index: int) -> npt.NDArray[Any]:
    """The array of output ``index`` from its raw bytes ``data[low:high]`` (field names are only built for errors)."""
    datatype = DATATYPES.get(output.datatype) or lookup_datatype(
        output.datatype, field=f"outputs[{index}].datatype"
    )
    shape = tuple(output.shape)
    if shape and min(shape) < 0:
        raise PayloadError(
            f"outputs[{index}].shape must not hold negative dimensions, got {list(shape)}",
            field=f"outputs[{index}]",
        )
    wire_dtype = datatype.wire_dtype
    if wire_dtype is not None:
        count = math.prod(shape)
        if count * datatype.itemsize != high - low:
            raise PayloadError(
                f"outputs[{index}] ({output.name!r}): shape {list(shape)} of {datatype.name} needs "
                f"{count * datatype.itemsize} bytes but its raw_output_contents has {high - low}",
                offset=low,
                field=f"outputs[{index}]",
            )
        if datatype.name not in _CHECKED_DATATYPES:  # BOOL values are checked and BF16 widened below
            return np.frombuffer(data, wire_dtype, count, low).reshape(shape)
    return array_from_binary(data, low, high - low, datatype, shape, f"outputs[{index}] ({output.name!r})")


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


_Outputs = tuple[dict[str, npt.NDArray[Any]], dict[str, str]]


def _trailing_outputs(data: bytes | memoryview, start: int, end: int, message: Any) -> _Outputs | None:
    """The outputs of a wholly parsed ``message``, read from ``data[start:end]`` where Triton puts them, or None.

    Triton's protobuf writes fields in number order, so the raw contents (field 6) come last, one per output, each
    as long as the output's shape says: their places follow from the shapes, and each is checked (tag and length)
    before it is read. Another layout, a BYTES output (whose length the shape does not give) or anything amiss
    returns None, for the field-by-field walk to decode or report.
    """
    outputs = message.outputs
    described: list[tuple[str, DataType, tuple[int, ...], int]] = []
    tail = 0
    for output in outputs:
        datatype = _FIXED_SIZE_DATATYPES.get(output.datatype)
        if datatype is None:
            return None
        shape = tuple(output.shape)
        length = datatype.itemsize
        for dim in shape:
            length *= dim
        if length < 0 or (shape and min(shape) < 0):
            return None
        described.append((output.name, datatype, shape, length))
        tail += 1 + _varint_size(length) + length
    position = end - tail
    if position < start or len(message.raw_output_contents) != len(outputs):
        return None
    arrays: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    for name, datatype, shape, length in described:
        if data[position] != _RAW_OUTPUT_CONTENTS_KEY or name in arrays:
            return None
        stored = data[position + 1] if position + 1 < end else 0x80
        position += 2
        if stored >= 0x80:
            stored, position = _read_varint(data, position - 1, end)
        if stored != length:
            return None
        if datatype.name in _CHECKED_DATATYPES:  # BOOL values are checked, BF16 widened
            arrays[name] = array_from_binary(data, position, length, datatype, shape, f"output {name!r}")
        else:
            arrays[name] = np.frombuffer(
                data, datatype.wire_dtype, length // datatype.itemsize, position
            ).reshape(shape)
        datatypes[name] = datatype.name
        position += length
    return arrays, datatypes


def _walked_outputs(data: bytes | memoryview, start: int, end: int) -> tuple[Any, _Outputs]:
    """The message and its outputs, walking the fields so that only the small ones go through protobuf."""
    raw, rest = _scan(data, start, end, _RESPONSE_FIELDS)
    message = _parse(rest, start)
    outputs = message.outputs
    if len(raw) != len(outputs):
        raise PayloadError(
            f"the response has {len(outputs)} outputs but {len(raw)} raw_output_contents; Triton sends one raw "
            "buffer per output (typed 'contents' are not read)",
            field="raw_output_contents",
        )
    arrays: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    for index, output in enumerate(outputs):
        name = output.name
        if name in arrays:
            raise PayloadError(
                f"outputs[{index}]: name {name!r} appears twice", field=f"outputs[{index}].name"
            )
        _, low, high = raw[index]
        arrays[name] = _output_array(data, low, high, output, index)
        datatypes[name] = output.datatype
    return message, (arrays, datatypes)


def _parse(data: bytes | memoryview, offset: int) -> Any:
    try:
        return _service().ModelInferResponse.FromString(data)
    except Exception as exc:  # protobuf's DecodeError; the runtime may raise others on garbage
        raise PayloadError(f"the response is not a ModelInferResponse: {exc}", offset=offset) from None


def _decode(data: bytes | memoryview, start: int, end: int) -> tuple[InferResponse, dict[str, Any]]:
    decoded = None
    if end - start <= _PARSE_WHOLE_LIMIT:
        # Small: protobuf parses it whole in C (its internal copy costs less than walking the fields in Python).
        message = _parse(data if start == 0 and end == len(data) else data[start:end], start)
        decoded = _trailing_outputs(data, start, end, message)
    if decoded is None:
        message, decoded = _walked_outputs(data, start, end)
    arrays, datatypes = decoded
    parameters = _parameters(message.parameters) if message.parameters else {}
    response = InferResponse(
        arrays, message.model_name, message.model_version, message.id or None, parameters, datatypes
    )
    return response, parameters


def decode_grpc_response(data: bytes | memoryview) -> InferResponse:
    """Decode a serialized ``ModelInferResponse`` (what ``ModelInfer`` returns, unparsed).

    Args:
        data: the message's wire bytes. Pass ``bytes`` for zero-copy outputs: fixed-size outputs are then
            read-only ``np.frombuffer`` views of ``data``, possibly unaligned.

    Returns:
        An :class:`InferResponse` like :func:`~endpointkit.payloads.decode_response` gives: outputs by name, BF16
        widened to float32, BYTES as object arrays of ``bytes``; ``parameters`` holds the response parameters.

    Raises:
        PayloadError: malformed protobuf, an unknown datatype, an output whose raw bytes disagree with its shape,
            outputs and raw buffers that do not pair up, bad BYTES framing. Nothing else escapes.
    """
    response, _ = _decode(data, 0, len(data))
    return response


@dataclass(frozen=True, slots=True)
class GrpcStreamMessage:
    """One decoded ``ModelStreamInferResponse``.

    ``response`` holds the outputs (none for a flag-only final response or an error). ``error`` is Triton's
    message when the request failed. ``final`` is Triton's ``triton_final_response`` flag: true on the last
    message of its request. ``refused`` is true for an error Triton raised before the model ran (it carries no
    final-response flag at all: server ``src/grpc/stream_infer_handler.cc``), false for a model's own error.
    """

    response: InferResponse
    error: str | None
    final: bool
    refused: bool

    @property
    def is_flag_only(self) -> bool:
        """True for the empty final response that only says the request is done (nothing to hand out)."""
        return self.final and self.error is None and not self.response.outputs


def decode_grpc_stream_message(data: bytes | memoryview) -> GrpcStreamMessage:
    """Decode a serialized ``ModelStreamInferResponse`` (one message of ``ModelStreamInfer``).

    Outputs are zero-copy views of ``data`` as for :func:`decode_grpc_response`.

    Raises:
        PayloadError: as for :func:`decode_grpc_response`.
    """
    fields, _ = _scan(data, 0, len(data), _STREAM_FIELDS)
    error: str | None = None
    span = (0, 0)
    for number, low, high in fields:
        if number == _STREAM_ERROR_FIELD:
            error = bytes(data[low:high]).decode("utf-8", "replace") or None
        else:
            span = (low, high)
    response, parameters = _decode(data, *span)
    final = parameters.get(FINAL_RESPONSE_PARAMETER) is True
    return GrpcStreamMessage(response, error, final, FINAL_RESPONSE_PARAMETER not in parameters)
