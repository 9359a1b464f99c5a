"""Commands on endpoints (plan, apply, status, destroy): one spec, or a fleet of specs run in parallel with
one summary table or JSON document at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from endpointkit import _api, fleet
from endpointkit._wait import Progress
from endpointkit.cli._errors import _error_document, _message, _one_line
from endpointkit.cli._output import _emit, _Outcome, _ProgressLine
from endpointkit.errors import EXIT_FAILURE, EXIT_OK, EndpointKitError, SpecError
from endpointkit.errors import exit_code as _exit_code
from endpointkit.spec import Deployment

#: ``plan --detailed-exitcode``: something would change (https://developer.hashicorp.com/terraform/cli/commands/plan)
EXIT_CHANGES = 2

_OneEndpoint = Callable[[Deployment, argparse.Namespace, Progress | None], _Outcome]


def _needs_repository(args: argparse.Namespace) -> bool:
    # status and destroy must keep working after the local model repository is gone
    return args.command not in ("status", "destroy")


def _endpoint_command(one: _OneEndpoint, *, shows_progress: bool) -> Callable[[argparse.Namespace], int]:
    """A command that runs ``one`` on a single spec (output as before fleets existed) or on a fleet."""

    def command(args: argparse.Namespace) -> int:
        if fleet.is_fleet(args.spec):
            return _run_fleet(args, one)
        deployment = _api.resolve(args.spec[0], args.target, check_repository=_needs_repository(args))
        progress = _ProgressLine(sys.stderr) if shows_progress else None
        try:
            outcome = one(deployment, args, progress)
        finally:
            if progress is not None:
                progress.finish()
        _emit(args, outcome.document, outcome.human)
        return _changes_exit_code(args, [outcome])

    return command


def _changes_exit_code(args: argparse.Namespace, outcomes: list[_Outcome]) -> int:
    """``plan --detailed-exitcode``: 2 when an outcome has changes (Terraform's convention), else 0."""
    if getattr(args, "detailed_exitcode", False) and any(outcome.has_changes for outcome in outcomes):
        return EXIT_CHANGES
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ fleets


@dataclass(frozen=True)
class _FleetItem:
    path: Path
    deployment: Deployment


def _run_fleet(args: argparse.Namespace, one: _OneEndpoint) -> int:
    started = time.monotonic()
    entries = fleet.discover_specs(args.spec)
    labels = [str(entry.path) for entry in entries]
    failures: dict[int, BaseException] = {}
    items: list[tuple[int, _FleetItem]] = []
    claimed: dict[tuple[str, ...], str] = {}
    for index, entry in enumerate(entries):
        path = entry.path
        if entry.error is not None:  # a folder without specs: reported with the others, the rest still run
            failures[index] = entry.error
            continue
        try:
            deployment = _api.resolve(path, args.target, check_repository=_needs_repository(args))
        except EndpointKitError as resolve_error:
            failures[index] = resolve_error
            continue
        key = _endpoint_key(deployment)
        if key in claimed:
            failures[index] = SpecError(
                f"endpoint {deployment.name} on {deployment.kind} is also in {claimed[key]}: "
                "a fleet names each endpoint once"
            )
            continue
        claimed[key] = str(path)
        items.append((index, _FleetItem(path, deployment)))

    board = fleet.FleetBoard(labels, sys.stderr)
    if board.live:  # plain logs get these once, with the other errors, at the end
        for index, failure in failures.items():
            board.update(index, f"error: {_one_line(failure)}")

    def on_done(result: fleet.FleetResult[tuple[int, _FleetItem], _Outcome]) -> None:
        index = result.item[0]
        if result.error is not None:
            board.update(index, f"error: {_one_line(result.error)}")
        elif result.value is not None:
            board.update(index, f"{result.value.result} {result.value.detail}".rstrip())

    results = fleet.run_fleet(
        items,
        lambda item, progress: one(item[1].deployment, args, progress),
        parallel=args.parallel,
        on_start=lambda position: board.update(items[position][0], "running"),
        on_done=on_done,
        on_progress=lambda position, event: board.progress(items[position][0], event),
    )
    board.finish()

    outcomes: dict[int, tuple[_FleetItem, _Outcome]] = {}
    for result in results:
        index, item = result.item
        if result.error is not None:
            failures[index] = result.error
        elif result.value is not None:
            outcomes[index] = (item, result.value)
    deployments = {index: item.deployment for index, item in items}
    exit_code = max((_exit_code(error) for error in failures.values()), default=EXIT_OK)
    if getattr(args, "detailed_exitcode", False):
        # Any failure is 1, bad input included; only a fleet without failures says whether something changes.
        changes = _changes_exit_code(args, [outcome for _, outcome in outcomes.values()])
        exit_code = EXIT_FAILURE if failures else changes
    for index in sorted(failures):
        message = _message(failures[index])
        where = "" if message.startswith(labels[index]) else f"{labels[index]}: "
        sys.stderr.write(f"endpointkit: error: {where}{message}\n")
    elapsed = time.monotonic() - started
    if args.json:
        document = _fleet_document(args, labels, outcomes, failures, deployments, exit_code, elapsed)
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(
            _fleet_text(args, labels, outcomes, failures, deployments, exit_code, elapsed) + "\n"
        )
    return exit_code


def _endpoint_key(deployment: Deployment) -> tuple[str, ...]:
    """What makes two deployments the same endpoint: the name on the same account, region or cluster."""
    target = deployment.target
    where = [
        str(getattr(target, attribute, "") or "")
        for attribute in ("region", "subscription_id", "resource_group", "cluster", "namespace", "state_dir")
    ]
    return (deployment.kind, deployment.name, *where)


@dataclass(frozen=True)
class _FleetCost:
    """A fleet plan's hourly cost: ``total`` only when every spec planned and has a known price."""

    total: float | None
    known_part: float  # the sum of the prices that are known: a lower bound when total is None
    failed: int
    unpriced: int

    def text(self) -> str:
        if self.total is not None:
            return f"estimated total {_api.format_usd(self.total)}"
        why = []
        if self.failed:
            why.append(f"{self.failed} spec{'s' if self.failed != 1 else ''} failed")
        if self.unpriced:
            why.append(f"{self.unpriced} with an unknown price")
        at_least = f"at least {_api.format_usd(self.known_part)}, " if self.known_part > 0 else ""
        return f"estimated total unknown ({at_least}{', '.join(why)})"


def _fleet_cost(outcomes: dict[int, tuple[_FleetItem, _Outcome]], failed: int) -> _FleetCost:
    # A failed spec would have cost something too: a sum without it would read as the fleet's price.
    costs = [outcome.hourly_cost for _, outcome in outcomes.values()]
    known = round(sum(cost for cost in costs if cost is not None), 6)
    unpriced = sum(1 for cost in costs if cost is None)
    total = known if costs and not failed and not unpriced else None
    return _FleetCost(total, known, failed, unpriced)


def _fleet_document(
    args: argparse.Namespace,
    labels: list[str],
    outcomes: dict[int, tuple[_FleetItem, _Outcome]],
    failures: dict[int, BaseException],
    deployments: dict[int, Deployment],
    exit_code: int,
    elapsed: float,
) -> dict[str, Any]:
    errors = []
    for index in sorted(failures):
        entry: dict[str, Any] = {"spec": labels[index], "exit_code": _exit_code(failures[index])}
        if index in deployments:
            entry["name"] = deployments[index].name
            entry["target"] = deployments[index].target_name
        entry["error"] = _error_document(failures[index])
        errors.append(entry)
    summary: dict[str, Any] = {
        "total": len(labels),
        "ok": len(outcomes),
        "failed": len(failures),
        "exit_code": exit_code,
        "elapsed_seconds": round(elapsed, 3),
        "parallel": args.parallel,
    }
    if args.command == "plan":
        cost = _fleet_cost(outcomes, len(failures))
        summary["hourly_cost"] = cost.total
        if cost.total is None:
            # the known part, named so that nobody takes it for the total
            summary["hourly_cost_at_least"] = cost.known_part
            summary["hourly_cost_unknown_because"] = {"failed": cost.failed, "unknown_price": cost.unpriced}
    return {
        "command": args.command,
        "results": [
            {"spec": labels[index], "result": outcome.document}
            for index, (_, outcome) in sorted(outcomes.items())
        ],
        "errors": errors,
        "summary": summary,
    }


def _fleet_text(
    args: argparse.Namespace,
    labels: list[str],
    outcomes: dict[int, tuple[_FleetItem, _Outcome]],
    failures: dict[int, BaseException],
    deployments: dict[int, Deployment],
    exit_code: int,
    elapsed: float,
) -> str:
    sections = [
        outcome.fleet_human + "\n"
        for _, (_, outcome) in sorted(outcomes.items())
        if outcome.fleet_human is not None
    ]
    rows = []
    for index, label in enumerate(labels):
        deployment = deployments.get(index)
        name = deployment.name if deployment else "-"
        target = deployment.target_name if deployment else "-"
        if index in outcomes:
            outcome = outcomes[index][1]
            rows.append([label, name, target, outcome.result, outcome.detail])
        else:
            error = failures[index]
            rows.append([label, name, target, f"error (exit {_exit_code(error)})", _one_line(error)])
    headers = ["SPEC", "ENDPOINT", "TARGET", "RESULT", "HOURLY COST" if args.command == "plan" else "DETAIL"]
    sections.append(fleet.render_table(headers, rows))
    summary = f"{len(labels)} specs: {len(outcomes)} ok, {len(failures)} failed in {elapsed:.1f}s"
    if args.command == "plan":
        summary += f"; {_fleet_cost(outcomes, len(failures)).text()}"
    if failures:
        summary += f" (exit {exit_code})"
    sections.append(summary)
    footnotes = {note: None for _, (_, outcome) in sorted(outcomes.items()) for note in outcome.footnotes}
    sections.extend(footnotes)
    return "\n".join(sections)
