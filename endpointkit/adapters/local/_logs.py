"""Logs of a local endpoint: the log file each of its tritonserver processes writes (``ServerRecord.log_path``).

Read-only: the files are read from the offset reached so far, never locked or truncated. Each line's time is
Triton's own prefix; a line without one takes the time of the line before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from endpointkit._observations import LogRecord
from endpointkit.adapters._log_records import LineClock, interleave, select
from endpointkit.adapters.local._state import EndpointPaths, ServerRecord, load_record
from endpointkit.errors import NotFoundError

__all__ = ["DEFAULT_POLL_INTERVAL", "endpoint_logs"]

#: seconds between two reads of the log files while following
DEFAULT_POLL_INTERVAL = 0.5


class _LogFile:
    """One server's log file, read incrementally: only complete lines, from where the last read stopped."""

    def __init__(self, server: ServerRecord) -> None:
        self.path = Path(server.log_path)
        self.clock = LineClock(server.variant, f"pid-{server.pid}")
        self._offset = 0
        self._partial = b""

    def read_new(self, *, complete_only: bool) -> list[LogRecord]:
        """The records of the lines written since the last read; a missing file has none.

        With ``complete_only`` a last line without its newline waits for the next read (Triton is writing it).
        """
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop() if complete_only else b""
        if not complete_only and lines and lines[-1] == b"":
            lines.pop()
        return [self.clock.record(raw.decode(errors="replace").rstrip("\r")) for raw in lines if raw]


def endpoint_logs(
    paths: EndpointPaths,
    *,
    variant: str | None,
    since: datetime | None,
    tail: int | None,
    follow: bool,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> Iterator[LogRecord]:
    """The endpoint's log records, every server (or those of ``variant``) interleaved by time.

    The endpoint is looked up now, so a missing one raises here rather than at the first record. With
    ``follow`` the files are read again every ``poll_interval`` seconds, servers started since (a blue/green
    update) are picked up, and the iteration ends when the endpoint is destroyed.

    Raises:
        NotFoundError: the endpoint has no recorded server.
    """
    servers = _servers(paths, variant)
    if not servers:
        raise NotFoundError(
            f"local endpoint {paths.name!r} does not exist (no server is recorded): apply it first"
        )
    return _records(paths, servers, variant, since, tail, follow, poll_interval)


def _servers(paths: EndpointPaths, variant: str | None) -> list[ServerRecord]:
    record = load_record(paths)
    if record is None:
        return []
    return [server for server in record.servers if variant is None or server.variant == variant]


def _records(
    paths: EndpointPaths,
    servers: Sequence[ServerRecord],
    variant: str | None,
    since: datetime | None,
    tail: int | None,
    follow: bool,
    poll_interval: float,
) -> Iterator[LogRecord]:
    files = {server.log_path: _LogFile(server) for server in servers}
    first = interleave(log.read_new(complete_only=follow) for log in files.values())
    yield from select(first, since=since, tail=tail)
    while follow:
        time.sleep(poll_interval)
        record = load_record(paths)
        if record is None:
            return
        current = [server for server in record.servers if variant is None or server.variant == variant]
        for server in current:
            files.setdefault(server.log_path, _LogFile(server))
        yield from interleave(log.read_new(complete_only=True) for log in files.values())
        live = {server.log_path for server in current}
        for gone in [path for path in files if path not in live]:
            del files[gone]
