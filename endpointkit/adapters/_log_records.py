"""What every target's ``logs`` shares: Triton's line timestamps, interleaving by time, ``since`` and ``tail``."""

from __future__ import annotations

import collections
import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone

from endpointkit._observations import LogRecord

__all__ = ["LineClock", "interleave", "parse_triton_time", "select"]

# Triton's default log prefix: severity, month, day, time, thread id, file:line, e.g.
# "I1205 23:09:26.123456 42 server.cc:307] ...". Its clock is UTC (gmtime_r in
# https://github.com/triton-inference-server/core/blob/main/src/logging.cc) and it writes no year.
_TRITON_PREFIX = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? ")
# --log-format=ISO8601: "2024-12-05T23:09:26Z I server.cc:307] ..."
_ISO_PREFIX = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z ")

_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


def parse_triton_time(line: str, *, now: datetime | None = None) -> datetime | None:
    """The UTC time at the start of a Triton log line, or None when the line has none.

    The default format has no year: the year is the one that puts the time no later than a day after ``now``
    (default: the current UTC time), so December lines read in January belong to the year before.
    """
    iso = _ISO_PREFIX.match(line)
    if iso is not None:
        year, month, day, hour, minute, second = (int(part) for part in iso.groups()[:6])
        return _moment(year, month, day, hour, minute, second, iso.group(7))
    glog = _TRITON_PREFIX.match(line)
    if glog is None:
        return None
    month, day, hour, minute, second = (int(part) for part in glog.groups()[:5])
    reference = now or datetime.now(timezone.utc)
    moment = _moment(reference.year, month, day, hour, minute, second, glog.group(6))
    if moment is not None and moment > reference + timedelta(days=1):
        moment = _moment(reference.year - 1, month, day, hour, minute, second, glog.group(6))
    return moment


def _moment(
    year: int, month: int, day: int, hour: int, minute: int, second: int, fraction: str | None
) -> datetime | None:
    micros = int((fraction or "0").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=timezone.utc)
    except ValueError:  # 29 February of a year without one, or a line that only looks like a prefix
        return None


class LineClock:
    """Times the lines of one replica's log: a line without its own time takes the time of the line before
    (a multi-line message, a Python backend's print), so interleaving keeps it beside its neighbours."""

    def __init__(self, variant: str, replica: str) -> None:
        self.variant = variant
        self.replica = replica
        self.last_time: datetime | None = None

    def record(self, line: str, time: datetime | None = None) -> LogRecord:
        """``line`` as a record: its own ``time`` when given, else the one it carries, else the previous one."""
        own = time if time is not None else parse_triton_time(line)
        if own is not None:
            self.last_time = own
        return LogRecord(self.last_time, self.variant, self.replica, line)


def interleave(streams: Iterable[Sequence[LogRecord]]) -> list[LogRecord]:
    """Every stream's records in one list ordered by time; each stream keeps its own order (a record without a
    time sorts first)."""
    return list(heapq.merge(*streams, key=lambda record: record.time or _EARLIEST))


def select(records: Iterable[LogRecord], *, since: datetime | None, tail: int | None) -> Iterator[LogRecord]:
    """The records at or after ``since`` (a record without a time cannot be placed: it is left out), then only
    the last ``tail`` of them."""
    kept: Iterable[LogRecord] = records
    if since is not None:
        kept = (record for record in kept if record.time is not None and record.time >= since)
    if tail is not None:
        kept = collections.deque(kept, maxlen=tail)
    return iter(kept)
