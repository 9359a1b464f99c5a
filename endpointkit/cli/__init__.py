"""The ``endpointkit`` command: validate, plan, apply, status, invoke, destroy, reap, terraform.

Exit codes (``endpointkit.errors.exit_code``): 0 success, 1 provider or runtime failure, 2 bad input (spec,
payload, usage, unknown target, unsupported capability, cost limit), 3 timeout, 130 interrupted. Expected errors
print one message, never a traceback. ``plan``, ``apply``, ``status`` and ``destroy`` take several spec files or
folders (a fleet): they run in parallel and end with one summary table, or one JSON document, and the worst exit
code.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

import orjson

from endpointkit.cli._commands import (
    _cmd_terraform,
    _cmd_validate,
    _one_apply,
    _one_destroy,
    _one_plan,
    _one_status,
)
from endpointkit.cli._errors import _error_document, _message
from endpointkit.cli._fleet import _endpoint_command
from endpointkit.cli._invoke import _cmd_invoke
from endpointkit.cli._logs import _cmd_logs
from endpointkit.cli._parser import _build_parser
from endpointkit.cli._reap import _cmd_reap
from endpointkit.cli._top import _cmd_top
from endpointkit.cli._verify import _cmd_verify

# Kept importable from here; they live in the one error tree and its exit-code mapping.
from endpointkit.errors import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from endpointkit.errors import EXIT_FAILURE as EXIT_FAILURE
from endpointkit.errors import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from endpointkit.errors import EXIT_OK as EXIT_OK
from endpointkit.errors import EXIT_TIMEOUT as EXIT_TIMEOUT
from endpointkit.errors import CostLimitExceeded as CostLimitExceeded
from endpointkit.errors import EndpointKitError, exit_code

__all__ = ["main"]


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _cmd_validate,
    "plan": _endpoint_command(_one_plan, shows_progress=False),
    "apply": _endpoint_command(_one_apply, shows_progress=True),
    "status": _endpoint_command(_one_status, shows_progress=False),
    "destroy": _endpoint_command(_one_destroy, shows_progress=True),
    "invoke": _cmd_invoke,
    "verify": _cmd_verify,
    "reap": _cmd_reap,
    "logs": _cmd_logs,
    "top": _cmd_top,
    "terraform": _cmd_terraform,
}


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that a usage error of a --json run still prints its JSON error document.
    as_json = _asks_for_json(arguments)
    detailed = _asks_for_detailed_exitcode(arguments)
    try:
        args = parser.parse_args(arguments)
        as_json = bool(getattr(args, "json", False))
        with _interrupts_as_errors():
            return _COMMANDS[args.command](args)
    except EndpointKitError as error:
        sys.stderr.write(f"endpointkit: error: {_message(error)}\n")
        if as_json:
            sys.stdout.write(orjson.dumps(_error_document(error)).decode() + "\n")
        # plan --detailed-exitcode keeps 2 for "changes": every error is 1 (Terraform's convention).
        return EXIT_FAILURE if detailed else exit_code(error)
    except KeyboardInterrupt:
        sys.stderr.write("endpointkit: interrupted\n")
        return EXIT_INTERRUPTED


def _asks_for_detailed_exitcode(arguments: Sequence[str]) -> bool:
    """Whether the command line is a ``plan`` with ``--detailed-exitcode`` (known before parsing, as ``--json``)."""
    options = list(arguments[: arguments.index("--")] if "--" in arguments else arguments)
    return "plan" in options and "--detailed-exitcode" in options


def _asks_for_json(arguments: Sequence[str]) -> bool:
    """Whether the command line has the ``--json`` option.

    argparse never takes an argument that starts with ``-`` as another option's value, so ``--json``
    anywhere before ``--`` is the option, whatever error the parse then finds.
    """
    for argument in arguments:
        if argument == "--":
            return False
        if argument == "--json":
            return True
    return False
