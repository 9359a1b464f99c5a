"""The reap command: destroy the expired endpoints on one target, a status line per endpoint."""

from __future__ import annotations

import argparse
import sys

from endpointkit import EndpointState, _api
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.cli._errors import _one_line
from endpointkit.cli._output import _emit
from endpointkit.errors import EXIT_OK, exit_code
from endpointkit.fleet import FleetBoard


def _cmd_reap(args: argparse.Namespace) -> int:
    board = FleetBoard([], sys.stderr)
    try:
        report = _api.reap(
            args.spec, args.target, region=args.region, dry_run=args.dry_run, progress=_EndpointLines(board)
        )
    finally:
        board.finish()
    _emit(args, report.to_dict(), str(report))
    for outcome in report.failed:
        sys.stderr.write(f"endpointkit: error: could not destroy {outcome.state.name}: {outcome.error}\n")
    return max((exit_code(o.error) for o in report.failed if o.error is not None), default=EXIT_OK)


class _EndpointLines:
    """Reap's progress on a board: each endpoint it destroys gets its own status line.

    On a terminal the second deletion must not overwrite the first one's line.
    """

    def __init__(self, board: FleetBoard) -> None:
        self._board = board
        self._lines: dict[str, int] = {}

    def started(self, state: EndpointState) -> Progress:
        index = self._lines[state.name] = self._board.add(state.name, "destroying")

        def show(event: ProgressEvent) -> None:
            self._board.progress(index, event)

        return show

    def finished(self, state: EndpointState, error: Exception | None) -> None:
        text = "destroyed" if error is None else f"failed: {_one_line(error)}"
        self._board.update(self._lines[state.name], text)
