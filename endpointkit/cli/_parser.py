"""The command line: the argument parser and its help texts."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NoReturn, TypeAlias

from endpointkit import fleet
from endpointkit.errors import UsageError
from endpointkit.invoke import TRANSPORTS
from endpointkit.spec import parse_duration


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


# What add_subparsers() returns: argparse gives the type no public name.
_Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


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


def _positive_int(text: str) -> int:
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, e.g. 30") from None
    if not (value > 0 and math.isfinite(value)):  # 0 or less would time out before the request is sent
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a duration above 0, such as 30s or 5m")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="endpointkit",
        description="Provision NVIDIA Triton endpoints on a local Triton, SageMaker or AKS from one spec.",
    )
    parser.add_argument("--version", action="version", version=f"endpointkit {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_endpoint_commands(commands)
    _add_invoke_command(commands)
    _add_verify_command(commands)
    _add_reap_command(commands)
    _add_logs_command(commands)
    _add_top_command(commands)
    _add_terraform_command(commands)
    return parser


def _add_spec_command(
    commands: _Commands,
    name: str,
    help_text: str,
    *,
    fleet_capable: bool = False,
    json_help: str = "print one JSON document on stdout",
) -> argparse.ArgumentParser:
    """A command on one spec file, or (``fleet_capable``) on several files or folders run in parallel."""
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
            type=_positive_int,
            default=fleet.DEFAULT_PARALLEL,
            metavar="N",
            help=f"fleets: how many specs at a time (default {fleet.DEFAULT_PARALLEL})",
        )
    else:
        command.add_argument("spec", help="the spec file (YAML)")
    command.add_argument("--target", help="which of the spec's targets (needed when it has several)")
    command.add_argument("--json", action="store_true", help=json_help)
    return command


def _add_endpoint_commands(commands: _Commands) -> None:
    """validate, and the commands that take a fleet: plan, apply, status, destroy."""
    _add_spec_command(
        commands,
        "validate",
        "Check a spec, its model repository, and what each target's adapter refuses before any cloud call "
        "(a SageMaker instance type, a capability the target lacks); touches no target.",
    )
    plan = _add_spec_command(
        commands,
        "plan",
        "Show what apply would change and its estimated hourly cost. Read-only.",
        fleet_capable=True,
    )
    plan.add_argument("--dry-run", action="store_true", help="plan against an empty in-memory target")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would change, 2 when something would (drift included), 1 on any error, bad "
        "input included (Terraform's convention); a fleet exits 1 if any spec failed, else 2 if any has changes",
    )
    apply = _add_spec_command(
        commands, "apply", "Create or update the endpoint and wait until it serves.", fleet_capable=True
    )
    apply.add_argument("--dry-run", action="store_true", help="apply to an in-memory target: no real call")
    apply.add_argument(
        "--max-hourly-cost",
        type=_usd,
        metavar="USD",
        help="refuse, before any call, to apply an endpoint whose estimated on-demand cost per hour is above "
        "USD, or unknown (checked per endpoint in a fleet)",
    )
    apply.add_argument(
        "--record-checks",
        action="store_true",
        help="make the new version the reference: write the verify checks' expect files from its answers "
        "instead of comparing (how the first version gets them); the other checks still run",
    )
    apply.add_argument(
        "--no-rehearse",
        dest="rehearse",
        action="store_false",
        help="SageMaker: skip running the verify checks on the exact model.tar.gz on a local tritonserver "
        "before any SageMaker call",
    )
    status = _add_spec_command(
        commands,
        "status",
        "Show the endpoint's state and time left before its ttl. Read-only.",
        fleet_capable=True,
    )
    _add_metrics_options(status)
    destroy = _add_spec_command(
        commands, "destroy", "Delete the endpoint, its config and its model. Idempotent.", fleet_capable=True
    )
    destroy.add_argument(
        "--purge-artifacts", action="store_true", help="also delete uploaded model archives (SageMaker)"
    )


def _add_invoke_command(commands: _Commands) -> None:
    invoke = _add_spec_command(commands, "invoke", "Send one inference request and print the outputs.")
    invoke.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="an input tensor, once per name: a .npy file, a .json file (a nested list, or {data, datatype, "
        "shape}), or any other file sent as raw UINT8 bytes",
    )
    invoke.add_argument(
        "--output", action="append", default=[], metavar="NAME", help="request only these outputs"
    )
    invoke.add_argument("--model", help="the Triton model to call (default: the repository's default model)")
    invoke.add_argument(
        "--classes",
        type=_positive_int,
        metavar="N",
        help="ask Triton's classification extension for the top N classes of each output (or of the --output "
        "ones) and print them as ranked labels",
    )
    invoke.add_argument(
        "--batch",
        action="store_true",
        help="add a leading batch dimension of 1 to every input. Without it one is added where the model's "
        "config.pbtxt (in the spec's local repository) batches and the input has the declared rank; use --batch "
        "when the repository is already in cloud storage",
    )
    payload = invoke.add_mutually_exclusive_group()
    payload.add_argument("--binary", dest="binary", action="store_const", const=True, help="send binary+json")
    payload.add_argument("--json-payload", dest="binary", action="store_const", const=False, help="send JSON")
    invoke.add_argument(
        "--output-dir", type=Path, help="write each output as NAME.npy here instead of printing it"
    )
    invoke.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds for the request (more than 0)",
    )
    invoke.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=None,
        help="http (Triton's v2 HTTP API, or SageMaker's runtime) or grpc (local and AKS targets); "
        "default: the target's transport setting, else http",
    )
    invoke.add_argument(
        "--stream",
        action="store_true",
        help="send the request on a gRPC stream and print each response as it arrives (decoupled models; "
        "with --json one JSON document per line)",
    )


def _add_verify_command(commands: _Commands) -> None:
    verify = _add_spec_command(
        commands,
        "verify",
        "Run the spec's verify checks against the serving endpoint: expected outputs within rtol/atol, p99 "
        "latency under max_p99, python checks. A line per check; exit 1 when one fails.",
    )
    verify.add_argument(
        "--record",
        action="store_true",
        help="write each check's expect files (.npy or .json) from what the endpoint answers now, instead of "
        "comparing",
    )


def _add_reap_command(commands: _Commands) -> None:
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


def _add_logs_command(commands: _Commands) -> None:
    logs = _add_spec_command(
        commands,
        "logs",
        "Print the endpoint's log lines, every replica interleaved by time: TIME VARIANT/REPLICA LINE. Read-only.",
        json_help="print one JSON record per line on stdout",
    )
    logs.add_argument("--variant", help="only this variant's replicas")
    logs.add_argument("--since", metavar="DURATION", help="only lines written in the last DURATION, e.g. 10m")
    logs.add_argument("--tail", type=_positive_int, metavar="N", help="only the last N lines")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument(
        "--previous", action="store_true", help="AKS: also the logs of restarted containers (their last run)"
    )


def _add_metrics_options(command: argparse.ArgumentParser, *, always: bool = False) -> None:
    """``--window`` (and, unless the command always shows metrics, ``--metrics``)."""
    if not always:
        command.add_argument(
            "--metrics",
            action="store_true",
            help="add live traffic per variant: requests, failures, p50/p99 latency, queue time",
        )
    command.add_argument(
        "--window",
        type=_duration,
        default=300.0,
        metavar="DURATION",
        help="the span the metrics cover, e.g. 5m (default); Triton targets report their counters since start",
    )


def _add_top_command(commands: _Commands) -> None:
    top = commands.add_parser(
        "top",
        help="Redraw live traffic per variant of one or many endpoints every few seconds, until Ctrl-C.",
        description="Redraw live traffic per variant of one or many endpoints every few seconds, until Ctrl-C.",
    )
    top.add_argument("spec", nargs="+", help="spec files (YAML), or folders of them")
    top.add_argument("--target", help="which of each spec's targets (needed when one has several)")
    _add_metrics_options(top, always=True)
    top.add_argument(
        "--interval",
        type=_duration,
        default=5.0,
        metavar="DURATION",
        help="time between redraws (default 5s)",
    )
    top.add_argument(
        "--iterations", type=_positive_int, metavar="N", help="stop after N redraws (default: until Ctrl-C)"
    )
    top.add_argument(
        "--parallel",
        type=_positive_int,
        default=fleet.DEFAULT_PARALLEL,
        metavar="N",
        help=f"how many endpoints are read at a time (default {fleet.DEFAULT_PARALLEL})",
    )


def _add_terraform_command(commands: _Commands) -> None:
    terraform = commands.add_parser(
        "terraform",
        help="The program of Terraform's external data source (JSON on stdin and stdout).",
        description=_TERRAFORM_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    terraform.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the answer is always one JSON object"
    )


def _version() -> str:
    from endpointkit import __version__  # here, not at the top: endpointkit imports this module

    return __version__
