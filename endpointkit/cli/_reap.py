"""The reap command: destroy the expired endpoints on one target."""

from __future__ import annotations

import argparse
import os
import sys

from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.base import EndpointState, ReapableAdapter
from endpointkit.cli._errors import EXIT_OK, _exit_code, _one_line, _UsageError
from endpointkit.cli._output import _emit
from endpointkit.fleet import FleetBoard
from endpointkit.provisioners.reap import reap


def _cmd_reap(args: argparse.Namespace) -> int:
    adapter = _reap_adapter(args)
    board = FleetBoard([], sys.stderr)
    try:
        # A line per endpoint: on a terminal the second deletion must not overwrite the first one's line.
        shown = _EndpointLines(adapter, board) if isinstance(adapter, ReapableAdapter) else adapter
        report = reap(shown, dry_run=args.dry_run)
    finally:
        board.finish()
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    _emit(args, report.to_dict(), str(report))
    for outcome in report.failed:
        sys.stderr.write(f"endpointkit: error: could not destroy {outcome.state.name}: {outcome.error}\n")
    return max((_exit_code(o.error) for o in report.failed if o.error is not None), default=EXIT_OK)


class _EndpointLines:
    """A reapable adapter seen through a board: each endpoint it destroys gets its own status line."""

    def __init__(self, adapter: ReapableAdapter, board: FleetBoard) -> None:
        self._adapter = adapter
        self._board = board
        # reap() names the target in its report from these
        self.kind = str(getattr(adapter, "kind", type(adapter).__name__))
        self.target_name = str(getattr(adapter, "target_name", self.kind))

    def list_endpoints(self) -> list[EndpointState]:
        return self._adapter.list_endpoints()

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        index = self._board.add(state.name, "destroying")

        def show(event: ProgressEvent) -> None:
            self._board.progress(index, event)
            if progress is not None:
                progress(event)

        try:
            self._adapter.destroy_by_state(state, progress=show)
        except Exception as error:
            self._board.update(index, f"failed: {_one_line(error)}")
            raise
        self._board.update(index, "destroyed")


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
