"""Fleets: one command over many spec files, run in parallel with a bound, one failure never stopping the others.

``discover_specs`` turns the command line's paths (files and folders of ``*.yaml`` / ``*.yml``) into spec files,
keeping a folder without any as a failed entry (``find_specs`` raises for it instead);
``run_fleet`` runs one job per item on a ``ThreadPoolExecutor`` of ``parallel`` workers and returns one
``FleetResult`` per item, in input order; ``FleetBoard`` shows a live line per item on a terminal.

Ctrl-C (or SIGTERM through the CLI) cancels the jobs not started yet and asks the running ones to stop: the
next progress event of a running job raises ``FleetCancelled`` inside it, so ``apply`` rolls back what it
created, exactly as it does for a single spec. A job that reports no progress runs to its end. An interrupt
whose ``KeyboardInterrupt`` Python loses (raised inside a finalizer the main thread happened to run) still
cancels the fleet: ``run_fleet`` records every interrupt its signal handlers raise and raises it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TextIO, TypeVar

from endpointkit._wait import Progress, ProgressEvent
from endpointkit.errors import FleetCancelled, SpecError

__all__ = [
    "DEFAULT_PARALLEL",
    "FleetBoard",
    "FleetCancelled",
    "FleetResult",
    "FoundSpec",
    "discover_specs",
    "find_specs",
    "is_fleet",
    "render_table",
    "run_fleet",
]

DEFAULT_PARALLEL = 4
SPEC_SUFFIXES = (".yaml", ".yml")
# Ctrl-C, and SIGTERM where the CLI turns it into KeyboardInterrupt.
_INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def is_fleet(paths: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether the command line names a fleet: several paths, or a folder."""
    return len(paths) != 1 or Path(paths[0]).is_dir()


@dataclass(frozen=True)
class FoundSpec:
    """One entry of a fleet's command line: a spec file, or a folder that holds none (``error`` set)."""

    path: Path
    error: SpecError | None = None


def discover_specs(paths: Sequence[str | os.PathLike[str]]) -> list[FoundSpec]:
    """Spec files from files and folders, with a folder that holds no spec file kept as a failed entry.

    Like :func:`find_specs`, but an empty folder does not stop the others: it becomes one ``FoundSpec`` whose
    ``error`` says so, at its place on the command line, so a fleet reports it with the other failures.
    """
    found: list[FoundSpec] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(
                child for child in path.iterdir() if child.suffix in SPEC_SUFFIXES and child.is_file()
            )
            if not inside:
                found.append(FoundSpec(path, SpecError(f"{path} holds no spec file (*.yaml or *.yml)")))
            found.extend(FoundSpec(child) for child in inside)
        else:
            found.append(FoundSpec(path))
    unique: dict[Path, FoundSpec] = {}
    for entry in found:
        unique.setdefault(entry.path, entry)
    return list(unique.values())


def find_specs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Spec files from files and folders: a folder gives its ``*.yaml`` and ``*.yml`` files (not recursive).

    Order is the command line's, then sorted by name inside each folder; a file named twice is kept once. A
    path that does not exist is kept, so that loading it reports the error for that spec alone.

    Raises:
        SpecError: a folder holds no spec file (:func:`discover_specs` reports it as an entry instead).
    """
    entries = discover_specs(paths)
    for entry in entries:
        if entry.error is not None:
            raise entry.error
    return [entry.path for entry in entries]


@dataclass(frozen=True)
class FleetResult(Generic[ItemT, ResultT]):
    """One job's outcome: its ``value`` or the ``error`` it raised, and how long it ran."""

    index: int
    item: ItemT
    value: ResultT | None = None
    error: BaseException | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_fleet(
    items: Sequence[ItemT],
    job: Callable[[ItemT, Progress], ResultT],
    *,
    parallel: int = DEFAULT_PARALLEL,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[FleetResult[ItemT, ResultT]], None] | None = None,
    on_progress: Callable[[int, ProgressEvent], None] | None = None,
) -> list[FleetResult[ItemT, ResultT]]:
    """Run ``job(item, progress)`` for every item, at most ``parallel`` at a time; blocks until all end.

    Every exception a job raises is caught into its result; one failure does not stop the others. The
    callbacks run on worker threads (``on_done`` for a job that never started runs on the caller's thread).

    Raises:
        ValueError: ``parallel`` is below 1.
        KeyboardInterrupt: after the jobs that had started have unwound (see the module docstring).
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    cancelled = threading.Event()
    running = _Running()
    results: list[FleetResult[ItemT, ResultT] | None] = [None] * len(items)

    def run(index: int, item: ItemT) -> FleetResult[ItemT, ResultT]:
        with running:
            return run_one(index, item)

    def run_one(index: int, item: ItemT) -> FleetResult[ItemT, ResultT]:
        def progress(event: ProgressEvent) -> None:
            if cancelled.is_set():
                raise FleetCancelled("interrupted")
            if on_progress is not None:
                on_progress(index, event)

        start = time.monotonic()
        if cancelled.is_set():
            result: FleetResult[ItemT, ResultT] = FleetResult(
                index, item, error=FleetCancelled("interrupted")
            )
        else:
            if on_start is not None:
                on_start(index)
            try:
                result = FleetResult(index, item, job(item, progress), elapsed=time.monotonic() - start)
            except BaseException as error:  # a job's failure is its result, not the fleet's
                result = FleetResult(index, item, error=error, elapsed=time.monotonic() - start)
        results[index] = result
        if on_done is not None:
            on_done(result)
        return result

    executor = ThreadPoolExecutor(max_workers=min(parallel, max(1, len(items))), thread_name_prefix="fleet")
    with _recording_interrupts() as interrupted:
        try:
            futures: list[Future[FleetResult[ItemT, ResultT]]] = [
                executor.submit(run, index, item) for index, item in enumerate(items)
            ]
            _wait_all(futures, interrupted)
        except BaseException:
            cancelled.set()
            executor.shutdown(wait=False, cancel_futures=True)
            # Not shutdown(wait=True): an interrupt inside submit() can leave a started thread the executor
            # does not know of yet; counting the jobs themselves waits for every one that runs.
            running.wait_idle()
            raise
    executor.shutdown(wait=True)
    return [
        result if result is not None else FleetResult(index, items[index], error=FleetCancelled("not run"))
        for index, result in enumerate(results)
    ]


def _wait_all(futures: Sequence[Future[Any]], interrupted: threading.Event) -> None:
    """Block until every future is done; raise ``KeyboardInterrupt`` for an interrupt that was recorded but lost."""
    pending = set(futures)
    while pending:
        # The timeout keeps the main thread responsive to Ctrl-C, and brings it back to look at ``interrupted``.
        _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        if interrupted.is_set():
            raise KeyboardInterrupt


@contextlib.contextmanager
def _recording_interrupts() -> Iterator[threading.Event]:
    """Yield an event that is set whenever a SIGINT or SIGTERM handler raises ``KeyboardInterrupt`` meanwhile.

    Python runs a signal handler in the main thread at whatever bytecode it reaches next, and an exception
    raised inside a finalizer there (a ``__del__``, a weakref callback, run by the garbage collector) is printed
    and dropped: https://docs.python.org/3/reference/datamodel.html#object.__del__ and
    https://docs.python.org/3/library/signal.html#note-on-signal-handlers-and-exceptions. The event keeps such
    an interrupt for the waiting loop. Each handler is wrapped, not replaced, so it still decides what a signal
    does; a signal without a Python handler, or a fleet run outside the main thread, is left alone.
    """
    interrupted = threading.Event()
    wrapped: list[tuple[signal.Signals, Callable[[int, FrameType | None], Any], Any]] = []
    if threading.current_thread() is threading.main_thread():
        for signum in _INTERRUPTING_SIGNALS:
            previous = signal.getsignal(signum)
            if callable(previous):
                recorder = _recorder(previous, interrupted)
                signal.signal(signum, recorder)
                wrapped.append((signum, recorder, previous))
    try:
        yield interrupted
    finally:
        for signum, recorder, previous in reversed(wrapped):
            if signal.getsignal(signum) is recorder:  # a handler set by someone else since then stays
                signal.signal(signum, previous)


def _recorder(
    handler: Callable[[int, FrameType | None], Any], interrupted: threading.Event
) -> Callable[[int, FrameType | None], Any]:
    def record(signum: int, frame: FrameType | None) -> Any:
        try:
            return handler(signum, frame)
        except KeyboardInterrupt:
            interrupted.set()
            raise

    return record


class _Running:
    """How many jobs are inside their body; ``wait_idle`` blocks until none is."""

    def __init__(self) -> None:
        self._count = 0
        self._condition = threading.Condition()

    def __enter__(self) -> None:
        with self._condition:
            self._count += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._condition:
            self._count -= 1
            self._condition.notify_all()

    def wait_idle(self) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._count == 0)


class FleetBoard:
    """One status line per fleet item on ``stream``.

    On a terminal every line is redrawn in place (ANSI cursor moves) whenever one changes. Otherwise a plain
    line is written when an item's status changes; for a wait's progress that means its subject or status,
    not the elapsed seconds (which change on every poll), plus one line every ``PLAIN_HEARTBEAT`` seconds
    while it stays the same so a log shows the wait is alive. Items can be added while the board is shown.
    Thread-safe: workers update it concurrently.

    Args:
        labels: the items, one line each, in order.
        stream: where the lines go (stderr in the CLI).
        live: redraw in place (True) or write plain lines (False); None: redraw when ``stream`` is a terminal
            tall enough for every line.
        clock: seconds, for the plain heartbeat (tests pass a fake one).
    """

    PLAIN_HEARTBEAT = 30.0

    def __init__(
        self,
        labels: Sequence[str],
        stream: TextIO,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self._clock = clock
        self._auto_live = live is None
        self.live = stream.isatty() if live is None else live
        self.labels: list[str] = []
        self.texts: list[str] = []
        self.width = 0
        self._keys: list[object] = []
        self._written_at: list[float] = []
        self._shown: set[int] = set()
        self._lock = threading.Lock()
        self._drawn_lines = 0
        for label in labels:
            self._append(label)
        self._fit_terminal()

    def add(self, label: str, text: str = "queued") -> int:
        """Add an item (shown at once) and return its index."""
        with self._lock:
            index = self._append(label)
            self._fit_terminal()
        self.update(index, text)
        return index

    def update(self, index: int, text: str, *, key: object = None) -> None:
        """Set item ``index``'s status text and show it.

        ``key`` is what counts as a change for plain lines (default: the text itself).
        """
        change_key = text if key is None else key
        with self._lock:
            if self.texts[index] == text and index in self._shown:
                return
            self.texts[index] = text
            first = index not in self._shown
            self._shown.add(index)
            if self.live:
                self._redraw()
                return
            now = self._clock()
            if (
                first
                or change_key != self._keys[index]
                or now - self._written_at[index] >= self.PLAIN_HEARTBEAT
            ):
                self.stream.write(f"{self.labels[index]}: {text}\n")
                self.stream.flush()
                self._keys[index], self._written_at[index] = change_key, now

    def progress(self, index: int, event: ProgressEvent) -> None:
        """Show a wait's progress event for item ``index``."""
        self.update(
            index,
            f"{event.subject}: {event.status} ({event.elapsed:.0f}s / {event.timeout:.0f}s)",
            key=("progress", event.subject, event.status),
        )

    def finish(self) -> None:
        """Leave the board as it is and the cursor below it."""
        with self._lock:
            self.stream.flush()

    def _append(self, label: str) -> int:
        self.labels.append(label)
        self.texts.append("queued")
        self._keys.append(None)
        self._written_at.append(0.0)
        self.width = max(self.width, len(label))
        return len(self.labels) - 1

    def _fit_terminal(self) -> None:
        if self._auto_live and self.live and len(self.labels) >= _terminal_size(self.stream).lines:
            self.live = False  # cursor moves cannot reach lines scrolled off the top of the screen

    def _redraw(self) -> None:
        # A width cut keeps each item on one terminal row, so moving up the rows drawn last lands on the first.
        columns = _terminal_size(self.stream).columns
        out = [f"\033[{self._drawn_lines}A"] if self._drawn_lines else []
        for label, text in zip(self.labels, self.texts, strict=True):
            line = f"{label:<{self.width}}  {text}"
            out.append("\r\033[K" + line[: columns - 1] + "\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn_lines = len(self.labels)


def _terminal_size(stream: TextIO) -> os.terminal_size:
    fallback = os.terminal_size((120, 50))
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return fallback
    # A pseudo-terminal that was never sized reports 0 x 0.
    return size if size.columns > 0 and size.lines > 0 else fallback


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table; the last column is not padded."""
    widths = [len(header) for header in headers]
    for row in rows:
        for column, cell in enumerate(row[:-1]):
            widths[column] = max(widths[column], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[column]) for column, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
