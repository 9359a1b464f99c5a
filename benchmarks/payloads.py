"""Payload codecs side by side with tritonclient, in one run: ``python -m benchmarks.payloads``.

Each timing is the median of at least 5 runs (more for fast cases, up to about a quarter second of runs).
Ratios are tritonclient time / our time, so larger is better for us. Memory is the peak of
``tracemalloc`` (numpy reports its buffers to it) above what was allocated before the call, as a multiple of
the tensor's bytes.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from endpointkit.payloads import (
    INFERENCE_HEADER_CONTENT_LENGTH,
    decode_response,
    encode_request,
    encode_response,
)

__all__ = ["Row", "main", "run"]

JSON_ELEMENTS = 1_048_576
BINARY_BYTES = 16 * 1024 * 1024
BYTES_ELEMENTS = 100_000


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison: our figure, tritonclient's, their ratio and the goal for it."""

    case: str
    ours: float
    theirs: float
    unit: str
    goal: str
    met: bool

    @property
    def ratio(self) -> float:
        return self.theirs / self.ours if self.ours else float("inf")


def _median_seconds(function: Callable[[], object], *, min_runs: int = 5, budget: float = 0.25) -> float:
    function()  # warm up: imports, first-touch page faults
    timings: list[float] = []
    started = time.perf_counter()
    while len(timings) < min_runs or (time.perf_counter() - started < budget and len(timings) < 200):
        begin = time.perf_counter()
        function()
        timings.append(time.perf_counter() - begin)
    return statistics.median(timings)


def _peak_extra_bytes(function: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = function()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return peak - baseline


def _tritonclient() -> tuple[Any, Any]:
    from tritonclient.http import InferenceServerClient, InferInput

    return InferenceServerClient, InferInput


def _theirs_request(array: np.ndarray[Any, Any], datatype: str, binary: bool) -> Any:
    client, infer_input = _tritonclient()
    tensor = infer_input("INPUT0", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return client.generate_request_body([tensor])


def _json_encode() -> Row:
    array = np.random.default_rng(0).standard_normal(JSON_ELEMENTS).astype(np.float32)
    ours = _median_seconds(lambda: encode_request({"INPUT0": array}, binary=False).to_bytes())
    theirs = _median_seconds(lambda: _theirs_request(array, "FP32", binary=False))
    return Row("JSON encode, 1,048,576 FP32", ours * 1e3, theirs * 1e3, "ms", ">= 10x", theirs / ours >= 10)


def _json_encode_non_finite() -> Row:
    array = np.random.default_rng(5).standard_normal(JSON_ELEMENTS).astype(np.float32)
    array[::1000] = np.resize(np.array([np.nan, np.inf, -np.inf], np.float32), len(array[::1000]))
    ours = _median_seconds(lambda: encode_request({"INPUT0": array}, binary=False).to_bytes())
    theirs = _median_seconds(lambda: _theirs_request(array, "FP32", binary=False))
    return Row(
        "JSON encode, same with 0.1% NaN/Inf", ours * 1e3, theirs * 1e3, "ms", ">= 10x", theirs / ours >= 10
    )


def _binary_encode() -> list[Row]:
    array = np.random.default_rng(1).standard_normal(BINARY_BYTES // 4).astype(np.float32)
    theirs = _median_seconds(lambda: _theirs_request(array, "FP32", binary=True))
    sequence = _median_seconds(lambda: encode_request({"INPUT0": array}, binary=True))
    joined = _median_seconds(lambda: encode_request({"INPUT0": array}, binary=True).to_bytes())
    return [
        Row(
            "binary encode 16 MiB, buffer sequence",
            sequence * 1e3,
            theirs * 1e3,
            "ms",
            ">= 1x",
            theirs >= sequence,
        ),
        Row("binary encode 16 MiB, to_bytes()", joined * 1e3, theirs * 1e3, "ms", ">= 1x", theirs >= joined),
    ]


def _binary_decode() -> Row:
    array = np.random.default_rng(2).standard_normal(BINARY_BYTES // 4).astype(np.float32)
    encoded = encode_response({"OUTPUT0": array}, model_name="m", binary=True)
    body, length = encoded.to_bytes(), encoded.json_header_length
    headers = {INFERENCE_HEADER_CONTENT_LENGTH: str(length)}
    client, _ = _tritonclient()
    ours = _median_seconds(lambda: decode_response(body, headers)["OUTPUT0"])
    theirs = _median_seconds(
        lambda: client.parse_response_body(body, header_length=length).as_numpy("OUTPUT0")
    )
    return Row("binary decode 16 MiB response", ours * 1e3, theirs * 1e3, "ms", ">= 10x", theirs / ours >= 10)


def _bytes_round_trip() -> list[Row]:
    rng = np.random.default_rng(3)
    elements = np.empty(BYTES_ELEMENTS, dtype=object)
    elements[:] = [rng.bytes(int(n)) for n in rng.integers(0, 32, BYTES_ELEMENTS)]
    ours_encode = _median_seconds(lambda: encode_request({"INPUT0": elements}, binary=True))
    theirs_encode = _median_seconds(lambda: _theirs_request(elements, "BYTES", binary=True))
    encoded = encode_response({"OUTPUT0": elements}, model_name="m", binary=True)
    body, length = encoded.to_bytes(), encoded.json_header_length
    headers = {INFERENCE_HEADER_CONTENT_LENGTH: str(length)}
    client, _ = _tritonclient()
    ours_decode = _median_seconds(lambda: decode_response(body, headers)["OUTPUT0"])
    theirs_decode = _median_seconds(
        lambda: client.parse_response_body(body, header_length=length).as_numpy("OUTPUT0")
    )
    return [
        Row(
            "BYTES encode, 100,000 elements",
            ours_encode * 1e3,
            theirs_encode * 1e3,
            "ms",
            "faster",
            ours_encode < theirs_encode,
        ),
        Row(
            "BYTES decode, 100,000 elements",
            ours_decode * 1e3,
            theirs_decode * 1e3,
            "ms",
            "faster",
            ours_decode < theirs_decode,
        ),
    ]


def _memory() -> list[Row]:
    array = np.random.default_rng(4).standard_normal(BINARY_BYTES // 4).astype(np.float32)
    sequence = _peak_extra_bytes(lambda: encode_request({"INPUT0": array}, binary=True)) / array.nbytes
    joined = (
        _peak_extra_bytes(lambda: encode_request({"INPUT0": array}, binary=True).to_bytes()) / array.nbytes
    )
    theirs = _peak_extra_bytes(lambda: _theirs_request(array, "FP32", binary=True)) / array.nbytes
    return [
        Row(
            "peak extra memory, binary encode (sequence)",
            sequence,
            theirs,
            "x tensor",
            "<= 1.1x",
            sequence <= 1.1,
        ),
        Row(
            "peak extra memory, binary encode + to_bytes()",
            joined,
            theirs,
            "x tensor",
            "<= 1.1x",
            joined <= 1.1,
        ),
    ]


def run() -> list[Row]:
    """Run every comparison and return the rows (needs tritonclient installed)."""
    return [
        _json_encode(),
        _json_encode_non_finite(),
        *_binary_encode(),
        _binary_decode(),
        *_bytes_round_trip(),
        *_memory(),
    ]


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = f"{'case':<46} {'ours':>12} {'tritonclient':>14} {'ratio':>9}  {'goal':<8} met"
    lines = [header, "-" * len(header)]
    for row in rows:
        ours = f"{row.ours:.3f} {row.unit}" if row.unit == "ms" else f"{row.ours:.2f}x"
        theirs = f"{row.theirs:.3f} {row.unit}" if row.unit == "ms" else f"{row.theirs:.2f}x"
        ratio = f"{row.ratio:.1f}x" if row.unit == "ms" else "-"
        lines.append(
            f"{row.case:<46} {ours:>12} {theirs:>14} {ratio:>9}  {row.goal:<8} {'yes' if row.met else 'NO'}"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the comparison table (ratios are tritonclient time / ours)."""
    print(format_table(run()), flush=True)


if __name__ == "__main__":
    main()
