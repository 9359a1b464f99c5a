"""``endpointkit top``: live traffic per variant of one or many endpoints, redrawn like the fleet board; and the
metrics table ``status --metrics`` prints."""

from __future__ import annotations

import argparse
import sys
import threading

from endpointkit import EndpointMetrics, VariantMetrics, _api, fleet
from endpointkit._wait import Progress
from endpointkit.errors import EXIT_FAILURE, EXIT_OK, exit_code
from endpointkit.spec import Deployment

__all__ = ["_cmd_top", "_metrics_row", "_metrics_table"]

_HEADERS = ("VARIANT", "REQUESTS", "FAILURES", "P50 MS", "P99 MS", "QUEUE MS")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def _metrics_row(variant: VariantMetrics) -> str:
    """One variant's figures on one line (``-`` where the target reports none)."""
    return (
        f"requests {_number(variant.requests)}  failures {_number(variant.failures)}  "
        f"p50 {_number(variant.p50_ms)} ms  p99 {_number(variant.p99_ms)} ms  queue {_number(variant.queue_ms)} ms"
    )


def _metrics_table(metrics: EndpointMetrics) -> str:
    """The per-variant table of ``status --metrics``, indented under the state, with the window and its note."""
    rows = [
        (
            variant.variant,
            _number(variant.requests),
            _number(variant.failures),
            _number(variant.p50_ms),
            _number(variant.p99_ms),
            _number(variant.queue_ms),
        )
        for variant in metrics.variants
    ]
    lines = [f"  metrics ({metrics.source}, window {metrics.window_seconds:g}s):"]
    lines += [f"    {line}" for line in fleet.render_table(_HEADERS, rows).splitlines()]
    if metrics.note:
        lines.append(f"    note: {metrics.note}")
    return "\n".join(lines)


def _cmd_top(args: argparse.Namespace) -> int:
    """Redraw every endpoint's variants every ``--interval`` until Ctrl-C, or ``--iterations`` times.

    A row whose endpoint could not be read shows the error; the exit code is that of the worst error of the
    last round (0 when it read everything).
    """
    deployments = _deployments(args)
    labels = [f"{d.name} ({d.target_name}) {variant.name}" for d in deployments for variant in d.variants]
    board = fleet.FleetBoard(labels, sys.stdout)
    stop = threading.Event()
    worst = EXIT_OK
    rounds = 0
    try:
        while True:
            worst = _one_round(deployments, args, board)
            rounds += 1
            if args.iterations is not None and rounds >= args.iterations:
                break
            # Bounded by --interval; Ctrl-C interrupts the wait (KeyboardInterrupt in the main thread).
            stop.wait(args.interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends: the last round's exit code stands
    board.finish()
    return worst


def _deployments(args: argparse.Namespace) -> list[Deployment]:
    """Every spec of the command line resolved for ``--target``; a folder without specs is bad input."""
    deployments = []
    for entry in fleet.discover_specs(args.spec):
        if entry.error is not None:
            raise entry.error
        deployments.append(_api.resolve(entry.path, args.target, check_repository=False))
    return deployments


def _one_round(deployments: list[Deployment], args: argparse.Namespace, board: fleet.FleetBoard) -> int:
    """Read every endpoint (``--parallel`` at a time), update its rows; the worst exit code of the round."""
    first_row = {}
    row = 0
    for index, deployment in enumerate(deployments):
        first_row[index] = row
        row += len(deployment.variants)

    def read(deployment: Deployment, progress: Progress) -> EndpointMetrics:
        return _api.metrics(deployment, window=args.window)

    results = fleet.run_fleet(deployments, read, parallel=args.parallel)
    worst = EXIT_OK
    for result in results:
        texts = _row_texts(result.item, result.value, result.error)
        if result.error is not None or result.value is None:
            worst = max(worst, exit_code(result.error) if result.error is not None else EXIT_FAILURE)
        for offset, text in enumerate(texts):
            board.update(first_row[result.index] + offset, text)
    return worst


def _row_texts(
    deployment: Deployment, metrics: EndpointMetrics | None, error: BaseException | None
) -> list[str]:
    """The text of each of ``deployment``'s variant rows: its figures, or the error that stopped the read."""
    if metrics is None:
        return [f"error: {error}" for _ in deployment.variants]
    found = {variant.variant: variant for variant in metrics.variants}
    return [
        _metrics_row(found[variant.name]) if variant.name in found else "no figures"
        for variant in deployment.variants
    ]
