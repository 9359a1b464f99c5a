"""Starting and stopping the processes of a local endpoint: one tritonserver per variant, and with the SageMaker
protocol its loopback front (``_sagemaker_front``).

Every server is recorded in ``starting/<pid>.json`` the moment its process exists, before the wait for
readiness (:class:`~endpointkit.adapters.local._state.StartingServer`), so a run killed while its servers start
leaves them findable; the caller forgets those files once ``endpoint.json`` lists the servers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from endpointkit._endpoint_state import encode_expiry
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.local._files import remove
from endpointkit.adapters.local._sagemaker_front import spawn as spawn_front
from endpointkit.adapters.local._state import (
    EndpointPaths,
    EndpointRecord,
    ServerRecord,
    StartingServer,
    forget_starting,
    load_starting,
    process_alive,
    process_start_ticks,
    write_starting,
)
from endpointkit.adapters.local._tritonserver import (
    TritonBinary,
    TritonServerProcess,
    find_tritonserver,
    health_status,
    log_tail,
    session_leftovers,
)
from endpointkit.errors import ProviderError, ProvisionTimeout

__all__ = ["Launcher", "ServerSupervisor", "gpu_available"]

logger = logging.getLogger("endpointkit.adapters.local")

Launcher = Callable[..., TritonServerProcess]

_KILL_WAIT = 5.0
_PORT_RACE_RETRIES = 1
Process = tuple[int, int | None]
"""A recorded process: its pid and its start time in clock ticks (None where /proc does not say)."""


class _Running(Protocol):
    def is_running(self) -> bool: ...


@dataclasses.dataclass(frozen=True)
class _Spawned:
    """A process this one started: polling it reaps it instead of leaving a zombie."""

    process: subprocess.Popen[bytes]

    def is_running(self) -> bool:
        return self.process.poll() is None


@functools.cache
def gpu_available() -> bool:
    """Whether ``nvidia-smi -L`` lists a GPU on this machine. Checked once per process."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return False
    try:
        listed = subprocess.run(  # an argument list, never a shell
            [executable, "-L"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def front_log(server: ServerRecord) -> Path:
    """Where the SageMaker front of ``server`` writes what it has to say (next to Triton's log)."""
    return Path(server.log_path).with_suffix(".sagemaker.log")


@dataclasses.dataclass(frozen=True)
class _Launch:
    """What every server of one start shares."""

    paths: EndpointPaths
    config_name: str
    config: Mapping[str, Any]
    binary: TritonBinary
    restricted_api: tuple[str, str] | None
    phase: str
    timeout: float
    progress: Progress | None

    @property
    def operation(self) -> str:
        return "create" if self.phase == "CREATING" else "update"


class ServerSupervisor:
    """Starts a local endpoint's servers together and stops them with a bound.

    Args:
        launcher: starts one server and waits until it is ready (:meth:`TritonServerProcess.start`); it is
            given ``on_spawn``, which must be called once the process exists.
        stop_grace: seconds between SIGTERM and SIGKILL.
        before_stop: called before servers are signalled (the adapter closes its keep-alive connections,
            which Triton otherwise waits for on SIGTERM, up to ``--exit-timeout-secs``).
    """

    def __init__(self, launcher: Launcher, *, stop_grace: float, before_stop: Callable[[], None]) -> None:
        self.launcher = launcher
        self.stop_grace = stop_grace
        self.before_stop = before_stop
        self._binaries: dict[str | None, TritonBinary] = {}
        # Processes started here: polling them reaps them instead of leaving zombies.
        self._started: dict[int, _Running] = {}
        self._progress_lock = threading.Lock()

    def start(
        self,
        paths: EndpointPaths,
        config_name: str,
        config: Mapping[str, Any],
        *,
        restricted_api: tuple[str, str] | None,
        phase: str,
        timeout: float,
        progress: Progress | None,
    ) -> tuple[ServerRecord, ...]:
        """Start one server per variant of ``config`` (in parallel) and wait until all are ready.

        Each is in ``starting/`` from the moment its process exists; call :meth:`settle` once ``endpoint.json``
        lists them. On any failure every server started here is stopped (and forgotten) before the first error
        is raised. Call with the endpoint's lock held.

        Raises:
            ProviderError: a server exited before it was ready; carries Triton's log lines.
            ProvisionTimeout: not ready within ``timeout``.
        """
        variants: list[Mapping[str, Any]] = list(config["variants"])
        setting = config.get("tritonserver")
        if setting not in self._binaries:
            self._binaries[setting] = find_tritonserver(setting)
        launch = _Launch(
            paths, config_name, config, self._binaries[setting], restricted_api, phase, timeout, progress
        )
        if len(variants) == 1:
            return (self._start_one(launch, variants[0]),)
        with ThreadPoolExecutor(max_workers=len(variants), thread_name_prefix="tritonserver-start") as pool:
            futures = [pool.submit(self._start_one, launch, variant) for variant in variants]
        started = [future.result() for future in futures if future.exception() is None]
        failures = [error for future in futures if (error := future.exception()) is not None]
        if failures:
            self.stop(paths, started)
            raise failures[0]
        return tuple(started)

    def settle(self, paths: EndpointPaths, servers: Sequence[ServerRecord]) -> None:
        """Forget the ``starting/`` files of ``servers``: ``endpoint.json`` lists them now."""
        forget_starting(paths, servers)

    def stop_orphans(self, paths: EndpointPaths, record: EndpointRecord | None) -> None:
        """Stop every server in ``starting/`` that ``record`` does not list, and forget them all.

        Call with the endpoint's lock held: every run that starts servers holds it until it has settled them,
        so what is left there belongs to a run that was killed.
        """
        entries = load_starting(paths)
        listed = {server.pid for server in record.servers} if record is not None else set()
        orphans = [entry.server for entry in entries if entry.server.pid not in listed]
        if orphans:
            logger.warning(
                "local endpoint %s: stopping tritonserver pid(s) %s left by an interrupted apply",
                paths.name,
                [server.pid for server in orphans],
            )
            self.stop(paths, orphans)
        forget_starting(paths, [entry.server for entry in entries if entry.server.pid in listed])

    def stop(self, paths: EndpointPaths, servers: Sequence[ServerRecord]) -> None:
        """SIGTERM every live process of ``servers``, wait ``stop_grace`` for all, SIGKILL the rest; remove
        their logs, and their ``starting/`` files once all their processes are gone.

        A recorded pid whose process started at another time than recorded is someone else's: never signalled.
        """
        self.before_stop()
        running = [process for server in servers for process in server.processes() if process_alive(*process)]
        for pid, _ in running:
            _signal(pid, signal.SIGTERM)
            # A stopped process (SIGSTOP, a debugger) handles SIGTERM only once it runs again.
            _signal(pid, signal.SIGCONT)
        remaining = self._wait_stopped(running, self.stop_grace)
        for pid, _ in remaining:
            logger.warning("pid %d did not stop within %.0fs: killing it", pid, self.stop_grace)
            _signal(pid, signal.SIGKILL)
        survivors = {pid for pid, _ in self._wait_stopped(remaining, _KILL_WAIT)}
        self._stop_leftovers([server for server in servers if server.pid not in survivors])
        for server in servers:
            for pid, _ in server.processes():
                self._started.pop(pid, None)
            remove(Path(server.log_path))
            remove(front_log(server))
        gone = [
            server for server in servers if not survivors.intersection(pid for pid, _ in server.processes())
        ]
        forget_starting(paths, gone)

    def report(
        self, progress: Progress | None, subject: str, status: str, elapsed: float, timeout: float
    ) -> None:
        """Send a progress event; variants start in parallel and a callback need not be thread-safe."""
        if progress is None:
            return
        with self._progress_lock:
            progress(ProgressEvent(subject=subject, status=status, elapsed=elapsed, timeout=timeout))

    # ---- one variant ---------------------------------------------------------------------------------
    def _start_one(self, launch: _Launch, variant: Mapping[str, Any]) -> ServerRecord:
        deadline = time.monotonic() + launch.timeout
        server = self._start_triton(launch, variant, deadline)
        if launch.config["protocol"] != "sagemaker":
            return server
        try:
            return self._start_front(launch, server, deadline)
        except BaseException:
            self.stop(launch.paths, [server])
            raise

    def _start_triton(self, launch: _Launch, variant: Mapping[str, Any], deadline: float) -> ServerRecord:
        name = str(variant["name"])
        subject = f"{launch.paths.name}/{name}"
        launch.paths.ensure()
        spawned: list[ServerRecord] = []

        def record_spawned(process: TritonServerProcess) -> None:
            self._started[process.pid] = process
            spawned.append(_server_record(process, variant))
            write_starting(launch.paths, _starting(launch, spawned[-1]))

        def report(elapsed: float) -> None:
            self.report(launch.progress, subject, launch.phase, elapsed, launch.timeout)

        for attempt in range(_PORT_RACE_RETRIES + 1):
            log_path = (
                launch.paths.logs / f"{name}-{launch.config_name[-8:]}-{time.time_ns() // 1_000_000}.log"
            )
            try:
                process = self.launcher(
                    launch.paths.model(str(launch.config["model_sha256"])),
                    environment=dict(launch.config["environment"]),
                    log_path=log_path,
                    ready_timeout=max(1.0, deadline - time.monotonic()),
                    binary=launch.binary,
                    restricted_api=launch.restricted_api,
                    on_progress=report,
                    on_spawn=record_spawned,
                    detach=True,
                )
            except ProviderError as error:
                # The error carries the lines that matter: the log goes.
                self._forget_failed(launch.paths, spawned, log_path)
                # Two servers starting at once may be handed the same "free" port: try again once.
                if attempt < _PORT_RACE_RETRIES and "already in use" in str(error):
                    continue
                raise ProviderError(
                    f"local endpoint {subject}: {error}",
                    provider="local",
                    operation=launch.operation,
                    code=error.code,
                ) from error
            except ProvisionTimeout as error:
                self._forget_failed(launch.paths, spawned, log_path)
                raise ProvisionTimeout(f"local endpoint {subject}: {error}") from error
            except BaseException:
                self._forget_failed(launch.paths, spawned, log_path)
                raise
            self._started[process.pid] = process
            return spawned[-1] if spawned else _server_record(process, variant)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _forget_failed(self, paths: EndpointPaths, spawned: list[ServerRecord], log_path: Path) -> None:
        """The launcher stopped the server it could not start: forget its ``starting/`` file and its log."""
        for server in spawned:
            self._started.pop(server.pid, None)
        # A server stopped while it loads its model may have started its Python backend stubs already: they
        # live in its session and outlive it unless stopped here.
        self._stop_leftovers(list(spawned))
        forget_starting(paths, spawned)
        spawned.clear()
        remove(log_path)

    def _start_front(self, launch: _Launch, server: ServerRecord, deadline: float) -> ServerRecord:
        """Serve the SageMaker protocol for ``server`` on 127.0.0.1 and wait until its ``/ping`` answers 200.

        Triton's own SageMaker listener would bind 0.0.0.0 (see ``_sagemaker_front``).
        """
        process, port = spawn_front(
            upstream_port=server.http_port,
            model=str(launch.config["default_model"]),
            log_path=front_log(server),
            address=str(launch.config.get("sagemaker_address", "127.0.0.1")),
        )
        self._started[process.pid] = _Spawned(process)
        server = dataclasses.replace(
            server,
            sagemaker_port=port,
            sagemaker_pid=process.pid,
            sagemaker_start_ticks=process_start_ticks(process.pid),
        )
        try:
            write_starting(launch.paths, _starting(launch, server))
            _wait_for_front(launch, server, port, process, deadline)
        except BaseException:
            self.stop(launch.paths, [server])
            raise
        return server

    def _stop_leftovers(self, servers: Sequence[ServerRecord]) -> None:
        """SIGKILL what is left in the sessions of stopped servers (see :func:`session_leftovers`)."""
        leftovers = [
            process
            for server in servers
            for process in session_leftovers(server.pid, started_since=server.start_ticks)
        ]
        for pid, _ in leftovers:
            logger.info("stopping pid %d, left behind by a stopped tritonserver", pid)
            _signal(pid, signal.SIGKILL)
        self._wait_stopped(leftovers, _KILL_WAIT)

    def _wait_stopped(self, processes: Sequence[Process], bound: float) -> list[Process]:
        deadline = time.monotonic() + bound
        pending = list(processes)
        while pending:
            pending = [process for process in pending if not self._exited(process)]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return pending

    def _exited(self, process: Process) -> bool:
        handle = self._started.get(process[0])
        if handle is not None:
            return not handle.is_running()  # polls, and so reaps, our own child
        return not process_alive(*process)


def _wait_for_front(
    launch: _Launch, server: ServerRecord, port: int, process: subprocess.Popen[bytes], deadline: float
) -> None:
    subject = f"{launch.paths.name}/{server.variant}"
    delay = 0.02
    while health_status("127.0.0.1", port, "/ping") != 200:
        if process.poll() is not None:
            lines = "\n".join(log_tail(front_log(server)))
            raise ProviderError(
                f"local endpoint {subject}: the SageMaker listener exited (code {process.returncode}):\n{lines}",
                provider="local",
                operation=launch.operation,
                code="ServerExited",
            )
        if time.monotonic() >= deadline:
            raise ProvisionTimeout(
                f"local endpoint {subject}: the SageMaker listener's /ping never answered 200"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _server_record(process: TritonServerProcess, variant: Mapping[str, Any]) -> ServerRecord:
    return ServerRecord(
        variant=str(variant["name"]),
        pid=process.pid,
        start_ticks=process_start_ticks(process.pid),
        http_port=process.http_port,
        grpc_port=process.grpc_port,
        metrics_port=process.metrics_port,
        sagemaker_port=process.sagemaker_port,
        log_path=str(process.log_path),
        weight=float(variant["weight"]),
        instance_count=1,
        instance_type=variant.get("instance_type"),
    )


def _starting(launch: _Launch, server: ServerRecord) -> StartingServer:
    owner = os.getpid()
    return StartingServer(
        server=server,
        config=launch.config_name,
        owner_pid=owner,
        owner_start_ticks=process_start_ticks(owner),
        expires_at=encode_expiry(datetime.now(timezone.utc)),
    )


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
