"""asyncio invoke throughput against the quickstart on a local tritonserver: ``python -m benchmarks.aio``.

In one run, on one tritonserver serving ``examples/quickstart/model_repository`` (binary UINT8 image in, binary
SCORES out, the request built from the numpy array and the output decoded on every call):

1. ours, asyncio: ``--in-flight`` (64) calls in flight on one event loop, each encoded with
   ``endpointkit.payloads.encode_request``, sent with :class:`AsyncHttpTransport` (``--max-concurrency``
   connections, its default unless given) and decoded with ``decode_response``;
2. tritonclient.http.aio's ``InferenceServerClient`` with the same calls in flight (its default connection
   limit, 100, lets each have its own connection);
3. the sync figure: ``--threads`` (8) threads sharing one :class:`HttpTransport`, each making its share of the
   calls, as ``benchmarks.local`` measures ``invoke_endpoint``.

Each side makes ``--calls`` (1000) timed calls per round after a warm-up; the figure is the median of
``--rounds`` (5) rounds, the sides' order rotating between rounds. Goals (issue 12): ours at least 1.0x
tritonclient.http.aio, and at least 1.0x the 8-thread sync figure. The machine has two cores shared by this
process, Triton and its Python-backend stubs: figures move by 10 % between runs; the load average is printed.

    python -m benchmarks.aio [--in-flight 64] [--calls 1000] [--rounds 5] [--threads 8]
                             [--max-concurrency N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import report

__all__ = ["Row", "main", "run"]

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
MODEL = "ensemble"
ASYNC_GOAL = 1.0
SYNC_GOAL = 1.0
_WARM_UP_CALLS = 64


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison: our requests per second, the baseline's, and their ratio against the goal."""

    case: str
    ours: float
    baseline: float
    ratio: float
    goal: float
    met: bool


def _sample_image() -> np.ndarray[Any, Any]:
    return np.frombuffer((QUICKSTART / "sample.jpg").read_bytes(), dtype=np.uint8)[np.newaxis, :]


# ---- the three sides ----------------------------------------------------------------------------------------
AsyncCall = Callable[[], Awaitable[Any]]


async def _in_flight(call: AsyncCall, in_flight: int, calls: int) -> float:
    """Requests per second of ``calls`` calls made by ``in_flight`` coroutines on this loop."""
    for _ in range(max(1, _WARM_UP_CALLS // in_flight)):
        await asyncio.gather(*(call() for _ in range(in_flight)))
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return calls / (time.perf_counter() - started)


async def _ours_async(port: int, in_flight: int, calls: int, max_concurrency: int | None) -> float:
    from endpointkit.adapters._http import Origin
    from endpointkit.adapters._http_async import DEFAULT_MAX_CONCURRENCY, AsyncHttpTransport
    from endpointkit.payloads import decode_response, encode_request

    image = _sample_image()
    origin = Origin("http", "127.0.0.1", port)
    connections = DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency
    async with AsyncHttpTransport(provider="local", max_concurrency=connections) as transport:

        async def call() -> Any:
            encoded = encode_request({"IMAGE": image}, binary=True)
            raw = await transport.request(
                "POST", origin, f"/v2/models/{MODEL}/infer", encoded.body, encoded.headers
            )
            if raw.status != 200:
                raise RuntimeError(f"Triton answered {raw.status}: {bytes(raw.body[:300])!r}")
            return decode_response(raw.body, raw.headers)["SCORES"]

        return await _in_flight(call, in_flight, calls)


async def _theirs_async(port: int, in_flight: int, calls: int) -> float:
    from tritonclient.http import InferInput, InferRequestedOutput
    from tritonclient.http.aio import InferenceServerClient

    image = _sample_image()
    client = InferenceServerClient(url=f"127.0.0.1:{port}")
    try:

        async def call() -> Any:
            tensor = InferInput("IMAGE", list(image.shape), "UINT8")
            tensor.set_data_from_numpy(image, binary_data=True)
            outputs = [InferRequestedOutput("SCORES", binary_data=True)]
            return (await client.infer(MODEL, [tensor], outputs=outputs)).as_numpy("SCORES")

        return await _in_flight(call, in_flight, calls)
    finally:
        await client.close()


def _ours_threads(port: int, threads: int, calls: int) -> float:
    from endpointkit.adapters._http import HttpTransport, Origin
    from endpointkit.payloads import decode_response, encode_request

    image = _sample_image()
    origin = Origin("http", "127.0.0.1", port)
    per_thread = max(1, calls // threads)
    barrier = threading.Barrier(threads + 1)
    finished: list[float] = []
    errors: list[BaseException] = []

    def call(transport: HttpTransport) -> Any:
        encoded = encode_request({"IMAGE": image}, binary=True)
        raw = transport.request("POST", origin, f"/v2/models/{MODEL}/infer", encoded.body, encoded.headers)
        return decode_response(raw.body, raw.headers)["SCORES"]

    def worker(transport: HttpTransport) -> None:
        try:
            for _ in range(3):
                call(transport)
            barrier.wait()
            for _ in range(per_thread):
                call(transport)
            finished.append(time.perf_counter())
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    with HttpTransport(provider="local") as transport:
        workers = [threading.Thread(target=worker, args=(transport,)) for _ in range(threads)]
        for thread in workers:
            thread.start()
        try:
            barrier.wait()
            started = time.perf_counter()
        finally:
            for thread in workers:
                thread.join()
    if errors:
        raise errors[0]
    return threads * per_thread / (max(finished) - started)


def _check_agreement(port: int) -> None:
    """Ours and tritonclient must return the same SCORES before anything is timed."""
    from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

    from endpointkit.adapters._http import HttpTransport, Origin
    from endpointkit.payloads import decode_response, encode_request

    image = _sample_image()
    encoded = encode_request({"IMAGE": image}, binary=True)
    with HttpTransport(provider="local") as transport:
        raw = transport.request(
            "POST",
            Origin("http", "127.0.0.1", port),
            f"/v2/models/{MODEL}/infer",
            encoded.body,
            encoded.headers,
        )
    ours = decode_response(raw.body, raw.headers)["SCORES"]
    client = InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        tensor = InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image, binary_data=True)
        theirs = client.infer(MODEL, [tensor], outputs=[InferRequestedOutput("SCORES", binary_data=True)])
    finally:
        client.close()
    if not np.allclose(ours, theirs.as_numpy("SCORES")):
        raise RuntimeError("ours and tritonclient disagree on the quickstart's SCORES")


# ---- the run ------------------------------------------------------------------------------------------------
def run(
    *,
    in_flight: int = 64,
    calls: int = 1000,
    rounds: int = 5,
    threads: int = 8,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """Every round's requests per second per side, with the settings and the load average around the run."""
    from endpointkit.adapters._http_async import DEFAULT_MAX_CONCURRENCY
    from endpointkit.adapters.local import running_tritonserver

    sides: dict[str, Callable[[int], float]] = {
        "ours_async": lambda port: asyncio.run(_ours_async(port, in_flight, calls, max_concurrency)),
        "tritonclient_async": lambda port: asyncio.run(_theirs_async(port, in_flight, calls)),
        "ours_threads": lambda port: _ours_threads(port, threads, calls),
    }
    result: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    samples: dict[str, list[float]] = {side: [] for side in sides}
    with running_tritonserver(QUICKSTART / "model_repository", ready_timeout=120.0) as server:
        _check_agreement(server.http_port)
        order = list(sides)
        for index in range(rounds):
            rotated = order[index % len(order) :] + order[: index % len(order)]
            for side in rotated:
                samples[side].append(sides[side](server.http_port))
    result["throughput"] = samples
    result["loadavg_after"] = os.getloadavg()
    result["settings"] = {
        "in_flight": in_flight,
        "calls": calls,
        "rounds": rounds,
        "threads": threads,
        "max_concurrency": max_concurrency or DEFAULT_MAX_CONCURRENCY,
    }
    return result


def rows(result: dict[str, Any]) -> list[Row]:
    """The comparisons from :func:`run`'s result."""
    settings = result["settings"]
    median = {side: statistics.median(values) for side, values in result["throughput"].items()}
    ours = median["ours_async"]
    label = f"{settings['in_flight']} in flight, {settings['max_concurrency']} connections"
    return [
        _row(f"ours aio ({label}) / tritonclient.http.aio", ours, median["tritonclient_async"], ASYNC_GOAL),
        _row(
            f"ours aio ({label}) / ours sync, {settings['threads']} threads",
            ours,
            median["ours_threads"],
            SYNC_GOAL,
        ),
    ]


def _row(case: str, ours: float, baseline: float, goal: float) -> Row:
    return Row(case, ours, baseline, ours / baseline, goal, ours / baseline >= goal)


def format_table(table: list[Row]) -> str:
    """The rows as an aligned text table (requests per second)."""
    header = f"{'case':<66} {'ours':>11} {'baseline':>11} {'ratio':>6}  {'goal':<6} met"
    lines = [header, "-" * len(header)]
    for row in table:
        lines.append(
            f"{row.case:<66} {row.ours:>7.0f} r/s {row.baseline:>7.0f} r/s {row.ratio:>6.2f}  "
            f">= {row.goal:<3g} {'yes' if row.met else 'NO'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (or JSON with ``--json``); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=64, help="calls in flight on the event loop")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="threads of the sync figure")
    parser.add_argument("--max-concurrency", type=int, default=None, help="our connections (default: ours)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args([] if argv is None else argv)
    result = run(
        in_flight=arguments.in_flight,
        calls=arguments.calls,
        rounds=arguments.rounds,
        threads=arguments.threads,
        max_concurrency=arguments.max_concurrency,
    )
    table = rows(result)
    if not report(
        "asyncio invoke on one tritonserver, quickstart",
        result,
        table,
        format_table(table),
        as_json=arguments.json,
    ):
        return
    for side, values in result["throughput"].items():
        print(f"{side} rounds (req/s): " + ", ".join(f"{value:.0f}" for value in values))


if __name__ == "__main__":
    main(sys.argv[1:])
