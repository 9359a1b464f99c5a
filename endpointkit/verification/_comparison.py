"""Comparing an output with its expectation: shapes exactly, dtypes by kind, values like ``numpy.allclose``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Comparison", "compare"]

# Kinds compared with each other: JSON cannot tell 1 from 1.0, so integers and floats are one family; booleans
# and text are their own.
_FAMILIES = {"b": "booleans", "i": "numbers", "u": "numbers", "f": "numbers", "c": "numbers"}
_TEXT_KINDS = "OSU"


@dataclass(frozen=True, slots=True)
class Comparison:
    """What comparing one output with its expectation found.

    ``detail`` is the largest difference on a pass, and on a failure what differs: the shapes, the kinds, or how
    many elements are out of tolerance, the largest difference among them, its index and the tolerance there.
    """

    passed: bool
    detail: str


def compare(actual: npt.NDArray[Any], expected: npt.NDArray[Any], *, rtol: float, atol: float) -> Comparison:
    """Compare ``actual`` with ``expected``: the same shape (no broadcasting), the same family of dtype (booleans,
    numbers, text), and every element within ``atol + rtol * |expected|`` (``numpy.isclose``; NaN matches NaN).
    Text (BYTES) elements must be equal; ``str`` elements count as their UTF-8 bytes.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return Comparison(
            False, f"has shape {_index(actual.shape)} where {_index(expected.shape)} was expected"
        )
    actual_family, expected_family = _family(actual), _family(expected)
    if actual_family != expected_family:
        return Comparison(
            False,
            f"holds {actual_family} ({actual.dtype}) where {expected_family} ({expected.dtype}) were expected",
        )
    if actual_family == "text":
        return _compare_text(actual, expected)
    return _compare_numbers(actual, expected, rtol=rtol, atol=atol)


def _family(array: npt.NDArray[Any]) -> str:
    if array.dtype.kind in _TEXT_KINDS:
        return "text"
    return _FAMILIES.get(array.dtype.kind, str(array.dtype))


def _compare_numbers(
    actual: npt.NDArray[Any], expected: npt.NDArray[Any], *, rtol: float, atol: float
) -> Comparison:
    wide = np.complex128 if "c" in (actual.dtype.kind, expected.dtype.kind) else np.float64
    got, want = actual.astype(wide), expected.astype(wide)
    close = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got - want)
    # inf - inf and NaN - NaN are NaN: no difference where isclose matched them, an infinite one where it did not.
    difference = np.where(np.isnan(difference), np.where(close, 0.0, np.inf), difference)
    if bool(close.all()):
        largest = float(difference.max()) if difference.size else 0.0
        return Comparison(True, f"largest difference {largest:.3g} (rtol {rtol:g}, atol {atol:g})")
    failing = np.where(close, -1.0, difference)
    flat = int(np.argmax(failing))
    where = tuple(int(i) for i in np.unravel_index(flat, actual.shape))
    allowed = atol + rtol * float(np.abs(want.reshape(-1)[flat]))
    count = int((~close).sum())
    return Comparison(
        False,
        f"{count} of {actual.size} elements out of tolerance; largest difference "
        f"{float(difference.reshape(-1)[flat]):.6g} at {_index(where)} (got {_value(got.reshape(-1)[flat])}, "
        f"expected {_value(want.reshape(-1)[flat])}; tolerance atol {atol:g} + rtol {rtol:g} * |expected| = "
        f"{allowed:.6g})",
    )


def _compare_text(actual: npt.NDArray[Any], expected: npt.NDArray[Any]) -> Comparison:
    got = [_bytes(item) for item in actual.reshape(-1)]
    want = [_bytes(item) for item in expected.reshape(-1)]
    different = [position for position, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
    if not different:
        return Comparison(True, f"all {actual.size} elements equal")
    first = different[0]
    where = tuple(int(i) for i in np.unravel_index(first, actual.shape))
    return Comparison(
        False,
        f"{len(different)} of {actual.size} elements differ; first at {_index(where)} "
        f"(got {got[first]!r}, expected {want[first]!r})",
    )


def _bytes(item: Any) -> Any:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, bytes):  # np.bytes_ too
        return bytes(item)
    return item


def _value(number: complex | float) -> str:
    if isinstance(number, complex) and number.imag:
        return f"{number:.6g}"
    return f"{float(np.real(number)):.6g}"


def _index(positions: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(position) for position in positions) + "]"
