"""Tensors in binary form: BYTES length-prefix framing, BF16 bits, and views of a received body.

Binary tensor data is little-endian, row-major, without padding; a BYTES element is a 4-byte little-endian
length followed by its bytes (server ``docs/protocol/extension_binary_data.md``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from endpointkit.errors import PayloadError
from endpointkit.payloads.datatypes import DataType

__all__ = [
    "MAX_BYTES_ELEMENT",
    "array_from_binary",
    "bf16_bits_to_float32",
    "check_bytes_lengths",
    "float32_to_bf16_bits",
    "serialize_bytes",
]

MAX_BYTES_ELEMENT = 0xFFFF_FFFF
"""Largest BYTES element: its length must fit the 4-byte prefix."""

_LENGTH_PREFIX = struct.Struct("<I")


def check_bytes_lengths(lengths: npt.NDArray[np.int64], field: str) -> int:
    """Return the serialized size of BYTES elements of ``lengths``; raise if one overflows its prefix."""
    if lengths.size == 0:
        return 0
    longest = int(lengths.max())
    if longest > MAX_BYTES_ELEMENT:
        index = int(lengths.argmax())
        raise PayloadError(
            f"{field}: BYTES element {index} is {longest:,} bytes; the 4-byte length prefix allows at most "
            f"{MAX_BYTES_ELEMENT:,}",
            field=field,
        )
    return int(lengths.sum()) + 4 * lengths.size


def serialize_bytes(items: list[bytes], lengths: npt.NDArray[np.int64]) -> bytes:
    """Length-prefix every element and join them with one copy of the payload.

    The prefixes come from one numpy conversion (each ``V4`` element turns into a 4-byte ``bytes``), so no
    Python-level loop runs per element; tritonclient packs each prefix with ``struct`` in a loop
    (``tritonclient.utils.serialize_byte_tensor``).
    """
    if not items:
        return b""
    prefixes = lengths.astype("<u4").view("V4").tolist()
    parts: list[bytes] = [b""] * (2 * len(items))
    parts[0::2] = prefixes
    parts[1::2] = items
    return b"".join(parts)


def float32_to_bf16_bits(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """Round float32 values to bfloat16 bits, to nearest with ties to even (as ``ml_dtypes`` does).

    NaNs stay NaN (quiet bit set) instead of rounding into infinity.
    """
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    # One uint32 scratch array, updated in place: (bits + 0x7FFF + lowest kept bit) >> 16.
    scratch = bits >> 16
    scratch &= 1
    scratch += 0x7FFF
    scratch += bits
    scratch >>= 16
    rounded: npt.NDArray[np.uint16] = scratch.astype("<u2")
    nan = np.isnan(values.reshape(bits.shape))
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype("<u2")
    return rounded


def bf16_bits_to_float32(bits: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Widen bfloat16 bits to float32 (exact)."""
    return (bits.astype("<u4") << 16).view("<f4")


def _bytes_elements(body: bytes, start: int, end: int, count: int, field: str) -> list[bytes]:
    if count == 0:
        if end != start:
            message = f"{field}: no elements but {end - start} bytes of data"
            raise PayloadError(message, offset=start, field=field)
        return []
    if 4 * count > end - start:
        raise PayloadError(
            f"{field}: {count} BYTES elements need at least {4 * count} bytes, got {end - start}",
            offset=start,
            field=field,
        )
    (first,) = _LENGTH_PREFIX.unpack_from(body, start)
    if count * (first + 4) == end - start:
        # Fast path: every element the same length (token ids, fixed-width keys, empty strings). numpy checks
        # all prefixes at once and cuts the elements without a Python loop.
        rows = np.frombuffer(body, np.uint8, count=end - start, offset=start).reshape(count, first + 4)
        if (rows[:, :4] == rows[0, :4]).all():
            if first == 0:
                return [b""] * count
            elements: list[bytes] = np.ascontiguousarray(rows[:, 4:]).view(f"V{first}").reshape(-1).tolist()
            return elements
    unpack = _LENGTH_PREFIX.unpack_from
    elements = [b""] * count
    position = start
    for index in range(count):
        if position + 4 > end:
            raise PayloadError(
                f"{field}: BYTES element {index} has no room for its length prefix",
                offset=position,
                field=field,
            )
        (length,) = unpack(body, position)
        position += 4
        stop = position + length
        if stop > end:
            raise PayloadError(
                f"{field}: BYTES element {index} says {length} bytes but only {end - position} remain",
                offset=position - 4,
                field=field,
            )
        elements[index] = body[position:stop]
        position = stop
    if position != end:
        raise PayloadError(
            f"{field}: {count} BYTES elements end at byte {position} but binary_data_size ends at {end}",
            offset=position,
            field=field,
        )
    return elements


def array_from_binary(
    body: bytes | memoryview,
    start: int,
    size: int,
    datatype: DataType,
    shape: tuple[int, ...],
    field: str,
) -> npt.NDArray[Any]:
    """The array held in ``body[start:start + size]``.

    Fixed-size types are zero-copy ``np.frombuffer`` views. They may be unaligned (the JSON header length is
    arbitrary); numpy reads unaligned data correctly, so copying to align would cost every caller for what
    only some operations need (``np.require(a, requirements="A")`` aligns on demand). BF16 is widened to a
    float32 copy; BYTES becomes an object array of ``bytes``.

    Raises:
        PayloadError: ``size`` disagrees with ``shape``, BOOL bytes other than 0 and 1, or bad BYTES framing.
    """
    count = math.prod(shape)
    if datatype.wire_dtype is None:
        source = body if isinstance(body, bytes) else bytes(body[start : start + size])
        offset = start if isinstance(body, bytes) else 0
        elements = _bytes_elements(source, offset, offset + size, count, field)
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    expected = count * datatype.itemsize
    if size != expected:
        raise PayloadError(
            f"{field}: shape {list(shape)} of {datatype.name} needs {expected} bytes but binary_data_size "
            f"is {size}",
            offset=start,
            field=field,
        )
    values = np.frombuffer(body, datatype.wire_dtype, count=count, offset=start)
    if datatype.name == "BOOL" and count and bool((values.view(np.uint8) > 1).any()):
        raise PayloadError(f"{field}: BOOL bytes must be 0 or 1", offset=start, field=field)
    if datatype.name == "BF16":
        return bf16_bits_to_float32(values).reshape(shape)
    return values.reshape(shape)
