"""JSON parsing and writing, and tensors carried in JSON ``data``."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson

from endpointkit.errors import PayloadError
from endpointkit.payloads._float_range import to_float_dtype
from endpointkit.payloads.datatypes import DataType

__all__ = ["TrailingDataError", "array_from_json", "dumps", "json_data", "loads"]

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_MAX_NESTING = 100  # Triton's HTTP_MAX_JSON_NESTING_DEPTH (server src/common.h)
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_DECODER = json.JSONDecoder(parse_constant=_CONSTANTS.__getitem__)
_WHITESPACE = " \t\n\r"
_NON_FINITE_TOKENS = (b"NaN", b"Infinity", b"-Infinity")
_TOKEN_ARRAY = np.array(_NON_FINITE_TOKENS, dtype=object)
_MARKERS = np.frombuffer(b"nim", np.uint8)  # replaces the "n" of a null, per kind, on the way to its token
_JOIN_LIMIT = 65_536  # non-finite values up to which split-and-join beats marking and replacing


class TrailingDataError(PayloadError):
    """The JSON document ends before the end of the buffer (``offset`` is where the extra bytes start)."""


def dumps(value: Any) -> bytes:
    """Serialize with orjson; numpy arrays must be C-contiguous and native-endian."""
    return orjson.dumps(value, option=_DUMPS_OPTIONS)


def _byte_offset(text: str, char_offset: int) -> int:
    return len(text[:char_offset].encode("utf-8", "surrogateescape"))


def loads(document: bytes | memoryview, *, base_offset: int = 0) -> Any:
    """Parse one JSON document.

    orjson parses the common case. Triton writes ``NaN``/``Infinity``/``-Infinity`` tokens
    (rapidjson ``kWriteNanAndInfFlag``: common ``include/triton/common/triton_json.h``; server PR #3870),
    which orjson rejects, and does not validate UTF-8 in BYTES outputs (reference edge case 18): only when
    orjson fails, the standard library parses the text decoded with ``surrogateescape``, so those bytes
    survive and come back unchanged when a BYTES element is encoded again.

    Raises:
        TrailingDataError: a complete document is followed by more than whitespace.
        PayloadError: anything else that is not JSON; ``offset`` is the byte offset of the fault.
    """
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError:
        pass
    text = bytes(document).decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        offset = base_offset + _byte_offset(text, exc.pos)
        raise PayloadError(f"bad JSON at byte {offset}: {exc.msg}", offset=offset) from None
    except RecursionError:
        raise PayloadError("bad JSON: nested too deeply", offset=base_offset) from None
    except ValueError as exc:  # e.g. an integer literal longer than sys.get_int_max_str_digits()
        raise PayloadError(f"bad JSON: {exc}", offset=base_offset) from None
    if text[end:].strip(_WHITESPACE):
        offset = base_offset + _byte_offset(text, end)
        message = f"the JSON document ends at byte {offset}, before the body does"
        raise TrailingDataError(message, offset=offset)
    return value


def _is_finite(array: npt.NDArray[Any]) -> bool:
    return array.dtype.kind != "f" or bool(np.isfinite(array).all())


def json_data(array: npt.NDArray[Any] | None, texts: list[str] | None) -> Any:
    """The JSON ``data`` value of a tensor: a flat list, as Triton itself writes it.

    ``array`` is a C-contiguous native numpy array that orjson writes directly (no Python numbers are made),
    ``texts`` the str elements of a BYTES tensor. Non-finite floats become ``NaN``/``Infinity``/``-Infinity``
    tokens, which Triton's parser accepts (``kParseNanAndInfFlag``).
    """
    if texts is not None:
        return texts
    assert array is not None
    flat = array.reshape(-1)
    if _is_finite(flat):
        return flat
    return orjson.Fragment(_dumps_non_finite(flat))


def _dumps_non_finite(flat: npt.NDArray[np.floating[Any]]) -> bytes:
    """orjson's text of a float array with its ``null``s replaced by the non-finite values' tokens.

    orjson writes NaN and infinities as ``null`` (which Triton rejects) and nothing else as ``null``, so the
    k-th ``null`` of its output is the k-th non-finite element; finite values keep orjson's exact text.
    """
    text = orjson.dumps(flat, option=_DUMPS_OPTIONS)
    special = flat[~np.isfinite(flat)]
    kinds = np.where(np.isnan(special), 0, np.where(special > 0, 1, 2))  # indexes into _NON_FINITE_TOKENS
    if (kinds == kinds[0]).all():
        return text.replace(b"null", _NON_FINITE_TOKENS[int(kinds[0])])
    if len(kinds) <= _JOIN_LIMIT:
        pieces = text.split(b"null")
        joined = [b""] * (2 * len(pieces) - 1)
        joined[0::2] = pieces
        joined[1::2] = _TOKEN_ARRAY[kinds].tolist()
        return b"".join(joined)
    # Joining millions of pieces costs ~100 ns each: instead overwrite each null's "n" with a letter for its
    # kind (no number contains "n", "i" or "m"), then let three C-speed replaces put the tokens in.
    marked = bytearray(text)
    letters = np.frombuffer(marked, np.uint8)
    letters[np.flatnonzero(letters == ord("n"))] = _MARKERS[kinds]
    for marked_null, token in zip((b"null", b"iull", b"mull"), _NON_FINITE_TOKENS, strict=True):
        marked = marked.replace(marked_null, token)
    return bytes(marked)


def _flatten(data: list[Any], field: str) -> list[Any]:
    """Leaves of a nested list in row-major order; Triton accepts any nesting and counts leaves."""
    if not any(isinstance(item, list) for item in data):
        return data
    leaves: list[Any] = []
    stack: list[tuple[list[Any], int]] = [(data, 0)]
    while stack:
        items, index = stack.pop()
        while index < len(items):
            item = items[index]
            index += 1
            if isinstance(item, list):
                if len(stack) + 2 > _MAX_NESTING:
                    raise PayloadError(f"{field} is nested deeper than {_MAX_NESTING} levels", field=field)
                stack.append((items, index))
                items, index = item, 0
            else:
                leaves.append(item)
    return leaves


def _refuse_booleans(flat: list[Any], values: npt.NDArray[Any], datatype: DataType, field: str) -> None:
    """Raise if a JSON ``true``/``false`` is among the elements of a numeric (not BOOL) tensor.

    Triton reads those elements with rapidjson's ``IsInt64``/``IsUint64``/``IsNumber``, all false for a
    boolean, and refuses the request ("attempt to access JSON non-number as double", HTTP 500: common
    ``include/triton/common/triton_json.h`` ``AsInt``, ``AsUInt``, ``AsDouble``); numpy would quietly make 1
    or 0 of it. So only an element equal to 0 or 1 can be one, and
    only when there is such an element are the elements' types looked at.
    """
    kind = values.dtype.kind
    if kind in "iuf" and not ((values == 0) | (values == 1)).any():
        return
    if kind != "b" and bool not in set(map(type, flat)):
        return
    index = next(index for index, item in enumerate(flat) if type(item) is bool)
    token = "true" if flat[index] else "false"
    raise PayloadError(
        f"{field}: element {index} is {token}, but {datatype.name} data must be JSON numbers (true and false "
        "belong to BOOL tensors; Triton refuses them in numeric ones)",
        field=field,
    )


def _integers(flat: list[Any], values: npt.NDArray[Any], datatype: DataType, field: str) -> npt.NDArray[Any]:
    if values.dtype.kind in "fO":
        # numpy makes float64 (losing digits) of a list mixing int64-sized and larger ints such as
        # [0, 2**64 - 1]: look at the Python values themselves.
        if not all(type(value) is int for value in flat):
            raise PayloadError(f"{field} must hold JSON integers for {datatype.name}", field=field)
        values = np.array(flat, dtype=object)
    elif values.dtype.kind not in "iu":
        raise PayloadError(f"{field} must hold JSON integers for {datatype.name}", field=field)
    limits = np.iinfo(cast("np.dtype[np.integer[Any]]", datatype.wire_dtype))
    if int(values.min()) < limits.min or int(values.max()) > limits.max:
        raise PayloadError(
            f"{field} has values outside the {datatype.name} range [{limits.min}, {limits.max}]", field=field
        )
    return values.astype(datatype.array_dtype)


def _convert(flat: list[Any], datatype: DataType, field: str) -> npt.NDArray[Any]:
    if datatype.is_bytes:
        if not all(isinstance(item, str) for item in flat):
            raise PayloadError(f"{field} must hold JSON strings for BYTES", field=field)
        try:
            encoded = [item.encode("utf-8", "surrogateescape") for item in flat]
        except UnicodeEncodeError as exc:
            message = f"{field} holds a string that is not valid Unicode: {exc}"
            raise PayloadError(message, field=field) from None
        array = np.empty(len(encoded), dtype=object)
        array[:] = encoded
        return array
    if not datatype.json:
        # Mirror Triton, which refuses these in JSON (server src/http_server.cc ReadDataFromJsonHelper).
        raise PayloadError(
            f"{field}: {datatype.name} cannot travel in JSON; use the binary form (binary=True)", field=field
        )
    if datatype.name == "BOOL":
        values = np.asarray(flat)
        if values.dtype.kind != "b":
            raise PayloadError(f"{field} must hold JSON true/false for BOOL", field=field)
        return values
    values = np.asarray(flat)
    _refuse_booleans(flat, values, datatype, field)
    if datatype.array_dtype.kind in "iu":
        return _integers(flat, values, datatype, field)
    if values.dtype.kind not in "iuf":
        raise PayloadError(f"{field} must hold JSON numbers for {datatype.name}", field=field)
    return to_float_dtype(values, datatype.array_dtype, datatype.name, field)


def array_from_json(data: Any, datatype: DataType, shape: tuple[int, ...], field: str) -> npt.NDArray[Any]:
    """Turn a tensor's JSON ``data`` into an array of ``shape``.

    Raises:
        PayloadError: wrong element types, values out of range, or an element count that disagrees with
            ``shape``.
    """
    if not isinstance(data, list):
        raise PayloadError(f"{field} must be a JSON array", field=field)
    flat = _flatten(data, field)
    count = math.prod(shape)
    if len(flat) != count:
        raise PayloadError(
            f"{field} has {len(flat)} elements but shape {list(shape)} needs {count}", field=field
        )
    if count == 0:
        return np.empty(shape, dtype=datatype.array_dtype)
    try:
        values = _convert(flat, datatype, field)
    except (ValueError, TypeError, OverflowError) as exc:  # numpy refusing a mix such as [1, {}]
        raise PayloadError(f"{field} cannot be read as {datatype.name}: {exc}", field=field) from None
    return values.reshape(shape)
