"""One bounded waiter with progress callbacks, used by every adapter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from endpointkit.errors import ProvisionTimeout

__all__ = ["Progress", "ProgressEvent", "wait_for"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What a wait reports while it runs: the subject, its last status text and the seconds elapsed."""

    subject: str
    status: str
    elapsed: float
    timeout: float


Progress = Callable[[ProgressEvent], None]


def wait_for(
    poll: Callable[[], T],
    *,
    done: Callable[[T], bool],
    failure: Callable[[T], Exception | None] = lambda _: None,
    describe: Callable[[T], str] = str,
    subject: str,
    timeout: float,
    progress: Progress | None = None,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
    factor: float = 2.0,
    last_state: Callable[[T], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Poll until ``done``; raise at once when ``failure`` returns a reason; never wait past ``timeout``.

    Polls immediately, then after ``first_delay`` seconds, growing by ``factor`` up to ``max_delay``; the last
    sleep is cut so the total never exceeds ``timeout``.

    Raises:
        ProvisionTimeout: ``timeout`` passed; carries ``last_state(value)`` of the last poll.
        The exception ``failure`` returns, as soon as it returns one (a Failed endpoint ends the wait at once).
    """
    start = clock()
    delay = first_delay
    while True:
        value = poll()
        elapsed = clock() - start
        if progress is not None:
            progress(ProgressEvent(subject=subject, status=describe(value), elapsed=elapsed, timeout=timeout))
        if done(value):
            return value
        error = failure(value)
        if error is not None:
            raise error
        remaining = timeout - elapsed
        if remaining <= 0:
            observed = last_state(value) if last_state is not None else None
            raise ProvisionTimeout(
                f"{subject} did not finish within {_human(timeout)}; last status: {describe(value)}",
                last_state=observed,  # type: ignore[arg-type]
            )
        sleep(min(delay, remaining))
        delay = min(delay * factor, max_delay)


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
