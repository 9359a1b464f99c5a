"""The ``endpointkit`` command: validate, plan, apply, status, invoke, destroy, reap, terraform.

Exit codes: 0 success, 1 provider or runtime failure, 2 bad input (spec, payload, usage, unknown target,
unsupported capability, cost limit), 3 timeout, 130 interrupted. Expected errors print one message, never a
traceback. ``plan``, ``apply``, ``status`` and ``destroy`` take several spec files or folders (a fleet): they
run in parallel and end with one summary table, or one JSON document, and the worst exit code.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np
import orjson

from endpointkit import _api, fleet
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.base import EndpointState
from endpointkit.errors import (
    EndpointKitError,
    PayloadError,
    ProviderError,
    ProvisionTimeout,
    SpecError,
    UnsupportedCapabilityError,
)
from endpointkit.provisioners.reap import reap, time_left
from endpointkit.spec import Deployment

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """Bad command-line usage: exit 2 with the message."""


class CostLimitExceeded(_UsageError):
    """``apply --max-hourly-cost`` refused a plan: its estimate is above the limit, or unknown."""

    def __init__(self, message: str, *, estimate: float | None, limit: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(message)


_REAP_HELP = """\
Destroy the expired endpoints on one target: every endpointkit-managed endpoint whose
endpointkit-expires-at tag (set from the spec's ttl at apply time) has passed, whichever spec it came from.

Say which target with either:
  --spec FILE [--target NAME]        a target of a spec file (its region, cluster, state dir...)
  --target local                     the local target with its default state dir
  --target sagemaker --region R      SageMaker in region R (default: $AWS_REGION / $AWS_DEFAULT_REGION)
An AKS target needs its subscription, resource group and cluster, so it is always named through --spec.

examples:
  endpointkit reap --target sagemaker --region us-east-1 --dry-run
  endpointkit reap --spec endpoint.yaml --target azure --json
"""

_TERRAFORM_HELP = """\
The program of Terraform's `external` data source. Reads one JSON object of strings on stdin:
  {"spec": "/abs/endpoint.yaml", "target": "aws", "action": "status"}
(action: status, the default, is read-only; apply creates or updates the endpoint on every plan: opt-in)
and writes one flat JSON object of strings on stdout: name, target, kind, status, url, region, spec_hash,
deployed_spec_hash, variants (JSON-encoded), expires_at, hourly_cost, reason, action. On failure: one line on
stderr and a non-zero exit. A relative spec path resolves against the current directory. See
examples/terraform/.
"""


def _parallel(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD, e.g. 2.50") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="endpointkit",
        description="Provision NVIDIA Triton endpoints on a local Triton, SageMaker or AKS from one spec.",
    )
    parser.add_argument("--version", action="version", version=f"endpointkit {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_spec(name: str, help_text: str, *, fleet_capable: bool = False) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        if fleet_capable:
            command.add_argument(
                "spec",
                nargs="+",
                help="a spec file (YAML); several files or folders (their *.yaml, *.yml) make a fleet, "
                "run in parallel with one summary at the end",
            )
            command.add_argument(
                "--parallel",
                type=_parallel,
                default=fleet.DEFAULT_PARALLEL,
                metavar="N",
                help=f"fleets: how many specs at a time (default {fleet.DEFAULT_PARALLEL})",
            )
        else:
            command.add_argument("spec", help="the spec file (YAML)")
        command.add_argument("--target", help="which of the spec's targets (needed when it has several)")
        command.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return command

    with_spec("validate", "Check a spec (and its model repository) without touching any target.")
    plan = with_spec(
        "plan", "Show what apply would change and its estimated hourly cost. Read-only.", fleet_capable=True
    )
    plan.add_argument("--dry-run", action="store_true", help="plan against an empty in-memory target")
    apply = with_spec("apply", "Create or update the endpoint and wait until it serves.", fleet_capable=True)
    apply.add_argument("--dry-run", action="store_true", help="apply to an in-memory target: no real call")
    apply.add_argument(
        "--max-hourly-cost",
        type=_usd,
        metavar="USD",
        help="refuse, before any call, to apply an endpoint whose estimated on-demand cost per hour is above "
        "USD, or unknown (checked per endpoint in a fleet)",
    )
    with_spec(
        "status", "Show the endpoint's state and time left before its ttl. Read-only.", fleet_capable=True
    )
    destroy = with_spec(
        "destroy", "Delete the endpoint, its config and its model. Idempotent.", fleet_capable=True
    )
    destroy.add_argument(
        "--purge-artifacts", action="store_true", help="also delete uploaded model archives (SageMaker)"
    )
    invoke = with_spec("invoke", "Send one inference request and print the outputs.")
    invoke.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="an input tensor: a .npy file, a .json file (a nested list, or {data, datatype, shape}), "
        "or any other file sent as raw UINT8 bytes",
    )
    invoke.add_argument(
        "--output", action="append", default=[], metavar="NAME", help="request only these outputs"
    )
    invoke.add_argument("--model", help="the Triton model to call (default: the repository's default model)")
    payload = invoke.add_mutually_exclusive_group()
    payload.add_argument("--binary", dest="binary", action="store_const", const=True, help="send binary+json")
    payload.add_argument("--json-payload", dest="binary", action="store_const", const=False, help="send JSON")
    invoke.add_argument(
        "--output-dir", type=Path, help="write each output as NAME.npy here instead of printing it"
    )
    invoke.add_argument("--timeout", type=float, default=None, help="seconds for the request")

    reap = commands.add_parser(
        "reap",
        help="Destroy the endpoints whose ttl has passed on one target.",
        description=_REAP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reap.add_argument("--target", help="a target name of --spec, or a bare kind: local, sagemaker")
    reap.add_argument("--spec", help="the spec file whose target to reap (any spec naming that target)")
    reap.add_argument("--region", help="with a bare --target sagemaker: the AWS region")
    reap.add_argument("--dry-run", action="store_true", help="list what would be destroyed; delete nothing")
    reap.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    terraform = commands.add_parser(
        "terraform",
        help="The program of Terraform's external data source (JSON on stdin and stdout).",
        description=_TERRAFORM_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    terraform.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the answer is always one JSON object"
    )
    return parser


def _version() -> str:
    from endpointkit import __version__  # here, not at the top: endpointkit imports this module

    return __version__


# ------------------------------------------------------------------------------------------------ progress


class _ProgressLine:
    """A live status line on a terminal; plain lines (on status change, or every 30 s) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last: tuple[str, str] | None = None
        self._last_time = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        text = f"{event.subject}: {event.status} ({event.elapsed:.0f}s / {event.timeout:.0f}s)"
        if self.live:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._last = (event.subject, event.status)
            return
        key = (event.subject, event.status)
        now = time.monotonic()
        if key != self._last or now - self._last_time >= 30:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last, self._last_time = key, now

    def finish(self) -> None:
        if self.live and self._last is not None:
            self.stream.write("\n")
        elif self.live:
            self.stream.write("\r\033[K")
        self.stream.flush()


# ------------------------------------------------------------------------------------------------ commands


def _emit(args: argparse.Namespace, document: Any, human: str) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")


def _adapter_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        from endpointkit.adapters.memory import MemoryAdapter

        options["adapter"] = MemoryAdapter(target_name=args.target or "dry-run")
    if getattr(args, "purge_artifacts", False):
        options["purge_artifacts"] = True
    return options


def _describe_state(state: EndpointState | None, name: str) -> str:
    if state is None:
        return f"{name}: NOT_FOUND"
    lines = [f"{state.name} on {state.target} ({state.kind}): {state.status.value}"]
    if state.url:
        lines.append(f"  url: {state.url}")
    if state.reason:
        lines.append(f"  reason: {state.reason}")
    if state.expires_at:
        lines.append(f"  {time_left(state.expires_at)} (at {state.expires_at.isoformat()})")
    for variant in state.variants:
        lines.append(
            f"  variant {variant.name}: {variant.instance_count} x {variant.instance_type or 'local'} "
            f"weight {variant.weight:g}" + (f" ({variant.status})" if variant.status else "")
        )
    return "\n".join(lines)


def _state_document(state: EndpointState) -> dict[str, Any]:
    document = state.to_dict()
    if state.expires_at is not None:
        remaining = state.expires_at - datetime.now(timezone.utc)
        document["expires_in_seconds"] = int(remaining.total_seconds())
    return document


def _cmd_validate(args: argparse.Namespace) -> int:
    from endpointkit.spec import load_spec

    spec = load_spec(args.spec)
    targets = [args.target] if args.target else list(spec.targets)
    for target in targets:
        spec.deployment(target)
    _emit(
        args,
        {"valid": True, "name": spec.name, "targets": targets},
        f"{args.spec}: valid ({', '.join(targets)})",
    )
    return EXIT_OK


@dataclass(frozen=True)
class _Outcome:
    """One endpoint's result: the JSON document and text of a single-spec run, and its fleet table cells."""

    document: dict[str, Any]
    human: str
    result: str
    detail: str = ""
    hourly_cost: float | None = None
    fleet_human: str | None = None  # the text shown above a fleet's table, when there is one
    footnotes: tuple[str, ...] = ()  # lines shown once under a fleet's table (price sources)


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
        return EXIT_OK

    return command


# ------------------------------------------------------------------------------------------------ fleets


@dataclass(frozen=True)
class _FleetItem:
    path: Path
    deployment: Deployment


def _run_fleet(args: argparse.Namespace, one: _OneEndpoint) -> int:
    started = time.monotonic()
    paths = fleet.find_specs(args.spec)
    labels = [str(path) for path in paths]
    failures: dict[int, BaseException] = {}
    items: list[tuple[int, _FleetItem]] = []
    claimed: dict[tuple[str, ...], str] = {}
    for index, path in enumerate(paths):
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


def _fleet_total(outcomes: dict[int, tuple[_FleetItem, _Outcome]]) -> float | None:
    costs = [outcome.hourly_cost for _, outcome in outcomes.values()]
    if not costs or any(cost is None for cost in costs):
        return None
    return round(sum(cost for cost in costs if cost is not None), 6)


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
        summary["hourly_cost"] = _fleet_total(outcomes)
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
    from endpointkit.pricing import format_usd

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
        summary += f"; estimated total {format_usd(_fleet_total(outcomes))}"
    if failures:
        summary += f" (exit {exit_code})"
    sections.append(summary)
    footnotes = {note: None for _, (_, outcome) in sorted(outcomes.items()) for note in outcome.footnotes}
    sections.extend(footnotes)
    return "\n".join(sections)


# ------------------------------------------------------------------------------------------------ reap


def _cmd_reap(args: argparse.Namespace) -> int:
    adapter = _reap_adapter(args)
    progress = _ProgressLine(sys.stderr)
    try:
        report = reap(adapter, dry_run=args.dry_run, progress=progress)
    finally:
        progress.finish()
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    _emit(args, report.to_dict(), str(report))
    for outcome in report.failed:
        sys.stderr.write(f"endpointkit: error: could not destroy {outcome.state.name}: {outcome.error}\n")
    return max((_exit_code(o.error) for o in report.failed if o.error is not None), default=EXIT_OK)


_KINDS_NEEDING_A_SPEC = {"aks": "its subscription, resource group and cluster"}


def _reap_adapter(args: argparse.Namespace) -> object:
    """The adapter of the target ``reap`` was pointed at: a target of ``--spec``, or a bare kind."""
    from endpointkit.adapters import adapter_for_state, create_adapter, registered_kinds
    from endpointkit.adapters.base import EndpointStatus

    if args.spec:
        if args.region:
            raise _UsageError("--region goes with a bare --target sagemaker; with --spec the target says it")
        from endpointkit.spec import load_spec

        return create_adapter(load_spec(args.spec).deployment(args.target))
    if not args.target:
        raise _UsageError("reap needs --target KIND (local, sagemaker) or --spec FILE [--target NAME]")
    kind = args.target
    if kind in _KINDS_NEEDING_A_SPEC:
        raise _UsageError(
            f"a bare --target {kind} cannot say {_KINDS_NEEDING_A_SPEC[kind]}: "
            f"use --spec FILE --target NAME with a spec that has that {kind} target"
        )
    if kind not in registered_kinds():
        raise _UsageError(
            f"--target {kind!r} is not a target kind; without --spec use one of: "
            f"{', '.join(k for k in registered_kinds() if k not in _KINDS_NEEDING_A_SPEC)}"
        )
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if kind == "sagemaker" and not region:
        raise _UsageError("--target sagemaker needs --region (or AWS_REGION in the environment)")
    if kind != "sagemaker" and args.region:
        raise _UsageError(f"--region is for --target sagemaker, not {kind}")
    bare = EndpointState("", kind, kind, EndpointStatus.UNKNOWN, region=region)
    try:
        return adapter_for_state(bare)
    except (KeyError, TypeError, ValueError) as exc:  # an adapter whose from_state needs more than a kind
        raise _UsageError(
            f"the {kind} adapter needs its target's settings: use --spec FILE --target NAME ({exc!r})"
        ) from None


# ------------------------------------------------------------------------------------------------ terraform


def _cmd_terraform(args: argparse.Namespace) -> int:
    from endpointkit.terraform import run_external

    return run_external(sys.stdin, sys.stdout, sys.stderr)


# ------------------------------------------------------------------------------------------------ invoke


def _cmd_invoke(args: argparse.Namespace) -> int:
    from endpointkit.invoke import invoke_endpoint

    if not args.input:
        raise _UsageError("invoke needs at least one --input NAME=FILE")
    inputs = dict(_read_input(item) for item in args.input)
    response = invoke_endpoint(
        args.spec,
        inputs,
        target=args.target,
        outputs=args.output or None,
        binary=args.binary,
        model=args.model,
        timeout=args.timeout,
    )
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, array in response.outputs.items():
            path = args.output_dir / f"{name}.npy"
            np.save(path, array, allow_pickle=array.dtype == object)
            written[name] = str(path)
        _emit(args, {"outputs": written}, "\n".join(f"{name}: {path}" for name, path in written.items()))
        return EXIT_OK
    document = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": {name: _output_document(array) for name, array in response.outputs.items()},
    }
    sys.stdout.write(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n"
    )
    return EXIT_OK


def _read_input(item: str) -> tuple[str, Any]:
    name, separator, file_name = item.partition("=")
    if not separator or not name or not file_name:
        raise _UsageError(f"--input {item!r}: write NAME=FILE, e.g. --input IMAGE=sample.jpg")
    path = Path(file_name)
    try:
        if path.suffix == ".npy":
            return name, np.load(path, allow_pickle=False)
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise PayloadError(f"--input {name}: cannot read {path}: {exc}", field=name) from None
    if path.suffix == ".json":
        return name, _json_input(name, path, raw)
    return name, np.frombuffer(raw, dtype=np.uint8)


def _json_input(name: str, path: Path, raw: bytes) -> Any:
    from endpointkit.payloads import Tensor

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"--input {name}: {path} is not JSON: {exc}", field=name) from None
    if isinstance(value, dict):
        if "data" not in value:
            raise PayloadError(f"--input {name}: {path} is an object without 'data'", field=name)
        array = np.asarray(value["data"])
        if "shape" in value:
            array = array.reshape(value["shape"])
        return Tensor(name, array, datatype=value.get("datatype"))
    return np.asarray(value)


def _output_document(array: np.ndarray[Any, Any]) -> dict[str, Any]:
    if array.dtype == object:
        data = [_text(item) for item in array.reshape(-1)]
    else:
        data = array.reshape(-1).tolist()
    return {"shape": list(array.shape), "dtype": str(array.dtype), "data": data}


def _text(item: Any) -> Any:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(item).decode()}
    return item


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _cmd_validate,
    "plan": _endpoint_command(_one_plan, shows_progress=False),
    "apply": _endpoint_command(_one_apply, shows_progress=True),
    "status": _endpoint_command(_one_status, shows_progress=False),
    "destroy": _endpoint_command(_one_destroy, shows_progress=True),
    "invoke": _cmd_invoke,
    "reap": _cmd_reap,
    "terraform": _cmd_terraform,
}


def register_command(name: str, handler: Callable[[argparse.Namespace], int]) -> None:
    """Hook for commands defined in other modules."""
    _COMMANDS[name] = handler


@contextlib.contextmanager
def _interrupts_as_errors() -> Iterator[None]:
    # SIGTERM from a CI runner or Terraform should run the same cleanup as Ctrl-C.
    previous = signal.getsignal(signal.SIGTERM)

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, (SpecError, PayloadError, UnsupportedCapabilityError, _UsageError)):
        return EXIT_BAD_INPUT
    if isinstance(error, ProvisionTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, (KeyboardInterrupt, fleet.FleetCancelled)):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def _error_document(error: BaseException) -> dict[str, Any]:
    document: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for attribute in (
        "field",
        "line",
        "offset",
        "provider",
        "operation",
        "code",
        "retryable",
        "missing",
        "estimate",
        "limit",
    ):
        value = getattr(error, attribute, None)
        if value not in (None, "", {}):
            document[attribute] = value
    return document


def _message(error: BaseException) -> str:
    if isinstance(error, ProviderError) and error.code:
        return f"{error} [{error.provider} {error.operation}: {error.code}]"
    if isinstance(error, (EndpointKitError, _UsageError, fleet.FleetCancelled)):
        return str(error)
    # An unexpected error inside one fleet job: name its type, since there is no traceback to read.
    return f"{type(error).__name__}: {error}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in _message(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _build_parser()
    as_json = False
    try:
        args = parser.parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        with _interrupts_as_errors():
            return _COMMANDS[args.command](args)
    except (_UsageError, EndpointKitError) as error:
        sys.stderr.write(f"endpointkit: error: {_message(error)}\n")
        if as_json:
            sys.stdout.write(orjson.dumps(_error_document(error)).decode() + "\n")
        return _exit_code(error)
    except KeyboardInterrupt:
        sys.stderr.write("endpointkit: interrupted\n")
        return EXIT_INTERRUPTED
