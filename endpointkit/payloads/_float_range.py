"""Casts to FP16, FP32, FP64 and BF16 that refuse finite values the type cannot hold.

numpy turns such a value into an infinity (with at most a RuntimeWarning), and so in practice does Triton
when it stores a JSON number read as a double into an FP32 tensor: a model would compute on inf, nobody told. Integers
are range-checked the same way elsewhere. Infinities and NaNs given as such are data, and pass unchanged.

The check costs nothing when no narrowing happens (float32 data for FP32, integers for FP32 and FP64): only a
source type whose range exceeds the target's pays one vectorised pass over the cast result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from endpointkit.errors import PayloadError
from endpointkit.payloads._binary import float32_to_bf16_bits

__all__ = ["to_bf16_bits", "to_float_dtype"]

_LARGEST_FINITE = {
    "FP16": float(np.finfo(np.float16).max),
    "FP32": float(np.finfo(np.float32).max),
    "FP64": float(np.finfo(np.float64).max),
    "BF16": float.fromhex("0x1.fep127"),  # (2 - 2**-7) * 2**127: 8 significand bits, float32's exponent
}
# A float source can overflow the target exactly when it is wider: IEEE formats reach further with every size
# step, and BF16, with float32's exponent but a 16-bit shorter significand, stops just short of FP32's range.
_FLOAT_ITEMSIZE = {"FP16": 2, "BF16": 2, "FP32": 4, "FP64": 8}
_BF16_MAGNITUDE_BITS = 0x7FFF
_BF16_INFINITY_BITS = 0x7F80


def _may_overflow(dtype: np.dtype[Any], datatype_name: str) -> bool:
    """Whether values of ``dtype`` can lie beyond the largest finite value of ``datatype_name``."""
    kind = dtype.kind
    if kind == "f":
        return dtype.itemsize > _FLOAT_ITEMSIZE[datatype_name]
    if kind in "iu":  # only FP16 is narrow enough: 65535 (uint16) and more overflow it
        limits = np.iinfo(dtype)
        return max(-int(limits.min), int(limits.max)) > _LARGEST_FINITE[datatype_name]
    return False  # bool: 0 and 1


def to_float_dtype(
    array: npt.NDArray[Any], dtype: np.dtype[Any], datatype_name: str, field: str
) -> npt.NDArray[Any]:
    """``array`` (bool, integer or float) cast to the float ``dtype`` of ``datatype_name``, in C order.

    No copy when ``array`` already is so. Raises PayloadError, naming ``field``, the value and its index, when
    a finite value would become an infinity.
    """
    source = array.dtype
    # The hot path's case tested inline (a call costs more than the test): float data no wider always fits.
    always_fits = source.kind == "f" and source.itemsize <= _FLOAT_ITEMSIZE[datatype_name]
    if always_fits or not _may_overflow(source, datatype_name):
        return np.asarray(array, dtype=dtype, order="C")
    with np.errstate(over="ignore"):  # an overflow is reported below, naming the tensor
        cast = np.asarray(array, dtype=dtype, order="C")
    _refuse_new_infinities(array, np.isinf(cast), datatype_name, field)
    return cast


def to_bf16_bits(array: npt.NDArray[Any], field: str) -> npt.NDArray[np.uint16]:
    """``array`` (bool, integer or float) rounded to bfloat16 bits.

    Raises PayloadError as :func:`to_float_dtype` does.
    """
    with np.errstate(over="ignore"):  # float64 beyond float32: reported below, through the BF16 bits
        bits = float32_to_bf16_bits(np.asarray(array, dtype=np.float32))
    if _may_overflow(array.dtype, "BF16"):
        infinite = (bits & _BF16_MAGNITUDE_BITS) == _BF16_INFINITY_BITS
        _refuse_new_infinities(array, infinite, "BF16", field)
    return bits


def _refuse_new_infinities(
    source: npt.NDArray[Any], infinite: npt.NDArray[np.bool_], datatype_name: str, field: str
) -> None:
    """Raise when an element of ``infinite`` (row-major) comes from a finite element of ``source``."""
    if not infinite.any():
        return
    overflowed = infinite.reshape(-1) & np.isfinite(source).reshape(-1)
    if not overflowed.any():
        return
    index = int(np.argmax(overflowed))
    value = source.reshape(-1)[index].item()
    where = f" at index {list(map(int, np.unravel_index(index, source.shape)))}" if source.ndim else ""
    largest = _LARGEST_FINITE[datatype_name]
    raise PayloadError(
        f"{field}: value {value!r}{where} is outside the {datatype_name} range (largest finite magnitude "
        f"{largest:.8g}) and would become inf; scale the data or send a wider datatype (infinities and NaN "
        "given as such pass)",
        field=field,
    )
