"""The local target on a real tritonserver, side by side with tritonclient.http: ``python -m benchmarks local``.

In one run:

1. ``ek.apply`` of the quickstart until IN_SERVICE, and ``ek.destroy``: median of ``--cycles`` (5) cycles, each in
   a fresh temporary state folder (goal: apply at most 5 s).
2. Latency of ``ek.invoke_endpoint(state, …, binary=True)`` with sample.jpg as UINT8 [1, N] on the quickstart
   ensemble, against tritonclient.http calling the same server directly (binary input and output). Both build
   the request from the numpy array and decode the output on every call. Warm-up first, then ``--requests``
   (1000) calls each, interleaved in blocks of 25 whose order alternates (goal: ours/theirs at most 1.15 for p50
   and p99).
3. Throughput with ``--threads`` (8) threads, each making ``--per-thread`` (125) calls after a barrier: ours
   through the shared pooled transport, tritonclient with one client per thread; median of ``--rounds`` (5)
   rounds each, alternating (goal: ours at least 0.85x theirs).
4. A 16 MiB FP32 tensor through a Python-backend identity model applied as a second local endpoint, binary in
   and out, against tritonclient's ``infer``: median of ``--large-runs`` (9) runs each, interleaved (goal: ours
   at least 1.25x faster).

The machine has two cores shared between this process, Triton, its Python-backend stubs and anything else that
runs at the time: the figures are medians and still move by 10-20 % between runs. p99 is the noisiest: of 300
calls it is the third-slowest, and one scheduling hiccup of the server moves it by 20 %, hence 1000 calls (the
tenth-slowest) by default. The load average is printed before and after so that a noisy run can be recognised.

    python -m benchmarks.local [--cycles 5] [--requests 1000] [--threads 8] [--per-thread 125] [--rounds 5]
                               [--large-runs 9] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import yaml

from benchmarks._identity_repo import IDENTITY_MODEL, write_identity_repository
from benchmarks._report import report

__all__ = ["Row", "main", "run"]

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
LARGE_BYTES = 16 * 1024 * 1024
APPLY_GOAL_SECONDS = 5.0
LATENCY_GOAL = 1.15
THROUGHPUT_GOAL = 0.85
LARGE_GOAL = 1.25
_BLOCK = 25


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison: our figure, tritonclient's (None when there is none), the ratio the goal is about."""

    case: str
    ours: float
    theirs: float | None
    unit: str
    ratio: float | None
    ratio_name: str
    goal: str
    met: bool | None


# ---- specs --------------------------------------------------------------------------------------------------
def _quickstart_spec(folder: Path) -> Path:
    """A copy of the quickstart spec whose only target is local, with its state under ``folder``."""
    document = yaml.safe_load((QUICKSTART / "endpoint.yaml").read_text())
    document["model"]["repository"] = str(QUICKSTART / "model_repository")
    document["targets"] = {"local": {"kind": "local", "state_dir": str(folder / "state")}}
    path = folder / "endpoint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _identity_spec(folder: Path) -> Path:
    repository = write_identity_repository(folder / "identity-repository")
    document = {
        "name": "ekbench-identity",
        "model": {"repository": str(repository), "default_model": IDENTITY_MODEL},
        "variants": [{"name": "primary", "accelerator": "cpu", "instance_count": 1, "weight": 1.0}],
        "timeouts": {"create": "5m", "update": "5m", "delete": "2m"},
        "targets": {"local": {"kind": "local", "state_dir": str(folder / "state")}},
    }
    path = folder / "identity.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextlib.contextmanager
def _endpoint(spec: Any) -> Iterator[Any]:
    """Apply ``spec`` on the local target and destroy it afterwards, whatever happens."""
    import endpointkit as ek

    try:
        yield ek.apply(spec, target="local")
    finally:
        ek.destroy(spec, target="local")


def _host_port(state: Any) -> str:
    return str(urlsplit(state.url).netloc)


# ---- 1. apply / destroy -------------------------------------------------------------------------------------
def _apply_cycles(cycles: int) -> tuple[list[float], list[float]]:
    import endpointkit as ek
    from endpointkit.adapters.base import EndpointStatus

    image = _sample_image()
    applies: list[float] = []
    destroys: list[float] = []
    for _ in range(cycles):
        with tempfile.TemporaryDirectory(prefix="ekbench-apply-") as folder:
            spec = ek.load_spec(_quickstart_spec(Path(folder)))
            try:
                started = time.perf_counter()
                state = ek.apply(spec, target="local")
                applies.append(time.perf_counter() - started)
                if state.status is not EndpointStatus.IN_SERVICE:
                    raise RuntimeError(f"apply returned {state.status.value}: {state.reason}")
                # one call, as a user would make: it leaves a pooled keep-alive connection for destroy to close
                ek.invoke_endpoint(state, {"IMAGE": image}, binary=True)
            finally:
                started = time.perf_counter()
                ek.destroy(spec, target="local")
                destroys.append(time.perf_counter() - started)
    return applies, destroys


# ---- 2. latency ---------------------------------------------------------------------------------------------
def _sample_image() -> np.ndarray[Any, Any]:
    return np.frombuffer((QUICKSTART / "sample.jpg").read_bytes(), dtype=np.uint8)[np.newaxis, :]


def _ours_quickstart(state: Any, image: np.ndarray[Any, Any]) -> Callable[[], Any]:
    import endpointkit as ek

    def call() -> Any:
        return ek.invoke_endpoint(state, {"IMAGE": image}, binary=True)["SCORES"]

    return call


def _theirs_quickstart(client: Any, image: np.ndarray[Any, Any], model: str) -> Callable[[], Any]:
    from tritonclient.http import InferInput, InferRequestedOutput

    def call() -> Any:
        tensor = InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image, binary_data=True)
        outputs = [InferRequestedOutput("SCORES", binary_data=True)]
        return client.infer(model, [tensor], outputs=outputs).as_numpy("SCORES")

    return call


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _latency(state: Any, requests: int) -> dict[str, list[float]]:
    from tritonclient.http import InferenceServerClient

    image = _sample_image()
    client = InferenceServerClient(url=_host_port(state))
    try:
        calls = {
            "ours": _ours_quickstart(state, image),
            "theirs": _theirs_quickstart(client, image, str(state.extra["default_model"])),
        }
        if not np.allclose(calls["ours"](), calls["theirs"]()):
            raise RuntimeError("ours and tritonclient disagree on the quickstart's SCORES")
        for _ in range(30):  # warm-up: connections, imports, Triton's first batches
            calls["ours"]()
            calls["theirs"]()
        samples: dict[str, list[float]] = {"ours": [], "theirs": []}
        for block in range(max(1, requests // _BLOCK)):
            order = ("ours", "theirs") if block % 2 == 0 else ("theirs", "ours")
            for side in order:
                call, timings = calls[side], samples[side]
                for _ in range(_BLOCK):
                    started = time.perf_counter()
                    call()
                    timings.append(time.perf_counter() - started)
    finally:
        client.close()
    return samples


# ---- 3. throughput ------------------------------------------------------------------------------------------
def _throughput_round(
    setup: Callable[[], tuple[Callable[[], Any], Callable[[], None]]], threads: int, per_thread: int
) -> float:
    """Requests per second of ``threads`` workers, each making ``per_thread`` calls after a common barrier.

    ``setup`` runs in each worker's own thread (tritonclient.http's gevent client belongs to the thread that
    made it) and returns the call and a close; neither it nor the close is timed.
    """
    barrier = threading.Barrier(threads + 1)
    finished: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        call, close = setup()
        try:
            for _ in range(3):
                call()
            barrier.wait()
            for _ in range(per_thread):
                call()
            with lock:
                finished.append(time.perf_counter())
        except BaseException as error:
            errors.append(error)
            barrier.abort()
        finally:
            close()

    workers = [threading.Thread(target=worker, name=f"bench-{index}") for index in range(threads)]
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


def _throughput(state: Any, threads: int, per_thread: int, rounds: int) -> dict[str, list[float]]:
    from tritonclient.http import InferenceServerClient

    image = _sample_image()
    model = str(state.extra["default_model"])

    def ours() -> tuple[Callable[[], Any], Callable[[], None]]:
        return _ours_quickstart(state, image), lambda: None

    def theirs() -> tuple[Callable[[], Any], Callable[[], None]]:
        client = InferenceServerClient(url=_host_port(state))
        return _theirs_quickstart(client, image, model), client.close

    results: dict[str, list[float]] = {"ours": [], "theirs": []}
    for index in range(rounds):
        order = (("ours", ours), ("theirs", theirs))
        for side, setup in order if index % 2 == 0 else order[::-1]:
            results[side].append(_throughput_round(setup, threads, per_thread))
    return results


# ---- 4. 16 MiB through an identity model --------------------------------------------------------------------
def _large(state: Any, runs: int) -> dict[str, list[float]]:
    from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

    import endpointkit as ek

    array = np.random.default_rng(0).standard_normal(LARGE_BYTES // 4).astype(np.float32)
    client = InferenceServerClient(url=_host_port(state))
    try:

        def ours() -> Any:
            return ek.invoke_endpoint(state, {"INPUT0": array}, binary=True)["OUTPUT0"]

        def theirs() -> Any:
            tensor = InferInput("INPUT0", list(array.shape), "FP32")
            tensor.set_data_from_numpy(array, binary_data=True)
            outputs = [InferRequestedOutput("OUTPUT0", binary_data=True)]
            return client.infer(IDENTITY_MODEL, [tensor], outputs=outputs).as_numpy("OUTPUT0")

        if not (np.array_equal(ours(), array) and np.array_equal(theirs(), array)):
            raise RuntimeError("the identity model did not return its input")
        calls = {"ours": ours, "theirs": theirs}
        samples: dict[str, list[float]] = {"ours": [], "theirs": []}
        for index in range(runs):
            for side in ("ours", "theirs") if index % 2 == 0 else ("theirs", "ours"):
                started = time.perf_counter()
                calls[side]()
                samples[side].append(time.perf_counter() - started)
    finally:
        client.close()
    return samples


# ---- the run ------------------------------------------------------------------------------------------------
def run(
    *,
    cycles: int = 5,
    requests: int = 1000,
    threads: int = 8,
    per_thread: int = 125,
    rounds: int = 5,
    large_runs: int = 9,
) -> dict[str, Any]:
    """Every measurement, raw samples included (seconds; requests per second for throughput)."""
    import endpointkit as ek

    result: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    result["apply"], result["destroy"] = _apply_cycles(cycles)
    with tempfile.TemporaryDirectory(prefix="ekbench-serve-") as folder:
        quickstart_folder, identity_folder = Path(folder) / "quickstart", Path(folder) / "identity"
        quickstart_folder.mkdir()
        identity_folder.mkdir()
        quickstart = ek.load_spec(_quickstart_spec(quickstart_folder))
        identity = ek.load_spec(_identity_spec(identity_folder))
        with _endpoint(quickstart) as served, _endpoint(identity) as echo:
            result["latency"] = _latency(served, requests)
            result["throughput"] = _throughput(served, threads, per_thread, rounds)
            result["large"] = _large(echo, large_runs)
    result["loadavg_after"] = os.getloadavg()
    result["settings"] = {
        "cycles": cycles,
        "requests": requests,
        "threads": threads,
        "per_thread": per_thread,
        "rounds": rounds,
        "large_runs": large_runs,
    }
    return result


def rows(result: dict[str, Any]) -> list[Row]:
    """The table's rows from :func:`run`'s result."""
    apply = statistics.median(result["apply"])
    destroy = statistics.median(result["destroy"])
    latency = result["latency"]
    table = [
        Row(
            f"apply -> IN_SERVICE (median of {len(result['apply'])})",
            apply,
            None,
            "s",
            apply / APPLY_GOAL_SECONDS,
            "of goal",
            f"<= {APPLY_GOAL_SECONDS:g} s",
            apply <= APPLY_GOAL_SECONDS,
        ),
        Row(f"destroy (median of {len(result['destroy'])})", destroy, None, "s", None, "", "-", None),
    ]
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours = _percentile(latency["ours"], fraction) * 1e3
        theirs = _percentile(latency["theirs"], fraction) * 1e3
        table.append(
            Row(
                f"invoke latency {name} ({len(latency['ours'])} calls)",
                ours,
                theirs,
                "ms",
                ours / theirs,
                "ours/theirs",
                f"<= {LATENCY_GOAL:g}",
                ours / theirs <= LATENCY_GOAL,
            )
        )
    settings = result["settings"]
    ours = statistics.median(result["throughput"]["ours"])
    theirs = statistics.median(result["throughput"]["theirs"])
    table.append(
        Row(
            f"throughput, {settings['threads']} threads x {settings['per_thread']} calls",
            ours,
            theirs,
            "req/s",
            ours / theirs,
            "ours/theirs",
            f">= {THROUGHPUT_GOAL:g}",
            ours / theirs >= THROUGHPUT_GOAL,
        )
    )
    ours = statistics.median(result["large"]["ours"]) * 1e3
    theirs = statistics.median(result["large"]["theirs"]) * 1e3
    table.append(
        Row(
            f"16 MiB FP32 identity (median of {len(result['large']['ours'])})",
            ours,
            theirs,
            "ms",
            theirs / ours,
            "theirs/ours",
            f">= {LARGE_GOAL:g}",
            theirs / ours >= LARGE_GOAL,
        )
    )
    return table


def format_table(table: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = f"{'case':<42} {'ours':>13} {'tritonclient':>13} {'ratio':>20}  {'goal':<8} met"
    lines = [header, "-" * len(header)]
    for row in table:
        places = 0 if row.unit == "req/s" else 2 if row.unit == "s" else 3
        ours = f"{row.ours:.{places}f} {row.unit}"
        theirs = "-" if row.theirs is None else f"{row.theirs:.{places}f} {row.unit}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f} {row.ratio_name}"
        met = "-" if row.met is None else "yes" if row.met else "NO"
        lines.append(f"{row.case:<42} {ours:>13} {theirs:>13} {ratio:>20}  {row.goal:<8} {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (or JSON with ``--json``); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5, help="apply/destroy cycles")
    parser.add_argument("--requests", type=int, default=1000, help="latency calls per side")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=125, help="calls per thread per throughput round")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per side")
    parser.add_argument("--large-runs", type=int, default=9, help="16 MiB calls per side")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args([] if argv is None else argv)
    result = run(
        cycles=arguments.cycles,
        requests=arguments.requests,
        threads=arguments.threads,
        per_thread=arguments.per_thread,
        rounds=arguments.rounds,
        large_runs=arguments.large_runs,
    )
    table = rows(result)
    if not report(
        "local target vs tritonclient.http on one tritonserver",
        result,
        table,
        format_table(table),
        as_json=arguments.json,
    ):
        return
    print(
        "throughput runs (req/s): ours "
        + ", ".join(f"{value:.0f}" for value in result["throughput"]["ours"])
        + "; theirs "
        + ", ".join(f"{value:.0f}" for value in result["throughput"]["theirs"])
    )
    print(
        "apply runs (s): "
        + ", ".join(f"{value:.2f}" for value in result["apply"])
        + "; destroy runs (s): "
        + ", ".join(f"{value:.2f}" for value in result["destroy"])
    )


if __name__ == "__main__":
    main(sys.argv[1:])
