"""The gRPC transport on a real tritonserver, side by side with tritonclient.grpc: ``python -m benchmarks.grpc``.

One tritonserver serves the quickstart ensemble, a Python-backend FP32 identity model and a decoupled counter
(``COUNT`` responses, then a flag-only final one). In one run, every case alternating between ours
(``GrpcConnection`` with ``encode_grpc_request``) and tritonclient.grpc's ``InferenceServerClient``, both building
the request from numpy and reading the output back as numpy on every call:

1. A 16 MiB FP32 tensor through the identity model: median of ``--large-runs`` (9) calls each (goal: ours at
   least 1.25x faster).
2. Small-call latency: the quickstart ensemble (sample.jpg as UINT8 [1, N]) and a 64-byte FP32 identity call,
   ``--requests`` (1000) calls each, in blocks of 25 whose order alternates (goal: ours/theirs at most 1.0 for p50
   and 1.1 for p99).
3. Streaming: time to the first response and total time of a 100-response stream of the counter, ours
   ``GrpcConnection.stream`` against tritonclient's ``start_stream`` / ``async_stream_infer`` / ``stop_stream``,
   ``--streams`` (60) streams each; medians (goal: ours/theirs at most 1.0 for both).
4. This process's resident memory over 10,000 streamed responses (100 streams of 100, ours), sampled every 1,000
   responses after ten warm-up streams (goal: every sample within 5 % of the first).

The machine has two cores shared between this process, Triton and its Python-backend stubs: figures are medians
and still move by 10-20 % between runs; the load average is printed before and after.

    python -m benchmarks.grpc [--large-runs 9] [--requests 1000] [--streams 60] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import queue
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._identity_repo import IDENTITY_MODEL, write_identity_repository
from benchmarks._report import report
from benchmarks._triton import QUICKSTART, serve_beside_quickstart
from benchmarks.local import Row, format_table

__all__ = ["main", "rows", "run"]

QUICKSTART_MODEL = "ensemble"
COUNTER_MODEL = "counter"
LARGE_BYTES = 16 * 1024 * 1024
LARGE_GOAL = 1.25
P50_GOAL = 1.0
P99_GOAL = 1.1
STREAM_GOAL = 1.0
RSS_GOAL = 0.05
STREAM_RESPONSES = 100
RSS_STREAMS = 100
_BLOCK = 25

_COUNTER_CONFIG = f"""\
name: "{COUNTER_MODEL}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "INDEX" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

_COUNTER_MODEL = textwrap.dedent(
    """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            for request in requests:
                sender = request.get_response_sender()
                count = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)[0])
                for index in range(count):
                    if sender.is_cancelled():
                        break
                    output = pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32))
                    sender.send(pb_utils.InferenceResponse(output_tensors=[output]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return None
    """
)


def _write_repository(root: Path) -> Path:
    write_identity_repository(root)
    (root / COUNTER_MODEL / "1").mkdir(parents=True, exist_ok=True)
    (root / COUNTER_MODEL / "config.pbtxt").write_text(_COUNTER_CONFIG)
    (root / COUNTER_MODEL / "1" / "model.py").write_text(_COUNTER_MODEL)
    return root


def _server(folder: Path) -> contextlib.AbstractContextManager[Any]:
    return serve_beside_quickstart(_write_repository(folder / "models"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _alternate(
    calls: dict[str, Callable[[], Any]], rounds: int, per_round: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each side, ``per_round`` calls at a time, the order alternating every round."""
    samples: dict[str, list[float]] = {side: [] for side in calls}
    sides = list(calls)
    for index in range(rounds):
        for side in sides if index % 2 == 0 else sides[::-1]:
            call, timings = calls[side], samples[side]
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                timings.append(time.perf_counter() - started)
    return samples


# ---- the calls ----------------------------------------------------------------------------------------------------
def _unary_calls(
    connection: Any, client: Any, model: str, name: str, array: Any, output: str
) -> dict[str, Any]:
    from tritonclient.grpc import InferInput

    from endpointkit.payloads._grpc import encode_grpc_request

    datatype = "UINT8" if array.dtype == np.uint8 else "FP32"

    def ours() -> Any:
        return connection.infer(encode_grpc_request({name: array}, model_name=model))[output]

    def theirs() -> Any:
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return client.infer(model, [tensor]).as_numpy(output)

    if not np.array_equal(ours(), theirs()):
        raise RuntimeError(f"ours and tritonclient disagree on {model}'s {output}")
    return {"ours": ours, "theirs": theirs}


def _stream_calls(connection: Any, client: Any, count: int) -> dict[str, Callable[[], tuple[float, float]]]:
    """Calls returning (seconds to the first response, seconds to the end) of one ``count``-response stream."""
    from tritonclient.grpc import InferInput

    from endpointkit.payloads._grpc import encode_grpc_request

    counts = np.array([count], dtype=np.int32)

    def ours() -> tuple[float, float]:
        started = time.perf_counter()
        first = 0.0
        request = encode_grpc_request({"COUNT": counts}, model_name=COUNTER_MODEL, stream=True)
        received = 0
        for response in connection.stream([request]):
            if not received:
                first = time.perf_counter() - started
            received += int(response["INDEX"][0] >= 0)
        if received != count:
            raise RuntimeError(f"ours received {received} of {count} responses")
        return first, time.perf_counter() - started

    def theirs() -> tuple[float, float]:
        responses: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        started = time.perf_counter()
        first = 0.0
        received = 0
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        try:
            tensor = InferInput("COUNT", [1], "INT32")
            tensor.set_data_from_numpy(counts)
            client.async_stream_infer(COUNTER_MODEL, [tensor], enable_empty_final_response=True)
            while True:
                result, error = responses.get(timeout=120)
                if error is not None:
                    raise error
                if result.get_response().parameters["triton_final_response"].bool_param:
                    break
                if not received:
                    first = time.perf_counter() - started
                received += int(result.as_numpy("INDEX")[0] >= 0)
        finally:
            client.stop_stream()
        if received != count:
            raise RuntimeError(f"tritonclient received {received} of {count} responses")
        return first, time.perf_counter() - started

    return {"ours": ours, "theirs": theirs}


def _streams(calls: dict[str, Callable[[], tuple[float, float]]], streams: int) -> dict[str, Any]:
    for call in calls.values():  # warm-up: the stream machinery, the model's first runs
        for _ in range(3):
            call()
    result: dict[str, Any] = {side: {"first": [], "total": []} for side in calls}
    sides = list(calls)
    for index in range(streams):
        for side in sides if index % 2 == 0 else sides[::-1]:
            first, total = calls[side]()
            result[side]["first"].append(first)
            result[side]["total"].append(total)
    return result


def _resident_bytes() -> int | None:
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:  # not Linux
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_over_streams(stream: Callable[[], tuple[float, float]]) -> list[int]:
    """Resident bytes before and after every 1,000 responses (10 streams of 100), after warm-up streams."""
    for _ in range(10):
        stream()
    gc.collect()
    first = _resident_bytes()
    if first is None:
        return []
    samples = [first]
    for index in range(RSS_STREAMS):
        stream()
        if index % 10 == 9:
            samples.append(_resident_bytes() or 0)
    return samples


# ---- the run ------------------------------------------------------------------------------------------------------
def run(*, large_runs: int = 9, requests: int = 1000, streams: int = 60) -> dict[str, Any]:
    """Every measurement, raw samples included (seconds; bytes for memory).

    The memory case runs before the 16 MiB one, whose buffers the allocator may hand back to the system late.
    """
    from tritonclient.grpc import InferenceServerClient

    from endpointkit.adapters._grpc import GrpcConnection

    image = np.frombuffer((QUICKSTART / "sample.jpg").read_bytes(), dtype=np.uint8)[np.newaxis, :]
    small = np.arange(16, dtype=np.float32)
    result: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="ekbench-grpc-") as folder, _server(Path(folder)) as server:
        address = f"127.0.0.1:{server.grpc_port}"
        connection = GrpcConnection(address, provider="local")
        client = InferenceServerClient(url=address)
        try:
            for case, model, name, array, output in (
                ("quickstart", QUICKSTART_MODEL, "IMAGE", image, "SCORES"),
                ("small", IDENTITY_MODEL, "INPUT0", small, "OUTPUT0"),
            ):
                calls = _unary_calls(connection, client, model, name, array, output)
                _alternate(calls, 2, 30)  # warm-up
                result[case] = _alternate(calls, max(2, requests // _BLOCK), _BLOCK)
            stream_calls = _stream_calls(connection, client, STREAM_RESPONSES)
            result["stream"] = _streams(stream_calls, streams)
            result["rss"] = _rss_over_streams(stream_calls["ours"])
            large = np.random.default_rng(0).standard_normal(LARGE_BYTES // 4).astype(np.float32)
            calls = _unary_calls(connection, client, IDENTITY_MODEL, "INPUT0", large, "OUTPUT0")
            result["large"] = _alternate(calls, large_runs)
        finally:
            client.close()
            connection.close()
    result["loadavg_after"] = os.getloadavg()
    result["settings"] = {"large_runs": large_runs, "requests": requests, "streams": streams}
    return result


def _ratio_row(case: str, ours: float, theirs: float, unit: str, goal: float, *, faster: bool = False) -> Row:
    if faster:  # the goal is a speed-up: theirs/ours at least the goal
        ratio = theirs / ours
        return Row(case, ours, theirs, unit, ratio, "theirs/ours", f">= {goal:g}", ratio >= goal)
    ratio = ours / theirs
    return Row(case, ours, theirs, unit, ratio, "ours/theirs", f"<= {goal:g}", ratio <= goal)


def rows(result: dict[str, Any]) -> list[Row]:
    """The table's rows from :func:`run`'s result."""
    large = result["large"]
    table = [
        _ratio_row(
            f"16 MiB FP32 identity (median of {len(large['ours'])})",
            statistics.median(large["ours"]) * 1e3,
            statistics.median(large["theirs"]) * 1e3,
            "ms",
            LARGE_GOAL,
            faster=True,
        )
    ]
    for case, title in (("quickstart", "quickstart ensemble"), ("small", "64-byte identity")):
        samples = result[case]
        for name, fraction, goal in (("p50", 0.5, P50_GOAL), ("p99", 0.99, P99_GOAL)):
            ours = _percentile(samples["ours"], fraction) * 1e3
            theirs = _percentile(samples["theirs"], fraction) * 1e3
            table.append(
                _ratio_row(f"{title} {name} ({len(samples['ours'])} calls)", ours, theirs, "ms", goal)
            )
    stream = result["stream"]
    for key, title in (("first", "time to first response"), ("total", "total time")):
        ours = statistics.median(stream["ours"][key]) * 1e3
        theirs = statistics.median(stream["theirs"][key]) * 1e3
        count = len(stream["ours"][key])
        table.append(
            _ratio_row(f"stream of {STREAM_RESPONSES}: {title} ({count})", ours, theirs, "ms", STREAM_GOAL)
        )
    samples = result["rss"]
    if samples:
        drift = max(abs(sample - samples[0]) for sample in samples) / samples[0]
        table.append(
            Row(
                f"client RSS over {RSS_STREAMS * STREAM_RESPONSES:,} streamed responses",
                samples[-1] / 2**20,
                None,
                "MiB",
                drift,
                "max drift",
                f"<= {RSS_GOAL:.0%}",
                drift <= RSS_GOAL,
            )
        )
    return table


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (or JSON with ``--json``); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--large-runs", type=int, default=9, help="16 MiB calls per side")
    parser.add_argument("--requests", type=int, default=1000, help="latency calls per side and case")
    parser.add_argument("--streams", type=int, default=60, help="100-response streams per side")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args([] if argv is None else argv)
    result = run(large_runs=arguments.large_runs, requests=arguments.requests, streams=arguments.streams)
    table = rows(result)
    if not report(
        "gRPC transport vs tritonclient.grpc on one tritonserver",
        result,
        table,
        format_table(table),
        as_json=arguments.json,
    ):
        return
    if result["rss"]:
        print("client RSS samples (MiB): " + ", ".join(f"{value / 2**20:.1f}" for value in result["rss"]))


if __name__ == "__main__":
    main(sys.argv[1:])
