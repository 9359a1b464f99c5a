"""A bounded pool of threads that runs the adapter's blocking AWS calls for coroutines."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["BlockingCallExecutor"]

T = TypeVar("T")


class BlockingCallExecutor:
    """Runs blocking calls on at most ``max_workers`` threads, made on first use and again after a shutdown.

    Calls beyond ``max_workers`` wait in line. Cancelling the awaiting task drops a call still in line (it never
    runs, unless a thread took it before the cancellation reached the executor, on the loop's next iteration)
    and abandons one already running: its thread finishes the call, which returns its connection to the
    client's pool, and the result is dropped. So a cancellation never leaves a half-used connection behind.

    Args:
        max_workers: the most calls running at once.
        thread_name_prefix: names the threads (``endpointkit-sagemaker_0``, ...) in thread dumps.
    """

    def __init__(self, max_workers: int, *, thread_name_prefix: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, call: Callable[[], T]) -> T:
        """Run ``call()`` on a pool thread and return its result; its exception is raised here."""
        with self._lock:  # a shutdown from another thread cannot come between making the pool and submitting
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_workers, self._thread_name_prefix)
            future = self._executor.submit(call)
        # wrap_future cancels ``future`` when the awaiting task is cancelled: a queued call is then never run.
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Drop the calls in line and wait for the running ones to finish. Blocks; the executor stays usable."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
