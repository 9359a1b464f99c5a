"""The validate and terraform commands, and what plan, apply, status and destroy do to one endpoint."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from endpointkit import _api
from endpointkit._wait import Progress
from endpointkit.cli._errors import EXIT_OK, CostLimitExceeded
from endpointkit.cli._output import _describe_state, _emit, _Outcome, _state_document
from endpointkit.provisioners.reap import time_left
from endpointkit.spec import Deployment


def _adapter_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        from endpointkit.adapters.memory import MemoryAdapter

        options["adapter"] = MemoryAdapter(target_name=args.target or "dry-run")
    if getattr(args, "purge_artifacts", False):
        options["purge_artifacts"] = True
    return options


def _cmd_validate(args: argparse.Namespace) -> int:
    from endpointkit.spec import load_spec

    spec = load_spec(args.spec)
    targets = [args.target] if args.target else list(spec.targets)
    checks = {target: _target_checks(spec.deployment(target)) for target in targets}
    skipped = {target: note for target, note in checks.items() if note is not None}
    human = f"{args.spec}: valid ({', '.join(targets)})"
    for target, note in skipped.items():
        human += f"\n  {target}: {note}"
    _emit(
        args,
        {
            "valid": True,
            "name": spec.name,
            "targets": targets,
            "checks": {target: "skipped" if note else "ok" for target, note in checks.items()},
            "skipped": skipped,
        },
        human,
    )
    return EXIT_OK


def _target_checks(deployment: Deployment) -> str | None:
    """Run what the target's adapter checks before any cloud call; a note when its extra is not installed.

    The adapter's capability check and ``desired()`` (documented as making no cloud call) catch what only that
    cloud refuses, such as a SageMaker instance type botocore does not know.

    Raises:
        SpecError, UnsupportedCapabilityError: the target would refuse the spec.
    """
    from endpointkit.adapters import create_adapter
    from endpointkit.errors import MissingDependencyError
    from endpointkit.provisioners import check_capabilities

    try:
        adapter = create_adapter(deployment)
    except MissingDependencyError as missing:
        return f"{deployment.kind} checks skipped: {missing}"
    try:
        check_capabilities(deployment, adapter)
        adapter.desired(deployment)
    except MissingDependencyError as missing:
        return f"{deployment.kind} checks skipped: {missing}"
    finally:
        adapter.close()
    return None


def _one_plan(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    from endpointkit.pricing import format_usd

    plan = _api.plan(deployment.spec, deployment.target_name, **_adapter_options(args))
    changes = sum(1 for change in plan.changes if change.action != "noop")
    table = plan.costs.table if plan.costs is not None else None
    footnotes: tuple[str, ...] = ()
    if table is not None:
        footnotes = (
            f"prices: {table.description}, {table.region}, as of {table.as_of}: {' '.join(table.sources)}",
        )
    return _Outcome(
        plan.to_dict(),
        str(plan),
        f"{changes} change{'s' if changes != 1 else ''}",
        format_usd(plan.hourly_cost),
        plan.hourly_cost,
        fleet_human=plan.render(price_sources=False),
        footnotes=footnotes,
    )


def _one_apply(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    if args.max_hourly_cost is not None:
        _check_cost(deployment, args.max_hourly_cost)
    state = _api.apply(deployment.spec, deployment.target_name, progress=progress, **_adapter_options(args))
    return _Outcome(
        _state_document(state), _describe_state(state, state.name), state.status.value, state.url or ""
    )


def _check_cost(deployment: Deployment, limit: float) -> None:
    from endpointkit.pricing import cost_limit_violation, estimate_cost

    estimate = estimate_cost(deployment)
    violation = cost_limit_violation(estimate, limit)
    if violation is not None:
        raise CostLimitExceeded(
            f"{deployment.name} on {deployment.target_name}: {violation}",
            estimate=estimate.total,
            limit=limit,
        )


def _one_status(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    state = _api.status(deployment.spec, deployment.target_name)
    if state is None:
        document = {
            "name": deployment.name,
            "target": deployment.target_name,
            "kind": deployment.kind,
            "status": "NOT_FOUND",
        }
        return _Outcome(document, _describe_state(None, deployment.name), "NOT_FOUND")
    detail = time_left(state.expires_at) if state.expires_at else state.url or ""
    return _Outcome(_state_document(state), _describe_state(state, state.name), state.status.value, detail)


def _one_destroy(deployment: Deployment, args: argparse.Namespace, progress: Progress | None) -> _Outcome:
    existed = _api.destroy(
        deployment.spec, deployment.target_name, progress=progress, **_adapter_options(args)
    )
    outcome = "destroyed" if existed else "nothing to destroy"
    return _Outcome(
        {"name": deployment.name, "target": deployment.target_name, "destroyed": existed},
        f"{deployment.name} on {deployment.target_name}: {outcome}",
        outcome,
    )


def _cmd_terraform(args: argparse.Namespace) -> int:
    from endpointkit.terraform import run_external

    return run_external(sys.stdin, sys.stdout, sys.stderr)
