"""Turning caller data into tensors ready to encode, with client-side validation.

Everything Triton would reject late (or accept wrongly: it wraps 256 into a UINT8 without a word, a range
check its server source leaves undone in ``src/http_server.cc`` ``ReadDataFromJsonHelper``) is refused here,
naming the tensor. Floats are range-checked too: a finite value beyond FP16, FP32 or BF16 is refused rather
than sent as inf (``_float_range``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from endpointkit.errors import PayloadError
from endpointkit.payloads._binary import check_bytes_lengths, serialize_bytes
from endpointkit.payloads._float_range import to_bf16_bits, to_float_dtype
from endpointkit.payloads._json import json_data
from endpointkit.payloads.datatypes import DATATYPES, DataType, datatype_for_dtype, lookup_datatype
from endpointkit.payloads.types import Tensor

__all__ = ["PreparedTensor", "prepare_tensors"]

_BF16 = DATATYPES["BF16"]


@dataclass(slots=True)
class PreparedTensor:
    """A tensor in wire form.

    Fixed-size types keep ``array``: C-contiguous, little-endian (BF16 as its uint16 bits), a view of the
    caller's array when that already was so. BYTES keeps ``items`` (each element's bytes) and ``texts`` when
    every element was a ``str``.
    """

    name: str
    datatype: DataType
    shape: tuple[int, ...]
    binary: bool | None
    field: str
    array: npt.NDArray[Any] | None = None
    items: list[bytes] | None = None
    texts: list[str] | None = None
    lengths: npt.NDArray[np.int64] | None = None
    nbytes: int = 0

    def json_blocker(self) -> str | None:
        """Why this tensor cannot travel in JSON, or None when it can."""
        if not self.datatype.json:
            return f"{self.datatype.name} cannot travel in JSON (Triton refuses it)"
        if self.datatype.is_bytes and self.texts is None:
            assert self.items is not None
            try:
                self.texts = [item.decode("utf-8") for item in self.items]
            except UnicodeDecodeError:
                index = next(i for i, item in enumerate(self.items) if not _is_utf8(item))
                return f"BYTES element {index} is not UTF-8 text, which JSON cannot carry"
        return None

    def json_value(self) -> Any:
        """The JSON ``data`` value (call :meth:`json_blocker` first)."""
        return json_data(self.array, self.texts)

    def binary_chunk(self) -> bytes | memoryview:
        """The tensor's bytes: a memoryview of the array, or the serialized BYTES elements."""
        if self.datatype.is_bytes:
            assert self.items is not None and self.lengths is not None
            return serialize_bytes(self.items, self.lengths)
        assert self.array is not None
        return self.array.reshape(-1).view(np.uint8).data


def _is_utf8(item: bytes) -> bool:
    try:
        item.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _to_array(data: Any, datatype: DataType | None, field: str) -> npt.NDArray[Any]:
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, (bytes, bytearray, str)):
        scalar = np.empty((), dtype=object)
        scalar[()] = bytes(data) if isinstance(data, bytearray) else data
        return scalar
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        # A ragged list, or str mixed with non-ASCII bytes (numpy tries to decode them as ASCII).
        return _object_array(data, field)
    if array.dtype.kind in "SU" or (datatype is not None and datatype.is_bytes and array.dtype.kind != "O"):
        # numpy's fixed-width S/U dtypes drop trailing NULs (server issue #2545): keep the original objects.
        array = np.array(data, dtype=object)
    elif array.dtype.kind == "f" and datatype is not None and datatype.array_dtype.kind in "iu":
        # numpy turns [0, 2**64 - 1] into float64, losing digits: keep the Python ints and check them.
        array = np.array(data, dtype=object)
    return array


def _object_array(data: Any, field: str) -> npt.NDArray[Any]:
    try:
        array = np.array(data, dtype=object)
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"{field}: cannot make an array of the data: {exc}", field=field) from None
    if any(isinstance(item, (list, tuple)) for item in array.flat):
        raise PayloadError(f"{field}: cannot make an array of ragged nested lists", field=field)
    return array


def _checked_integers(array: npt.NDArray[Any], datatype: DataType, field: str) -> npt.NDArray[Any]:
    assert datatype.wire_dtype is not None
    kind = array.dtype.kind
    if kind == "O":
        if not all(isinstance(value, (int, np.integer)) for value in array.flat):
            raise PayloadError(f"{field}: {datatype.name} needs integers", field=field)
    elif kind not in "biu":
        raise PayloadError(
            f"{field}: {datatype.name} needs integers, got {array.dtype} data; round or cast it first",
            field=field,
        )
    if array.size and not (kind != "O" and np.can_cast(array.dtype, datatype.wire_dtype, "safe")):
        limits = np.iinfo(cast("np.dtype[np.integer[Any]]", datatype.wire_dtype))
        low, high = int(array.min()), int(array.max())
        if low < limits.min or high > limits.max:
            bad = low if low < limits.min else high
            raise PayloadError(
                f"{field}: value {bad} is outside the {datatype.name} range [{limits.min}, {limits.max}]",
                field=field,
            )
    return array


def _wire_array(array: npt.NDArray[Any], datatype: DataType, field: str) -> npt.NDArray[Any]:
    """Cast to the little-endian C-order wire dtype: one copy at most, none when already so."""
    assert datatype.wire_dtype is not None
    kind = array.dtype.kind
    if array.size == 0 and kind in "biufO":
        return np.empty(array.shape, dtype=datatype.wire_dtype)
    if datatype is _BF16:
        if array.dtype.name == "bfloat16":
            return np.ascontiguousarray(array).view("<u2")
        if kind not in "biuf":
            raise PayloadError(f"{field}: BF16 needs float data, got {array.dtype}", field=field)
        return to_bf16_bits(array, field)
    if datatype.name == "BOOL":
        if kind != "b":
            raise PayloadError(f"{field}: BOOL needs booleans, got {array.dtype} data", field=field)
    elif datatype.wire_dtype.kind in "iu":
        array = _checked_integers(array, datatype, field)
    else:
        if kind not in "biuf":
            array = _object_floats(array, datatype, field)
        return to_float_dtype(array, datatype.wire_dtype, datatype.name, field)
    return np.asarray(array, dtype=datatype.wire_dtype, order="C")


def _object_floats(array: npt.NDArray[Any], datatype: DataType, field: str) -> npt.NDArray[np.float64]:
    """Python numbers (an object array: ints beyond 64 bits among them) as float64, for a float datatype."""
    if array.dtype.kind != "O":
        raise PayloadError(f"{field}: {datatype.name} needs numbers, got {array.dtype} data", field=field)
    try:
        return array.astype(np.float64)
    except OverflowError:
        message = f"{field}: a value is too large for any float (beyond the FP64 range)"
        raise PayloadError(message, field=field) from None
    except (TypeError, ValueError):
        raise PayloadError(f"{field}: {datatype.name} needs numbers", field=field) from None


def _bytes_items(array: npt.NDArray[Any], field: str) -> tuple[list[bytes], list[str] | None]:
    if array.dtype.kind not in "OSU":
        raise PayloadError(f"{field}: BYTES needs bytes or str data, got {array.dtype}", field=field)
    elements: list[Any] = array.reshape(-1).tolist()
    kinds = set(map(type, elements))
    try:
        if kinds <= {bytes}:
            return elements, None
        if kinds <= {str}:
            return list(map(str.encode, elements)), elements
        items: list[bytes] = []
        for index, element in enumerate(elements):
            if isinstance(element, str):
                items.append(element.encode("utf-8"))
            elif isinstance(element, (bytes, bytearray, memoryview)):
                items.append(bytes(element))
            else:
                raise PayloadError(
                    f"{field}: BYTES element {index} is a {type(element).__name__}; give bytes or str "
                    "(or a numeric array or datatype for numbers)",
                    field=field,
                )
    except UnicodeEncodeError as exc:
        raise PayloadError(f"{field}: a str element cannot be encoded as UTF-8: {exc}", field=field) from None
    return items, None


def _prepare(tensor: Tensor, role: str) -> PreparedTensor:
    name = tensor.name
    if not isinstance(name, str) or not name:
        raise PayloadError(f"{role} names must be non-empty strings, got {name!r}", field=role)
    field = f"{role}[{name}]"
    if tensor.binary is not None and not isinstance(tensor.binary, bool):
        raise PayloadError(f"{field}: binary must be True, False or None", field=field)
    datatype = None
    if tensor.datatype is not None:
        datatype = lookup_datatype(tensor.datatype, field=f"{field}.datatype")
    array = _to_array(tensor.data, datatype, field)
    if datatype is None:
        datatype = datatype_for_dtype(array.dtype, field=field)
    shape = tuple(int(dim) for dim in array.shape)
    prepared = PreparedTensor(name, datatype, shape, tensor.binary, field)
    if datatype.is_bytes:
        prepared.items, prepared.texts = _bytes_items(array, field)
        lengths = np.fromiter(map(len, prepared.items), dtype=np.int64, count=len(prepared.items))
        prepared.lengths = lengths
        prepared.nbytes = check_bytes_lengths(lengths, field)
    else:
        prepared.array = _wire_array(array, datatype, field)
        prepared.nbytes = prepared.array.nbytes
    return prepared


def prepare_tensors(tensors: Mapping[str, Any] | Sequence[Tensor], role: str) -> list[PreparedTensor]:
    """Validate and convert ``tensors`` (a mapping name -> data, or a sequence of :class:`Tensor`).

    Raises:
        PayloadError: duplicate or empty names, unknown datatypes, data that the datatype cannot hold.
    """
    if isinstance(tensors, Mapping):
        items = [Tensor(name, data) for name, data in tensors.items()]
    elif isinstance(tensors, (str, bytes)) or not isinstance(tensors, Sequence):
        raise PayloadError(
            f"{role} must be a mapping of name to array or a sequence of Tensor, "
            f"got {type(tensors).__name__}",
            field=role,
        )
    else:
        items = list(tensors)
        for item in items:
            if not isinstance(item, Tensor):
                raise PayloadError(
                    f"{role} sequences must hold Tensor objects, got {type(item).__name__}", field=role
                )
    prepared = [_prepare(item, role) for item in items]
    seen: set[str] = set()
    for tensor in prepared:
        if tensor.name in seen:
            raise PayloadError(f"{role} name {tensor.name!r} appears twice", field=f"{role}[{tensor.name}]")
        seen.add(tensor.name)
    return prepared
