"""The pooled keep-alive transport over TLS, side by side with tritonclient: ``python -m benchmarks tls``.

One tritonserver serves the quickstart ensemble and a Python-backend FP32 identity model; one TLS front on
loopback (``tests.tls_front.TlsFront``, what the Gateway of an AKS endpoint does) terminates TLS with a server
certificate for ``localhost`` issued by a private CA (``_certificates``) and forwards HTTP/1.1 to Triton's HTTP
port and ``h2`` to its gRPC port. Both clients trust that CA and verify the certificate:

- ours: ``ek.invoke_endpoint`` with the state of an AKS endpoint at ``https://localhost:PORT`` whose extra carries
  ``ca_certificate``, through ``AksAdapter.from_state(state)``;
- theirs: tritonclient.http's ``InferenceServerClient(ssl=True)`` (gevent's default context with the CA file) and
  tritonclient.grpc's ``InferenceServerClient(ssl=True, root_certificates=CA file)``.

Both build the request from numpy and read the output back as numpy on every call (HTTP: binary input and
output). ``--model`` picks the call: the quickstart ensemble (sample.jpg as UINT8 [1, N], the default) or a
64-byte FP32 identity call. In one run, warm-up first, then ``--calls`` (1000) sequential calls per side in
``--rounds`` (40) rounds whose order alternates, so load on the shared machine affects both alike:

1. HTTPS through the front: p50 and p99, ours/theirs (goal: p50 at most 1.15). In the same rounds, both clients
   straight to Triton's HTTP port over plain HTTP, for context.
2. The TLS connections each HTTP client opened for all its calls (check, warm-up and measured), counted from the
   front's accepted connections while that side's calls ran (goal: ours 1, the keep-alive connection reused).
3. gRPC over TLS through the front (ALPN ``h2``): ours ``transport="grpc"`` against tritonclient.grpc, p50 and
   p99 (goal: p50 at most 1.1), and the connections each opened.

The machine has two cores shared between this process, the front's thread, Triton and its Python-backend stubs:
figures are medians of alternating rounds and still move by 10-20 % between runs; the load average is printed
before and after.

    python -m benchmarks.tls [--calls 1000] [--rounds 40] [--model quickstart|identity] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._identity_repo import IDENTITY_MODEL, write_identity_repository
from benchmarks._report import report
from benchmarks._triton import QUICKSTART, serve_beside_quickstart
from benchmarks.local import Row

__all__ = ["main", "rows", "run"]

HOST = "localhost"
HTTP_P50_GOAL = 1.15
GRPC_P50_GOAL = 1.1
CONNECTIONS_GOAL = 1
WARMUP_ROUNDS = 2
WARMUP_PER_ROUND = 30
# (model, input name, output name) of each --model
MODELS = {"quickstart": ("ensemble", "IMAGE", "SCORES"), "identity": (IDENTITY_MODEL, "INPUT0", "OUTPUT0")}


def _server(folder: Path) -> contextlib.AbstractContextManager[Any]:
    return serve_beside_quickstart(write_identity_repository(folder / "models"))


def _aks_state(url: str, model: str, ca_certificate: str | None) -> Any:
    """The state of an AKS endpoint behind the Gateway, as ``status`` reports it (no endpoint key)."""
    from endpointkit.adapters.base import EndpointState, EndpointStatus

    extra: dict[str, Any] = {
        "default_model": model,
        "namespace": "default",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "benchmark",
        "cluster": "benchmark",
    }
    if ca_certificate is not None:
        extra["ca_certificate"] = ca_certificate
    return EndpointState(
        name="ekbench-tls", target="aks", kind="aks", status=EndpointStatus.IN_SERVICE, url=url, extra=extra
    )


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# ---- the calls ----------------------------------------------------------------------------------------------------
def _ours(state: Any, adapter: Any, name: str, array: Any, output: str, transport: str) -> Callable[[], Any]:
    import endpointkit as ek

    binary = True if transport == "http" else None

    def call() -> Any:
        return ek.invoke_endpoint(state, {name: array}, adapter=adapter, transport=transport, binary=binary)[
            output
        ]

    return call


def _theirs_http(client: Any, model: str, name: str, array: Any, output: str) -> Callable[[], Any]:
    from tritonclient.http import InferInput, InferRequestedOutput

    datatype = "UINT8" if array.dtype == np.uint8 else "FP32"

    def call() -> Any:
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        outputs = [InferRequestedOutput(output, binary_data=True)]
        return client.infer(model, [tensor], outputs=outputs).as_numpy(output)

    return call


def _theirs_grpc(client: Any, model: str, name: str, array: Any, output: str) -> Callable[[], Any]:
    from tritonclient.grpc import InferInput

    datatype = "UINT8" if array.dtype == np.uint8 else "FP32"

    def call() -> Any:
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return client.infer(model, [tensor]).as_numpy(output)

    return call


class _Sides:
    """Calls of several clients, timed in alternating rounds; the front's new connections go to the side whose
    calls were running when they were accepted (the front records a connection before it forwards a byte)."""

    def __init__(self, calls: dict[str, Callable[[], Any]], front: Any) -> None:
        self.calls = calls
        self.front = front
        self.connections = dict.fromkeys(calls, 0)
        self.made = dict.fromkeys(calls, 0)

    def check(self) -> None:
        """One call each; every side must return what the first one did."""
        answers = {side: self._counted(side, 1, None) for side in self.calls}
        reference = next(iter(answers))
        for side, answer in answers.items():
            if not np.allclose(answer, answers[reference]):
                raise RuntimeError(f"{side} disagrees with {reference} on the output")

    def alternate(self, rounds: int, per_round: int) -> dict[str, list[float]]:
        """Seconds per call of each side, ``per_round`` calls at a time, the order reversed every round."""
        samples: dict[str, list[float]] = {side: [] for side in self.calls}
        sides = list(self.calls)
        for index in range(rounds):
            for side in sides if index % 2 == 0 else sides[::-1]:
                self._counted(side, per_round, samples[side])
        return samples

    def _counted(self, side: str, count: int, timings: list[float] | None) -> Any:
        call = self.calls[side]
        accepted = len(self.front.protocols)
        answer = None
        for _ in range(count):
            started = time.perf_counter()
            answer = call()
            if timings is not None:
                timings.append(time.perf_counter() - started)
        self.connections[side] += len(self.front.protocols) - accepted
        self.made[side] += count
        return answer


def _measure(sides: _Sides, calls: int, rounds: int) -> dict[str, Any]:
    sides.check()
    sides.alternate(WARMUP_ROUNDS, WARMUP_PER_ROUND)  # connections, imports, Triton's first runs
    rounds = max(2, rounds)
    samples = sides.alternate(rounds, max(1, calls // rounds))
    return {"samples": samples, "connections": dict(sides.connections), "calls": dict(sides.made)}


# ---- the run ------------------------------------------------------------------------------------------------------
def run(*, calls: int = 1000, rounds: int = 40, model: str = "quickstart") -> dict[str, Any]:
    """Every measurement, raw samples included (seconds), and the connections each side opened."""
    from tritonclient.grpc import InferenceServerClient as GrpcClient
    from tritonclient.http import InferenceServerClient as HttpClient

    from endpointkit.adapters.aks import AksAdapter
    from endpointkit.adapters.aks._certificates import issue_server_certificate, make_authority
    from tests.tls_front import TlsFront

    model_name, name, output = MODELS[model]
    if model == "quickstart":
        array = np.frombuffer((QUICKSTART / "sample.jpg").read_bytes(), dtype=np.uint8)[np.newaxis, :]
    else:
        array = np.arange(16, dtype=np.float32)
    result: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ekbench-tls-")))
        server = stack.enter_context(_server(folder))
        authority = make_authority("endpointkit benchmark CA")
        ca_file = folder / "ca.pem"
        ca_file.write_text(authority.certificate_pem)
        front = stack.enter_context(
            TlsFront(
                *issue_server_certificate(authority, HOST),
                ("127.0.0.1", server.http_port),
                h2_backend=("127.0.0.1", server.grpc_port),
            )
        )
        tls_state = _aks_state(f"https://{HOST}:{front.port}", model_name, authority.certificate_pem)
        plain_state = _aks_state(f"http://127.0.0.1:{server.http_port}", model_name, None)
        tls_adapter = AksAdapter.from_state(tls_state)
        stack.callback(tls_adapter.close)
        plain_adapter = AksAdapter.from_state(plain_state)
        stack.callback(plain_adapter.close)
        https_client = HttpClient(
            url=f"{HOST}:{front.port}",
            ssl=True,
            ssl_options={"ca_certs": str(ca_file)},
            # gevent's secure defaults, as tritonclient's documentation suggests
            ssl_context_factory=importlib.import_module("gevent.ssl").create_default_context,
        )
        stack.callback(https_client.close)
        http_client = HttpClient(url=f"127.0.0.1:{server.http_port}")
        stack.callback(http_client.close)
        grpc_client = GrpcClient(url=f"{HOST}:{front.port}", ssl=True, root_certificates=str(ca_file))
        stack.callback(grpc_client.close)

        http_sides = _Sides(
            {
                "ours": _ours(tls_state, tls_adapter, name, array, output, "http"),
                "theirs": _theirs_http(https_client, model_name, name, array, output),
                "ours_plain": _ours(plain_state, plain_adapter, name, array, output, "http"),
                "theirs_plain": _theirs_http(http_client, model_name, name, array, output),
            },
            front,
        )
        result["http"] = _measure(http_sides, calls, rounds)
        grpc_sides = _Sides(
            {
                "ours": _ours(tls_state, tls_adapter, name, array, output, "grpc"),
                "theirs": _theirs_grpc(grpc_client, model_name, name, array, output),
            },
            front,
        )
        result["grpc"] = _measure(grpc_sides, calls, rounds)
        result["protocols"] = list(front.protocols)
    result["loadavg_after"] = os.getloadavg()
    result["settings"] = {"calls": calls, "rounds": rounds, "model": model}
    return result


# ---- the report ---------------------------------------------------------------------------------------------------
def _latency_rows(title: str, samples: dict[str, list[float]], goal: float) -> list[Row]:
    table = []
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours = _percentile(samples["ours"], fraction) * 1e3
        theirs = _percentile(samples["theirs"], fraction) * 1e3
        ratio = ours / theirs
        checked = label == "p50"
        table.append(
            Row(
                f"{title} {label} ({len(samples['ours'])} calls)",
                ours,
                theirs,
                "ms",
                ratio,
                "ours/theirs",
                f"<= {goal:g}" if checked else "-",
                ratio <= goal if checked else None,
            )
        )
    return table


def _connections_row(title: str, measured: dict[str, Any], goal: bool) -> Row:
    ours = measured["connections"]["ours"]
    return Row(
        f"{title} ({measured['calls']['ours']} calls)",
        ours,
        measured["connections"]["theirs"],
        "conn",
        None,
        "",
        f"== {CONNECTIONS_GOAL}" if goal else "-",
        ours == CONNECTIONS_GOAL if goal else None,
    )


def rows(result: dict[str, Any]) -> list[Row]:
    """The table's rows from :func:`run`'s result."""
    http, grpc = result["http"], result["grpc"]
    table = _latency_rows("HTTPS via front", http["samples"], HTTP_P50_GOAL)
    plain = http["samples"]
    ours = _percentile(plain["ours_plain"], 0.5) * 1e3
    theirs = _percentile(plain["theirs_plain"], 0.5) * 1e3
    table.append(
        Row(
            f"plain HTTP, no front, p50 ({len(plain['ours_plain'])} calls)",
            ours,
            theirs,
            "ms",
            ours / theirs,
            "ours/theirs",
            "-",
            None,
        )
    )
    table.append(_connections_row("HTTPS: TLS connections opened", http, goal=True))
    table.extend(_latency_rows("gRPC TLS via front", grpc["samples"], GRPC_P50_GOAL))
    table.append(_connections_row("gRPC: TLS connections opened", grpc, goal=False))
    return table


def format_table(table: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = f"{'case':<42} {'ours':>13} {'tritonclient':>13} {'ratio':>20}  {'goal':<8} met"
    lines = [header, "-" * len(header)]
    for row in table:
        places = 0 if row.unit == "conn" else 3
        ours = f"{row.ours:.{places}f} {row.unit}"
        theirs = "-" if row.theirs is None else f"{row.theirs:.{places}f} {row.unit}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f} {row.ratio_name}"
        met = "-" if row.met is None else "yes" if row.met else "NO"
        lines.append(f"{row.case:<42} {ours:>13} {theirs:>13} {ratio:>20}  {row.goal:<8} {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (or JSON with ``--json``); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tls", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per side and transport")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds the calls are split into")
    parser.add_argument("--model", choices=sorted(MODELS), default="quickstart", help="the call to make")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args([] if argv is None else argv)
    result = run(calls=arguments.calls, rounds=arguments.rounds, model=arguments.model)
    table = rows(result)
    if not report(
        f"endpointkit over TLS vs tritonclient through one TLS front ({arguments.model})",
        result,
        table,
        format_table(table),
        as_json=arguments.json,
    ):
        return
    print(
        "front's connections in order (ALPN; None: no ALPN offered, tritonclient.http): "
        + ", ".join(str(protocol) for protocol in result["protocols"])
    )


if __name__ == "__main__":
    main(sys.argv[1:])
