"""The logs command: an endpoint's log lines, every replica interleaved by time, as text or one JSON record a line."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone

import orjson

from endpointkit import LogRecord, _api
from endpointkit.errors import EXIT_OK, UsageError
from endpointkit.spec import parse_duration

__all__ = ["_cmd_logs"]


def _cmd_logs(args: argparse.Namespace) -> int:
    """Print the records as they come (a follow runs until Ctrl-C, which ``main`` turns into exit 130)."""
    records = _api.logs(
        args.spec,
        args.target,
        variant=args.variant,
        since=_since(args.since),
        tail=args.tail,
        follow=args.follow,
        previous=args.previous,
    )
    with records:
        for record in records:
            sys.stdout.write(_json_line(record) if args.json else _human_line(record))
            if args.follow:
                sys.stdout.flush()
    return EXIT_OK


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise UsageError(f"--since: {error}") from None
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def _human_line(record: LogRecord) -> str:
    moment = "-" if record.time is None else record.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{moment} {record.variant}/{record.replica} {record.line}\n"


def _json_line(record: LogRecord) -> str:
    return orjson.dumps(record.to_dict()).decode() + "\n"
