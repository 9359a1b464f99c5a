"""The validate and terraform commands, and what plan, apply, status and destroy do to one endpoint."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from endpointkit import _api
from endpointkit._wait import Progress
from endpointkit.cli._output import _describe_state, _emit, _Outcome, _state_document
from endpointkit.cli._top import _metrics_table
from endpointkit.errors import EXIT_OK
from endpointkit.spec import Deployment


def _cmd_validate(args: argparse.Namespace) -> int:
    report = _api.validate(args.spec, args.target)
    human = f"{args.spec}: valid ({', '.join(report.targets)})"
    for target, note in report.skipped.items():
        human += f"\n  {target}: {note}"
    _emit(args, report.to_dict(), human)
    return EXIT_OK


def _one_plan(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    plan = _api.plan(deployment, dry_run=args.dry_run)
    changes = sum(1 for change in plan.changes if change.action != "noop")
    drifted = f", {len(plan.drift)} drifted" if plan.drift else ""
    table = plan.costs.table if plan.costs is not None else None
    footnotes: tuple[str, ...] = ()
    if table is not None:
        footnotes = (
            f"prices: {table.description}, {table.region}, as of {table.as_of}: {' '.join(table.sources)}",
        )
    return _Outcome(
        plan.to_dict(),
        str(plan),
        f"{changes} change{'s' if changes != 1 else ''}{drifted}",
        _api.format_usd(plan.hourly_cost),
        plan.hourly_cost,
        fleet_human=plan.render(price_sources=False),
        footnotes=footnotes,
        has_changes=plan.has_changes,
    )


def _one_apply(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    state = _api.apply(
        deployment,
        progress=progress,
        dry_run=args.dry_run,
        max_hourly_cost=args.max_hourly_cost,
        record_checks=args.record_checks,
        rehearse=args.rehearse,
    )
    return _Outcome(
        _state_document(state), _describe_state(state, state.name), state.status.value, state.url or ""
    )


def _one_status(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    state = _api.status(deployment)
    if state is None:
        missing: dict[str, Any] = {
            "name": deployment.name,
            "target": deployment.target_name,
            "kind": deployment.kind,
            "status": "NOT_FOUND",
        }
        if getattr(args, "metrics", False):
            missing["metrics"] = None  # nothing serves, so nothing to measure
        return _Outcome(missing, _describe_state(None, deployment.name), "NOT_FOUND")
    detail = _api.time_left(state.expires_at) if state.expires_at else state.url or ""
    document = _state_document(state)
    human = _describe_state(state, state.name)
    if getattr(args, "metrics", False):
        metrics = _api.metrics(deployment, window=args.window)
        document["metrics"] = metrics.to_dict()
        human += "\n" + _metrics_table(metrics)
    return _Outcome(document, human, state.status.value, detail)


def _one_destroy(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    options: dict[str, Any] = {"purge_artifacts": True} if args.purge_artifacts else {}
    existed = _api.destroy(deployment, progress=progress, **options)
    outcome = "destroyed" if existed else "nothing to destroy"
    return _Outcome(
        {"name": deployment.name, "target": deployment.target_name, "destroyed": existed},
        f"{deployment.name} on {deployment.target_name}: {outcome}",
        outcome,
    )


def _cmd_terraform(args: argparse.Namespace) -> int:
    from endpointkit.terraform import run_external

    return run_external(sys.stdin, sys.stdout, sys.stderr)
