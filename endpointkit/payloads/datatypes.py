"""The Triton tensor datatypes: wire names, element sizes and the numpy dtypes that carry them.

One table drives both codecs. Sizes and names follow the KServe v2 table plus BF16, which Triton adds
(triton-inference-server/core ``src/tritonserver.cc`` ``TRITONSERVER_DataTypeByteSize``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from endpointkit.errors import PayloadError

__all__ = ["DATATYPES", "DataType", "datatype_for_dtype", "lookup_datatype"]


@dataclass(frozen=True, slots=True)
class DataType:
    """One Triton datatype.

    ``wire_dtype`` is the little-endian numpy dtype of the binary form (``<u2`` for BF16, whose bits numpy
    has no native type for; ``None`` for BYTES, which is length-prefixed). ``array_dtype`` is what decoders
    return: BF16 widens to float32, BYTES is an object array of ``bytes``. ``json`` says whether Triton
    accepts the type in JSON ``data`` (FP16 and BF16 are binary-only: server ``src/http_server.cc``
    ``ReadDataFromJsonHelper``).
    """

    name: str
    itemsize: int
    wire_dtype: np.dtype[np.generic] | None
    array_dtype: np.dtype[np.generic]
    json: bool = True

    @property
    def is_bytes(self) -> bool:
        """True for BYTES, the one variable-size datatype."""
        return self.wire_dtype is None


def _fixed(name: str, wire: str, array: str | None = None, *, json: bool = True) -> DataType:
    wire_dtype = np.dtype(wire)
    return DataType(name, wire_dtype.itemsize, wire_dtype, np.dtype(array or wire), json)


DATATYPES: Mapping[str, DataType] = MappingProxyType(
    {
        "BOOL": _fixed("BOOL", "?"),
        "UINT8": _fixed("UINT8", "u1"),
        "UINT16": _fixed("UINT16", "<u2"),
        "UINT32": _fixed("UINT32", "<u4"),
        "UINT64": _fixed("UINT64", "<u8"),
        "INT8": _fixed("INT8", "i1"),
        "INT16": _fixed("INT16", "<i2"),
        "INT32": _fixed("INT32", "<i4"),
        "INT64": _fixed("INT64", "<i8"),
        "FP16": _fixed("FP16", "<f2", json=False),
        "FP32": _fixed("FP32", "<f4"),
        "FP64": _fixed("FP64", "<f8"),
        "BF16": _fixed("BF16", "<u2", "<f4", json=False),
        "BYTES": DataType("BYTES", 0, None, np.dtype(object)),
    }
)
"""Every datatype Triton names (core ``TRITONSERVER_DataTypeString``), keyed by its exact, case-sensitive
name."""

_BY_KIND_AND_SIZE: Mapping[tuple[str, int], str] = {
    ("b", 1): "BOOL",
    ("u", 1): "UINT8",
    ("u", 2): "UINT16",
    ("u", 4): "UINT32",
    ("u", 8): "UINT64",
    ("i", 1): "INT8",
    ("i", 2): "INT16",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
}


def lookup_datatype(name: object, *, field: str | None = None) -> DataType:
    """Return the :class:`DataType` named ``name``.

    Raises:
        PayloadError: ``name`` is not one of Triton's datatype names (they are case-sensitive).
    """
    if isinstance(name, str):
        datatype = DATATYPES.get(name)
        if datatype is not None:
            return datatype
    known = ", ".join(DATATYPES)
    prefix = f"{field}: " if field else ""
    raise PayloadError(f"{prefix}unknown Triton datatype {name!r}; expected one of {known}", field=field)


def datatype_for_dtype(dtype: np.dtype[np.generic], *, field: str | None = None) -> DataType:
    """Pick the Triton datatype that carries numpy ``dtype`` (any byte order).

    object, bytes (``S``) and str (``U``) dtypes map to BYTES; ``ml_dtypes.bfloat16`` maps to BF16.

    Raises:
        PayloadError: no Triton datatype carries ``dtype`` (complex, datetime, structured, ...).
    """
    kind = dtype.kind
    if kind in "OSU":
        return DATATYPES["BYTES"]
    # ml_dtypes' bfloat16 has kind "V"; reading dtype.name costs more than the rest of this function, so only
    # that kind pays for it (it runs once per tensor on the invoke hot path).
    if kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16":
        return DATATYPES["BF16"]
    name = _BY_KIND_AND_SIZE.get((kind, dtype.itemsize))
    if name is None:
        prefix = f"{field}: " if field else ""
        raise PayloadError(
            f"{prefix}no Triton datatype carries numpy dtype {dtype}; convert the array to a numeric, bool, "
            "bytes or str dtype, or give Tensor(..., datatype=...)",
            field=field,
        )
    return DATATYPES[name]
