"""Shared helpers for the payload codec tests: sample arrays per datatype and exact comparisons."""

from __future__ import annotations

import os
import zlib
from typing import Any, NoReturn, cast

import numpy as np
import numpy.typing as npt
import pytest

from endpointkit.payloads._binary import bf16_bits_to_float32, float32_to_bf16_bits

ALLOW_NO_TRITON = "ENDPOINTKIT_ALLOW_NO_TRITON"
"""Set to 1 to skip, instead of fail, the tests that need a real tritonserver or tritonclient."""

ALL_DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
)
JSON_DATATYPES = tuple(datatype for datatype in ALL_DATATYPES if datatype not in ("FP16", "BF16"))

NUMPY_DTYPES = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BF16": np.dtype(np.float32),
    "BYTES": np.dtype(object),
}
"""The dtype a caller gives for each datatype (BF16 takes float32) and decoders return."""


def sample(datatype: str, shape: tuple[int, ...] = (2, 3)) -> npt.NDArray[Any]:
    """A deterministic array of ``datatype`` holding the type's extremes where it has them."""
    count = int(np.prod(shape))
    if datatype == "BYTES":
        pool = [b"", b"a", b"trailing\x00", b"\x00mid\x00dle", "é".encode(), b"0123456789" * 3]
        values = np.empty(count, dtype=object)
        values[:] = [pool[index % len(pool)] for index in range(count)]
        return values.reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    if datatype == "BOOL":
        flags: npt.NDArray[np.bool_] = np.arange(count) % 3 == 0
        return flags.reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(cast("np.dtype[np.integer[Any]]", dtype))
        pool_ints = [info.min, info.max, 0, 1, info.max // 3]
        return np.array([pool_ints[index % len(pool_ints)] for index in range(count)], dtype=dtype).reshape(
            shape
        )
    pool_floats = [0.1, -2.5, 1e-3, 3.0e4, -0.0, 65504.0 if datatype == "FP16" else 1.0e30]
    values_f = np.array([pool_floats[index % len(pool_floats)] for index in range(count)], dtype=dtype)
    if datatype == "BF16":
        values_f = bf16_bits_to_float32(float32_to_bf16_bits(cast("npt.NDArray[np.float32]", values_f)))
    return values_f.reshape(shape)


def assert_identical(actual: npt.NDArray[Any], expected: npt.ArrayLike, datatype: str | None = None) -> None:
    """Same shape, same dtype kind and the same bits (NaNs and -0.0 included); BYTES compared as bytes."""
    expected_array = np.asarray(expected)
    assert actual.shape == expected_array.shape, (actual.shape, expected_array.shape)
    if actual.dtype == object or expected_array.dtype == object:
        assert actual.dtype == object
        as_bytes = [
            item.encode() if isinstance(item, str) else bytes(item) for item in expected_array.reshape(-1)
        ]
        assert list(actual.reshape(-1)) == as_bytes
        assert all(type(item) is bytes for item in actual.reshape(-1))
        return
    if datatype is not None:
        assert actual.dtype == NUMPY_DTYPES[datatype], (actual.dtype, datatype)
    expected_cast = expected_array.astype(actual.dtype)
    if actual.dtype.kind == "f":
        width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[actual.dtype.itemsize]
        left = np.ascontiguousarray(actual).view(width)
        right = np.ascontiguousarray(expected_cast).view(width)
        assert np.array_equal(left, right), (actual, expected_cast)
    else:
        assert np.array_equal(actual, expected_cast), (actual, expected_cast)


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip stream of ``inflated_bytes`` zeros, built a MiB at a time (about a thousandth of that size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    piece = bytes(1 << 20)
    parts = [
        compressor.compress(piece[: min(len(piece), inflated_bytes - start)])
        for start in range(0, inflated_bytes, len(piece))
    ]
    return b"".join(parts) + compressor.flush()


@pytest.fixture(params=ALL_DATATYPES)
def datatype(request: pytest.FixtureRequest) -> str:
    """Every Triton datatype."""
    return str(request.param)


def missing_triton_dependency(what: str, install: str, cause: BaseException) -> NoReturn:
    """Fail the calling test (or module) because ``what`` is missing; skip instead when ALLOW_NO_TRITON=1.

    The real Triton and tritonclient tests are what proves the codecs right: a missing server must not pass
    unnoticed as a skip.
    """
    message = (
        f"{what} is missing ({cause}). Install it: {install}; or set {ALLOW_NO_TRITON}=1 to skip these tests"
    )
    # "from None": the ImportError is already in the message, its traceback would only bury it.
    if os.environ.get(ALLOW_NO_TRITON) == "1":
        raise pytest.skip.Exception(message, allow_module_level=True) from None
    raise pytest.fail.Exception(message, pytrace=False) from None
