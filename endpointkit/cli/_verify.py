"""The verify command: run the spec's ``verify`` checks against the serving endpoint, or record their expectations.

Each check prints a line as it ends (``NAME  passed  DETAIL``), then the total. A failed check stops the run: the
error names it (exit 1); a bad spec or file is bad input (exit 2).
"""

from __future__ import annotations

import argparse
import sys

from endpointkit import VerificationReport, _api
from endpointkit._wait import ProgressEvent
from endpointkit.cli._output import _emit
from endpointkit.errors import EXIT_OK

_CHECK_MARK = ": check "


def _cmd_verify(args: argparse.Namespace) -> int:
    progress = None if args.json else _print_check
    report = _api.verify(args.spec, args.target, record=args.record, progress=progress)
    _emit(args, report.to_dict(), _summary(report, recorded=args.record))
    return EXIT_OK


def _print_check(event: ProgressEvent) -> None:
    """One line per check as it ends: its name, its verdict (passed, failed, recorded) and the detail."""
    name = event.subject.rpartition(_CHECK_MARK)[2] or event.subject
    verdict, _, detail = event.status.partition(": ")
    sys.stdout.write(f"{name}  {verdict}  {detail}\n")
    sys.stdout.flush()


def _summary(report: VerificationReport, *, recorded: bool) -> str:
    count = len(report.results)
    checks = f"{count} check{'s' if count != 1 else ''}"
    if recorded:
        files = len(report.written)
        return (
            f"recorded {checks} from {report.subject}: {files} file{'s' if files != 1 else ''} written "
            f"in {report.seconds:.2f}s"
        )
    return f"{checks} passed on {report.subject} in {report.seconds:.2f}s"
