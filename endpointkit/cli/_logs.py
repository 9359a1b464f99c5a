"""The logs command: an endpoint's log lines, every replica interleaved by time, as text or one JSON record a line."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from queue import Queue

import orjson

from endpointkit import LogRecord, _api
from endpointkit.errors import EXIT_OK, UsageError
from endpointkit.spec import parse_duration

__all__ = ["_cmd_logs"]

# Records a follow reads ahead of what the terminal has printed.
_QUEUED_RECORDS = 1024


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
        for record in _following(records) if args.follow else records:
            sys.stdout.write(_json_line(record) if args.json else _human_line(record))
            if args.follow:
                sys.stdout.flush()
    return EXIT_OK


def _following(records: Iterator[LogRecord]) -> Iterator[LogRecord]:
    """The records of a follow, read by a worker thread while this one only waits for them.

    Ctrl-C raises KeyboardInterrupt wherever the main thread is: inside the reader's own code it can land in a
    finalizer, where Python prints and drops it, and the follow would go on polling. Waiting on a queue, the
    main thread always takes it. The reader is a daemon thread: it ends with the process.
    """
    queue: Queue[tuple[bool, LogRecord | BaseException | None]] = Queue(maxsize=_QUEUED_RECORDS)

    def read() -> None:
        try:
            for record in records:
                queue.put((True, record))
            queue.put((False, None))
        except BaseException as error:  # handed to the main thread, which raises it
            queue.put((False, error))

    threading.Thread(target=read, name="endpointkit-logs-follow", daemon=True).start()
    while True:
        is_record, item = queue.get()
        if is_record:
            assert isinstance(item, LogRecord)
            yield item
        elif item is None:
            return
        else:
            assert isinstance(item, BaseException)
            raise item


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
