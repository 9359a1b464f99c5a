"""What requests and responses share: choosing JSON or binary, framing a body, and reading one back.

A body is a JSON object, then the binary tensors' bytes back to back, in the order the tensors appear in the
JSON (server ``docs/protocol/extension_binary_data.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy.typing as npt

from endpointkit.errors import PayloadError
from endpointkit.payloads._binary import array_from_binary
from endpointkit.payloads._inflate import inflate
from endpointkit.payloads._json import TrailingDataError, array_from_json, dumps, loads
from endpointkit.payloads._tensors import PreparedTensor
from endpointkit.payloads.content_types import (
    PROTOCOLS,
    Framing,
    HeadersLike,
    ProtocolName,
    framing_headers,
    parse_framing,
)
from endpointkit.payloads.datatypes import lookup_datatype
from endpointkit.payloads.types import Body, Buffer

__all__ = [
    "AUTO_BINARY_THRESHOLD",
    "DecodedTensors",
    "Frame",
    "check_protocol",
    "choose_binary",
    "decode_tensors",
    "encode_tensor_entries",
    "frame_body",
    "parse_document",
    "read_body",
]

AUTO_BINARY_THRESHOLD = 1024
"""With ``binary=None``, tensors larger than this many bytes in total go binary."""

# numpy refuses shapes whose non-zero dimensions multiply past this, even for zero-size arrays.
_MAX_ELEMENTS = 2**62 // 8


def check_protocol(protocol: object) -> ProtocolName:
    """Return ``protocol`` if it is ``"triton"`` or ``"sagemaker"``, else raise PayloadError."""
    for known in PROTOCOLS:
        if protocol == known:
            return known
    raise PayloadError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}", field="protocol")


def choose_binary(tensors: Sequence[PreparedTensor], binary: bool | None, role: str) -> bool:
    """Resolve the body-level choice and mark each tensor binary or JSON.

    ``binary=None`` picks binary when a tensor cannot travel in JSON (FP16, BF16, non-UTF-8 BYTES) or the
    tensors exceed :data:`AUTO_BINARY_THRESHOLD` bytes in total; a tensor's own ``binary`` always wins.
    Returns the choice for the body as a whole, which the outputs follow: with ``binary=None`` it is binary
    whenever any tensor is.

    Raises:
        PayloadError: a tensor that must be JSON (``binary=False``) cannot be; the message says to use binary.
    """
    if binary is not None and not isinstance(binary, bool):
        raise PayloadError(f"binary must be True, False or None, got {binary!r}", field="binary")
    automatic = binary is None
    if binary is None:
        undecided = [tensor for tensor in tensors if tensor.binary is None]
        binary = sum(tensor.nbytes for tensor in undecided) > AUTO_BINARY_THRESHOLD or any(
            tensor.json_blocker() is not None for tensor in undecided
        )
    for tensor in tensors:
        if tensor.binary is None:
            tensor.binary = binary
        if not tensor.binary:
            reason = tensor.json_blocker()
            if reason is not None:
                raise PayloadError(
                    f"{tensor.field}: {reason}; send it in binary form (binary=True or binary=None)",
                    field=tensor.field,
                )
    # An automatic choice follows the body: once it is binary anyway, binary outputs cost no readability.
    return binary or (automatic and any(tensor.binary for tensor in tensors))


def encode_tensor_entries(
    tensors: Sequence[PreparedTensor],
) -> tuple[list[dict[str, Any]], list[bytes | memoryview]]:
    """The JSON entries of ``tensors`` and the binary chunks that follow the JSON, in the same order."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes | memoryview] = []
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype.name,
        }
        if tensor.binary:
            entry["parameters"] = {"binary_data_size": tensor.nbytes}
            if tensor.nbytes:
                chunks.append(tensor.binary_chunk())
        else:
            entry["data"] = tensor.json_value()
        entries.append(entry)
    return entries, chunks


@dataclass(frozen=True, slots=True)
class Frame:
    """A framed body: what :class:`~endpointkit.payloads.types.EncodedBody` holds."""

    body: bytes | tuple[bytes | memoryview, ...]
    headers: dict[str, str]
    content_type: str
    json_header_length: int | None


def frame_body(
    document: dict[str, Any], chunks: list[bytes | memoryview], binary: bool, protocol: ProtocolName
) -> Frame:
    """Serialize ``document`` and put the binary chunks after it.

    The header length is ``len()`` of the serialized bytes, so it counts bytes, not characters (tritonclient
    gets this right only because python-rapidjson escapes non-ASCII by default).
    """
    try:
        header = dumps(document)
    except TypeError as exc:
        raise PayloadError(f"cannot serialize the JSON header: {exc}") from None
    json_header_length = len(header) if binary else None
    headers = framing_headers(protocol, json_header_length)
    body: bytes | tuple[bytes | memoryview, ...] = (header, *chunks) if chunks else header
    return Frame(body, headers, headers["Content-Type"], json_header_length)


def _join(body: Body | str) -> bytes | memoryview:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        view = memoryview(body)
        if not view.c_contiguous:
            return view.tobytes()
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    if isinstance(body, Sequence):
        try:
            return b"".join(cast("Sequence[Buffer]", body))
        except TypeError:
            pass
    raise PayloadError(f"the body must be bytes-like or a sequence of buffers, got {type(body).__name__}")


def read_body(
    body: Body | str, headers: HeadersLike, max_inflated_bytes: int
) -> tuple[bytes | memoryview, Framing]:
    """Join and inflate ``body`` (at most ``max_inflated_bytes``); check the header length against it."""
    framing = parse_framing(headers)
    data = _join(body)
    if framing.encoding is not None:
        inflated = inflate(
            data, framing.encoding, limit=max_inflated_bytes, setting="the max_inflated_bytes argument"
        )
        data = memoryview(inflated)
    length = framing.json_header_length
    if length is not None and length > len(data):
        raise PayloadError(
            f"{framing.source} is {length} but the body is only {len(data)} bytes: it must be the byte "
            "length of the JSON part at the start of the body",
            offset=len(data),
            field=framing.source,
        )
    return data, framing


def parse_document(data: bytes | memoryview, framing: Framing) -> dict[str, Any]:
    """Parse the JSON part of a body into a dict."""
    end = len(data) if framing.json_header_length is None else framing.json_header_length
    if end == 0:
        raise PayloadError(
            f"{framing.source} is 0 (or the body is empty): that is Triton's raw binary form, one input's "
            "bytes without any JSON, which carries no names, shapes or datatypes to decode",
            offset=0,
            field=framing.source,
        )
    try:
        document = loads(data[:end])
    except TrailingDataError as exc:
        if framing.json_header_length is not None:
            raise PayloadError(
                f"the JSON header ends at byte {exc.offset} but {framing.source} says {end}",
                offset=exc.offset,
                field=framing.source,
            ) from None
        raise PayloadError(
            f"the JSON ends at byte {exc.offset} and {len(data) - (exc.offset or 0)} more bytes follow: "
            f"binary data needs the JSON length in the {framing.source} header (or the SageMaker "
            "json-header-size content type)",
            offset=exc.offset,
            field=framing.source,
        ) from None
    if not isinstance(document, dict):
        raise PayloadError("the JSON body must be an object", offset=0)
    return document


def _shape(raw: object, field: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(dim) is int and dim >= 0 for dim in raw):
        raise PayloadError(f"{field} must be a list of non-negative integers, got {raw!r}", field=field)
    if math.prod(dim for dim in raw if dim) > _MAX_ELEMENTS:
        raise PayloadError(f"{field} {raw!r} is too large for an array", field=field)
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class DecodedTensors:
    """Arrays and Triton datatypes by name, in body order."""

    arrays: dict[str, npt.NDArray[Any]]
    datatypes: dict[str, str]


def decode_tensors(data: bytes | memoryview, framing: Framing, entries: object, role: str) -> DecodedTensors:
    """Read every tensor of ``entries`` (the ``inputs`` or ``outputs`` list) from JSON data or the body.

    Raises:
        PayloadError: a malformed entry, a tensor with both or neither of ``data`` and ``binary_data_size``,
            binary data without a header length, sizes that do not add up to the body, shape/count mismatch.
    """
    if not isinstance(entries, list):
        raise PayloadError(f"'{role}' must be a JSON array", field=role)
    header_length = framing.json_header_length
    position = len(data) if header_length is None else header_length
    arrays: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    for index, entry in enumerate(entries):
        field = f"{role}[{index}]"
        if not isinstance(entry, dict):
            raise PayloadError(f"{field} must be a JSON object", field=field)
        name = entry.get("name")
        if not isinstance(name, str):
            raise PayloadError(f"{field}.name must be a string", field=f"{field}.name")
        if name in arrays:
            raise PayloadError(f"{field}: name {name!r} appears twice", field=f"{field}.name")
        datatype = lookup_datatype(entry.get("datatype"), field=f"{field}.datatype")
        shape = _shape(entry.get("shape"), f"{field}.shape")
        parameters = entry.get("parameters", {})
        if not isinstance(parameters, dict):
            raise PayloadError(f"{field}.parameters must be a JSON object", field=f"{field}.parameters")
        size = parameters.get("binary_data_size")
        if size is not None:
            size_field = f"{field}.parameters.binary_data_size"
            if type(size) is not int or size < 0:
                raise PayloadError(f"{size_field} must be a non-negative integer", field=size_field)
            if "data" in entry:
                raise PayloadError(f"{field} has both 'data' and binary_data_size", field=field)
            if header_length is None and size:
                raise PayloadError(
                    f"{field} ({name!r}) says {size} bytes of binary data but no {framing.source} header (or "
                    "SageMaker json-header-size content type) gives the JSON length",
                    offset=position,
                    field=framing.source,
                )
            if position + size > len(data):
                raise PayloadError(
                    f"the body is truncated: {field} ({name!r}) needs bytes {position} to "
                    f"{position + size} but the body ends at {len(data)}",
                    offset=len(data),
                    field=size_field,
                )
            arrays[name] = array_from_binary(data, position, size, datatype, shape, field)
            position += size
        elif "data" in entry:
            arrays[name] = array_from_json(entry["data"], datatype, shape, f"{field}.data")
        else:
            raise PayloadError(
                f"{field} ({name!r}) has neither 'data' nor binary_data_size (shared memory is not readable "
                "from a body)",
                field=field,
            )
        datatypes[name] = datatype.name
    if position != len(data):
        raise PayloadError(
            f"{len(data) - position} unexpected bytes after the last binary tensor (binary_data_size values "
            f"add up to {position - (header_length or 0)} bytes)",
            offset=position,
            field=role,
        )
    return DecodedTensors(arrays, datatypes)
