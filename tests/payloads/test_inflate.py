"""Bounded inflation of gzip and deflate bodies: a compression bomb stops at the bound, in memory too."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    DEFAULT_MAX_INFLATED_BYTES,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    inflate,
)
from tests.payloads.conftest import gzip_bomb

MiB = 1 << 20
BOMB_INFLATED = 16 * MiB


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """16 MiB of zeros in about 16 KB of gzip."""
    return gzip_bomb(BOMB_INFLATED)


@pytest.fixture
def traced() -> Iterator[None]:
    """Trace allocations for the test (started after the fixtures built their data)."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def test_bomb_stops_at_the_bound_and_memory_stays_near_it(bomb: bytes, traced: None) -> None:
    tracemalloc.reset_peak()
    with pytest.raises(PayloadError) as raised:
        inflate(bomb, "gzip", limit=MiB, setting="Knob(limit=...)")
    _, peak = tracemalloc.get_traced_memory()
    assert peak < 4 * MiB, f"peak {peak:,} bytes for a 1 MiB bound (the body inflates to {BOMB_INFLATED:,})"
    error = raised.value
    assert error.field == "Content-Encoding"
    assert error.offset is not None and 0 < error.offset < len(bomb) // 2, "stopped early in the input"
    message = str(error)
    assert "gzip" in message and f"{MiB:,} bytes" in message and "Knob(limit=...)" in message


def test_decoders_are_bounded_and_say_how_to_raise_the_bound(bomb: bytes) -> None:
    headers = {"Content-Encoding": "gzip"}
    with pytest.raises(PayloadError, match="max_inflated_bytes") as raised:
        decode_response(bomb, headers, max_inflated_bytes=MiB)
    assert raised.value.field == "Content-Encoding"
    with pytest.raises(PayloadError, match="inflates past 1,048,576 bytes"):
        decode_request(bomb, headers, max_inflated_bytes=MiB)


def test_by_default_a_body_inflating_past_64_mib_is_refused() -> None:
    assert DEFAULT_MAX_INFLATED_BYTES == 64 << 20
    with pytest.raises(PayloadError, match=r"inflates past 67,108,864 bytes.*max_inflated_bytes"):
        decode_response(gzip_bomb(DEFAULT_MAX_INFLATED_BYTES + 1), {"Content-Encoding": "gzip"})


def test_a_body_of_exactly_the_bound_passes_one_more_byte_does_not() -> None:
    data = np.random.default_rng(3).bytes(3 * MiB + 17)  # incompressible: many input slices and output steps
    body = gzip.compress(data)
    assert bytes(inflate(body, "gzip", limit=len(data))) == data
    with pytest.raises(PayloadError, match="inflates past"):
        inflate(body, "gzip", limit=len(data) - 1)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("X-GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("Deflate", lambda data: _raw_deflate(data)),
    ],
)
def test_every_encoding_round_trips(encoding: str, compress: Callable[[bytes], bytes]) -> None:
    data = b"tensor bytes " * 10_000
    assert bytes(inflate(compress(data), encoding, limit=len(data))) == data


def test_raw_deflate_bomb_is_bounded_too() -> None:
    with pytest.raises(PayloadError, match="deflate body inflates past"):
        inflate(_raw_deflate(bytes(8 * MiB)), "deflate", limit=MiB)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(b"payload")[:-4], "gzip"),  # cut short
        (gzip.compress(b"payload") + b"junk", "gzip"),  # bytes after the stream
        (b"not compressed at all", "deflate"),
        (b"", "gzip"),
    ],
    ids=["truncated", "trailing", "garbage", "empty"],
)
def test_incomplete_or_corrupt_streams_are_refused(body: bytes, encoding: str) -> None:
    with pytest.raises(PayloadError, match=f"not a complete {encoding} stream") as raised:
        inflate(body, encoding, limit=MiB)
    assert raised.value.field == "Content-Encoding"


def test_unknown_encoding_and_bad_bound_are_refused() -> None:
    with pytest.raises(PayloadError, match="unsupported Content-Encoding 'br'"):
        inflate(b"x", "br", limit=MiB)
    with pytest.raises(PayloadError, match="integer >= 0"):
        inflate(gzip.compress(b"x"), "gzip", limit=-1)


def test_compressed_response_decodes_within_the_bound() -> None:
    values = np.arange(50_000, dtype=np.float32)
    encoded = encode_response({"OUT": values}, model_name="m", binary=True)
    body = gzip.compress(encoded.to_bytes())
    headers = {**encoded.headers, "Content-Encoding": "gzip"}
    response = decode_response(body, headers, max_inflated_bytes=encoded.nbytes)
    assert np.array_equal(response["OUT"], values)
    with pytest.raises(PayloadError, match="inflates past"):
        decode_response(body, headers, max_inflated_bytes=encoded.nbytes - 1)


def test_compressed_request_decodes() -> None:
    encoded = encode_request({"IN": np.arange(10, dtype=np.int64)}, binary=True)
    body = zlib.compress(encoded.to_bytes())
    request = decode_request(body, {**encoded.headers, "Content-Encoding": "deflate"})
    assert request["IN"].tolist() == list(range(10))


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()
