"""Undoing a gzip or deflate ``Content-Encoding`` with a bound on the inflated size.

A compressed body says nothing trustworthy about its inflated size: 200 KB of gzip can inflate to 200 MB and
more (a "compression bomb"), so inflation stops as soon as the output passes a fixed bound instead of
trusting the body, and memory never grows much past that bound. A bound on the compression ratio would be no
substitute: legitimate tensors of zeros compress a thousandfold, and a bomb under any ratio can still be huge.
"""

from __future__ import annotations

import zlib

from endpointkit.errors import PayloadError
from endpointkit.payloads.types import Buffer

__all__ = ["DEFAULT_MAX_INFLATED_BYTES", "inflate"]

DEFAULT_MAX_INFLATED_BYTES = 64 * 1024 * 1024
"""Default bound, 64 MiB, on a body after inflation, for the decoders and endpointkit's HTTP transports.

It is the bound Triton itself puts on an HTTP body it reads (``--http-max-input-size``, server
``src/common.h`` ``HTTP_DEFAULT_MAX_INPUT_SIZE``), four times the 16 MiB tensors of the benchmarks, ten times
SageMaker's 6 MB. The memory behind a body is more than its size: a JSON body costs 12 to 20 times its size
while parsed (Python objects, and orjson's error path on garbage: 833 MiB measured for 64 MiB), which is how
the 204 KB gzip body of issue 16 that inflated to 200 MB peaked at 2.8 GB. Larger outputs exist (best sent
binary): raise the bound for them."""

# Output asked of zlib per step (small against the bound), and compressed input given per step.
_OUTPUT_STEP_BYTES = 1024 * 1024
_INPUT_STEP_BYTES = 64 * 1024
# wbits 47 = 32 + 15: zlib detects a gzip or zlib header itself, as Triton's inflateInit2(15|32) does (server
# src/data_compressor.h); some servers send headerless "deflate" (wbits -15), tried second.
_WBITS_BY_ENCODING = {"gzip": (47,), "x-gzip": (47,), "deflate": (47, -15)}


class _Incomplete(Exception):
    """The stream is not a complete one of this wbits (or is followed by other bytes)."""


def inflate(body: Buffer, encoding: str, *, limit: int, setting: str = "the limit argument") -> bytearray:
    """Inflate a ``gzip`` (or ``x-gzip``) or ``deflate`` body, refusing to go past ``limit`` bytes.

    Inflation runs in steps of at most 1 MiB of output and stops as soon as the output passes ``limit``, so
    memory stays near ``limit`` whatever the body holds. ``deflate`` accepts a zlib stream (what the standard
    and Triton mean) and a headerless one. Pure; does not block on I/O.

    Args:
        body: the compressed body.
        encoding: the ``Content-Encoding`` value, in any case.
        limit: the most bytes the inflated body may hold (a body of exactly ``limit`` bytes passes).
        setting: how the caller raises ``limit``, named in the error
            (``"HttpTransport(max_response_bytes=...)"``).

    Returns:
        The inflated body.

    Raises:
        PayloadError: the body inflates past ``limit`` (``offset`` is the compressed byte where it did), is
            not a complete stream of ``encoding`` or is followed by other bytes, or ``encoding`` is not one of
            these; ``field`` is ``"Content-Encoding"``. Also a ``limit`` that is not an integer >= 0.
    """
    if type(limit) is not int or limit < 0:
        raise PayloadError(f"the inflated size bound must be an integer >= 0, got {limit!r}", field="limit")
    attempts = _WBITS_BY_ENCODING.get(encoding.strip().lower())
    if attempts is None:
        raise PayloadError(
            f"unsupported Content-Encoding {encoding!r}: gzip and deflate can be inflated",
            field="Content-Encoding",
        )
    view = memoryview(body).cast("B")
    for wbits in attempts:
        try:
            return _inflate_stream(view, wbits, encoding, limit, setting)
        except (zlib.error, _Incomplete):
            continue
    raise PayloadError(f"the body is not a complete {encoding} stream", field="Content-Encoding", offset=0)


def _inflate_stream(view: memoryview, wbits: int, encoding: str, limit: int, setting: str) -> bytearray:
    decompressor = zlib.decompressobj(wbits)
    inflated = bytearray()
    fed = 0
    pending: Buffer = b""
    while not decompressor.eof:
        if not pending and fed < len(view):
            # Input goes in slices: zlib copies what a step leaves unread into unconsumed_tail, every step.
            pending = view[fed : fed + _INPUT_STEP_BYTES]
            fed += len(pending)
        # One byte more than the room left: getting it is how the loop learns the bound is passed.
        step = decompressor.decompress(pending, min(_OUTPUT_STEP_BYTES, limit - len(inflated) + 1))
        inflated += step
        pending = decompressor.unconsumed_tail
        if len(inflated) > limit:
            consumed = fed - len(pending)
            raise PayloadError(
                f"the {encoding} body inflates past {limit:,} bytes (stopped there, after {consumed:,} "
                f"compressed bytes): a compression bomb, or a body larger than allowed; if the endpoint "
                f"legitimately sends this much, raise the bound with {setting}",
                field="Content-Encoding",
                offset=consumed,
            )
        if not step and not pending and fed == len(view):
            raise _Incomplete()  # every byte read, nothing more comes out, and the stream has not ended
    if decompressor.unused_data or fed < len(view):
        raise _Incomplete()
    return inflated
