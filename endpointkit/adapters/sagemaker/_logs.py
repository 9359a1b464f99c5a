"""Logs of a SageMaker endpoint: CloudWatch Logs group ``/aws/sagemaker/Endpoints/NAME``, every instance stream.

SageMaker names each stream ``VARIANT/INSTANCE-ID`` ("Log Amazon SageMaker events with Amazon CloudWatch",
https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html), so a variant's lines are those of the
streams with its name as prefix. ``FilterLogEvents`` reads every stream at once, a page per call, ``nextToken``
to the next page. Calls go through the adapter's client factory and ``Caller`` (mapped errors, bounded retries).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from endpointkit._observations import LogRecord
from endpointkit.adapters._log_records import select
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.errors import NotFoundError

__all__ = ["DEFAULT_POLL_INTERVAL", "FAILURE_LOG_LINES", "CloudWatchLogs", "log_group"]

logger = logging.getLogger("endpointkit.adapters.sagemaker")

#: seconds between two FilterLogEvents polls while following
DEFAULT_POLL_INTERVAL = 5.0
#: how many of the last lines a Failed endpoint's error carries
FAILURE_LOG_LINES = 20
# A failed create is recent: its lines are in this window, and a failure report never reads a whole group.
_FAILURE_WINDOW = timedelta(hours=2)
_FAILURE_MAX_PAGES = 10

Event = dict[str, Any]


def log_group(endpoint: str) -> str:
    """The CloudWatch Logs group SageMaker writes an endpoint's container output to."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _record(event: Event) -> LogRecord:
    stream = str(event.get("logStreamName", ""))
    variant, _, instance = stream.partition("/")
    moment = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, tz=timezone.utc)
    return LogRecord(moment, variant, instance or stream, str(event.get("message", "")).rstrip("\n"))


class CloudWatchLogs:
    """Reads an endpoint's log events. ``client`` returns the ``logs`` client; ``sleep`` paces a follow."""

    def __init__(
        self,
        client: Callable[[], Any],
        caller: Caller,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        page_size: int | None = None,
    ) -> None:
        self._client = client
        self._caller = caller
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._page_size = page_size

    def records(
        self,
        endpoint: str,
        *,
        variant: str | None,
        since: datetime | None,
        tail: int | None,
        follow: bool,
    ) -> Iterator[LogRecord]:
        """The endpoint's records in time order; the first page is read now, so a missing group raises here.

        Raises:
            NotFoundError: the log group does not exist (the endpoint never started, or its role cannot write
                logs).
        """
        start = None if since is None else _millis(since)
        pages = self._pages(endpoint, variant, start)
        first = next(pages)
        return self._stream(endpoint, variant, first, pages, since=since, tail=tail, follow=follow)

    def last_lines(self, endpoint: str, count: int = FAILURE_LOG_LINES) -> list[str]:
        """The last ``count`` lines of the endpoint's recent output, ``[]`` when they cannot be read.

        Best effort, for the error of a Failed endpoint: a missing group or a denied call is logged and must not
        hide SageMaker's FailureReason.
        """
        start = _millis(datetime.now(timezone.utc) - _FAILURE_WINDOW)
        kept: collections.deque[Event] = collections.deque(maxlen=count)
        try:
            for number, page in enumerate(self._pages(endpoint, None, start)):
                kept.extend(page)
                if number + 1 >= _FAILURE_MAX_PAGES:
                    break
        except Exception as error:
            # Any failure here (a client that cannot be made, a denied call, a missing group) must leave the
            # error that SageMaker's FailureReason makes untouched.
            logger.info("no CloudWatch lines for failed endpoint %s: %s", endpoint, error)
            return []
        ordered = sorted(kept, key=lambda event: int(event.get("timestamp", 0)))
        return [f"{record.variant}/{record.replica}: {record.line}" for record in map(_record, ordered)]

    def _stream(
        self,
        endpoint: str,
        variant: str | None,
        first: list[Event],
        rest: Iterator[list[Event]],
        *,
        since: datetime | None,
        tail: int | None,
        follow: bool,
    ) -> Iterator[LogRecord]:
        events = [*first, *(event for page in rest for event in page)]
        events.sort(key=lambda event: int(event.get("timestamp", 0)))
        yield from select(map(_record, events), since=since, tail=tail)
        if not follow:
            return
        # Resume at the last event's millisecond: events of that millisecond already shown are skipped by id.
        last = int(events[-1]["timestamp"]) if events else _millis(since or datetime.now(timezone.utc))
        seen = {event.get("eventId") for event in events if int(event.get("timestamp", 0)) == last}
        while True:
            self._sleep(self._poll_interval)
            fresh = [
                event
                for page in self._pages(endpoint, variant, last)
                for event in page
                if event.get("eventId") not in seen
            ]
            fresh.sort(key=lambda event: int(event.get("timestamp", 0)))
            for event in fresh:
                if int(event["timestamp"]) > last:
                    last, seen = int(event["timestamp"]), set()
                seen.add(event.get("eventId"))
                yield _record(event)

    def _pages(self, endpoint: str, variant: str | None, start: int | None) -> Iterator[list[Event]]:
        """One list of events per FilterLogEvents page, every stream (or the variant's), from ``start`` (ms)."""
        group = log_group(endpoint)
        params: dict[str, Any] = {"logGroupName": group}
        if variant is not None:
            params["logStreamNamePrefix"] = f"{variant}/"
        if start is not None:
            params["startTime"] = start
        if self._page_size is not None:
            params["limit"] = self._page_size
        while True:
            try:
                page = self._caller.call(self._client(), "filter_log_events", f"log group {group}", **params)
            except NotFoundError as missing:
                raise NotFoundError(
                    f"SageMaker endpoint {endpoint} has no log group {group}: the endpoint never started, or its "
                    "execution role cannot write logs (it needs logs:CreateLogStream and logs:PutLogEvents)",
                    provider=missing.provider,
                    operation=missing.operation,
                    code=missing.code,
                ) from missing
            yield list(page.get("events", ()))
            token = page.get("nextToken")
            if not token or token == params.get("nextToken"):
                return
            params["nextToken"] = token
