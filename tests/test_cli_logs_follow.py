"""Ctrl-C always ends ``endpointkit logs --follow``, wherever the reader happens to be."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from endpointkit import LogRecord
from endpointkit.cli._logs import _following


def test_an_interrupt_reaches_a_follow_even_where_the_reader_would_lose_it() -> None:
    """The reader stands for code where Python drops a KeyboardInterrupt (a finalizer prints and drops it).

    Iterated in the main thread, the interrupt lands there and the follow goes on until ``done`` ends it, with
    no KeyboardInterrupt; read by the follow's worker thread, the interrupt reaches the main thread, which waits.
    """
    done = threading.Event()

    def reader() -> Iterator[LogRecord]:
        while not done.is_set():
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(0.01)
        yield from ()

    # Python's own handler, whatever this process inherited: a shell runs a background job with SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    give_up = threading.Timer(30.0, done.set)
    interrupt.start()
    give_up.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in _following(reader()):
                pass
    finally:
        done.set()
        interrupt.cancel()
        give_up.cancel()
        signal.signal(signal.SIGINT, previous)


def test_a_follow_passes_on_its_records_and_the_readers_error() -> None:
    record = LogRecord(None, "primary", "pid-1", "line")

    def reader() -> Iterator[LogRecord]:
        yield record
        raise RuntimeError("the log file went away")

    received: list[LogRecord] = []
    with pytest.raises(RuntimeError, match="went away"):
        for item in _following(reader()):
            received.append(item)

    assert received == [record]
