"""Running loaded checks against a version through an ``invoke`` function: expectations, latency, python checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from endpointkit._wait import Progress, ProgressEvent
from endpointkit.errors import EndpointKitError, VerificationError
from endpointkit.payloads import Tensor
from endpointkit.verification._comparison import compare
from endpointkit.verification._loading import LoadedCheck
from endpointkit.verification._python_checks import PythonInvoke

__all__ = [
    "CheckResult",
    "Invoke",
    "VerificationReport",
    "format_seconds",
    "p99",
    "report_event",
    "run_checks",
]

#: One request to the version under test: the input tensors and the model (None: the endpoint's default) in,
#: output name -> array out.
Invoke = Callable[[Sequence[Tensor], str | None], Mapping[str, npt.NDArray[Any]]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``detail`` is the largest difference per output, the p99 latency, or what was
    recorded; ``seconds`` the time the check took."""

    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class VerificationReport:
    """What a verification did: the version checked (``subject``), one result per check, the total seconds, and
    the expectation files written when it recorded them."""

    subject: str
    results: tuple[CheckResult, ...]
    seconds: float
    written: tuple[Path, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (what ``endpointkit verify --json`` prints)."""
        return {
            "subject": self.subject,
            "passed": self.passed,
            "seconds": self.seconds,
            "checks": [
                {"name": r.name, "passed": r.passed, "detail": r.detail, "seconds": r.seconds}
                for r in self.results
            ],
            "written": [str(path) for path in self.written],
        }


@dataclass(frozen=True, slots=True)
class _Failure:
    detail: str
    output: str | None = None


def run_checks(
    checks: Iterable[LoadedCheck],
    invoke: Invoke,
    *,
    subject: str,
    progress: Progress | None = None,
) -> VerificationReport:
    """Run each check in order through ``invoke``; stop at the first that fails. Blocks for the requests.

    A check sends its inputs, compares every expected output (``rtol`` / ``atol``), repeats the request
    ``repeat`` times in all and bounds their p99 latency (nearest rank) by ``max_p99``, then calls its ``python:``
    function with an ``invoke(inputs)``. ``progress`` gets one event per check when it ends (status ``passed:
    DETAIL`` or ``failed: DETAIL``).

    Raises:
        VerificationError: a check failed; the message names the check, ``subject``, and the output with its
            largest difference, index and tolerance, or the p99 against ``max_p99``, or the function's own error.
        EndpointKitError: a request failed (the endpoint refused it or did not answer), also from a ``python:``
            check, as ``invoke`` raised it.
    """
    started = time.monotonic()
    results: list[CheckResult] = []
    for loaded in checks:
        check_started = time.monotonic()
        details, failure = _run(loaded, invoke)
        seconds = time.monotonic() - check_started
        detail = "; ".join(details) if failure is None else failure.detail
        result = CheckResult(loaded.name, failure is None, detail, seconds)
        report_event(progress, subject, result)
        if failure is not None:
            output = f"output {failure.output} " if failure.output else ""
            raise VerificationError(
                f"check {loaded.name!r} failed on {subject}: {output}{failure.detail}",
                check=loaded.name,
                detail=failure.detail,
                output=failure.output,
                subject=subject,
            )
        results.append(result)
    return VerificationReport(subject=subject, results=tuple(results), seconds=time.monotonic() - started)


def report_event(
    progress: Progress | None, subject: str, result: CheckResult, *, verdict: str | None = None
) -> None:
    """Tell ``progress`` how a check ended: subject ``SUBJECT: check NAME``, status ``VERDICT: DETAIL`` where the
    verdict is ``passed``, ``failed`` or the one given (a verification has no deadline: ``timeout`` is 0)."""
    if progress is not None:
        verdict = verdict or ("passed" if result.passed else "failed")
        progress(
            ProgressEvent(
                f"{subject}: check {result.name}", f"{verdict}: {result.detail}", result.seconds, 0.0
            )
        )


def _run(loaded: LoadedCheck, invoke: Invoke) -> tuple[list[str], _Failure | None]:
    """The details of a check that passed, or the failure of one that did not."""
    check = loaded.check
    details: list[str] = []
    if loaded.inputs:
        began = time.perf_counter()
        outputs = invoke(loaded.inputs, check.model)
        latencies = [time.perf_counter() - began]
        for name, expected in loaded.expected.items():
            if name not in outputs:
                present = ", ".join(outputs) or "none"
                return details, _Failure(f"is not in the answer (its outputs: {present})", name)
            comparison = compare(outputs[name], expected, rtol=check.rtol, atol=check.atol)
            if not comparison.passed:
                return details, _Failure(comparison.detail, name)
            details.append(f"{name}: {comparison.detail}")
        for _ in range(check.repeat - 1):
            began = time.perf_counter()
            invoke(loaded.inputs, check.model)
            latencies.append(time.perf_counter() - began)
        if check.max_p99 is not None or check.repeat > 1:
            seen = p99(latencies)
            latency = f"p99 {format_seconds(seen)} over {len(latencies)} calls"
            if check.max_p99 is not None:
                if seen > check.max_p99:
                    return details, _Failure(f"{latency} is above max_p99 {format_seconds(check.max_p99)}")
                latency += f" (max_p99 {format_seconds(check.max_p99)})"
            details.append(latency)
    if loaded.function is not None:
        failure = _call(loaded, invoke)
        if failure is not None:
            return details, failure
        details.append(f"{check.python} passed")
    return details, None


def _call(loaded: LoadedCheck, invoke: Invoke) -> _Failure | None:
    assert loaded.function is not None
    try:
        returned = loaded.function(_python_invoke(invoke, loaded.check.model))
    except EndpointKitError:
        raise  # a request the endpoint refused or never answered is not the check's verdict
    except Exception as error:
        return _Failure(f"{loaded.check.python} raised {type(error).__name__}: {error}")
    if returned is False:
        return _Failure(f"{loaded.check.python} returned False")
    return None


def _python_invoke(invoke: Invoke, model: str | None) -> PythonInvoke:
    def call(inputs: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
        """Send ``inputs`` (name -> array or Tensor) to the version under test; the outputs by name."""
        tensors = [
            value if isinstance(value, Tensor) else Tensor(name, value) for name, value in inputs.items()
        ]
        return dict(invoke(tensors, model))

    return call


def p99(latencies: Sequence[float]) -> float:
    """The 99th percentile of ``latencies`` by nearest rank: the smallest value at least 99 % of them do not
    exceed (of 50 calls, the 50th fastest; of 200, the 198th)."""
    ordered = sorted(latencies)
    return ordered[max(math.ceil(0.99 * len(ordered)), 1) - 1]


def format_seconds(seconds: float) -> str:
    """``250 ms``, ``1.5 s``, ``3600 s``, ``1 ns``: three significant digits in the unit that reads best."""
    for bound, scale, unit in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "µs"), (1.0, 1e3, "ms")):
        if seconds < bound:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds:.4g} s"
