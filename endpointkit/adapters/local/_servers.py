"""Starting and stopping the tritonserver processes of a local endpoint (one per variant)."""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import Any

from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.local._state import (
    EndpointPaths,
    ServerRecord,
    process_start_ticks,
    remove,
    server_alive,
)
from endpointkit.adapters.local._tritonserver import TritonBinary, TritonServerProcess, find_tritonserver
from endpointkit.errors import ProviderError, ProvisionTimeout

__all__ = ["Launcher", "ServerSupervisor", "gpu_available"]

logger = logging.getLogger("endpointkit.adapters.local")

Launcher = Callable[..., TritonServerProcess]

_KILL_WAIT = 5.0
_PORT_RACE_RETRIES = 1


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


class ServerSupervisor:
    """Starts a local endpoint's servers together and stops them with a bound.

    Args:
        launcher: starts one server and waits until it is ready (:meth:`TritonServerProcess.start`).
        stop_grace: seconds between SIGTERM and SIGKILL.
        before_stop: called before servers are signalled (the adapter closes its keep-alive connections,
            which Triton otherwise waits for on SIGTERM, up to ``--exit-timeout-secs``).
    """

    def __init__(self, launcher: Launcher, *, stop_grace: float, before_stop: Callable[[], None]) -> None:
        self.launcher = launcher
        self.stop_grace = stop_grace
        self.before_stop = before_stop
        self._binaries: dict[str | None, TritonBinary] = {}
        # Servers started here: polling their Popen reaps them instead of leaving zombies.
        self._started: dict[int, TritonServerProcess] = {}
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

        On any failure every server started here is stopped before the first error is raised.

        Raises:
            ProviderError: a server exited before it was ready; carries Triton's log lines.
            ProvisionTimeout: not ready within ``timeout``.
        """
        variants: list[Mapping[str, Any]] = list(config["variants"])
        setting = config.get("tritonserver")
        if setting not in self._binaries:
            self._binaries[setting] = find_tritonserver(setting)
        binary = self._binaries[setting]
        if config["protocol"] == "sagemaker":
            logger.warning(
                "local endpoint %s: Triton's SageMaker listener binds every network interface (0.0.0.0), not "
                "only 127.0.0.1; other machines that reach this one can call its /invocations",
                paths.name,
            )

        def start_one(variant: Mapping[str, Any]) -> ServerRecord:
            return self._start_one(
                paths, config_name, config, variant, binary, restricted_api, phase, timeout, progress
            )

        if len(variants) == 1:
            return (start_one(variants[0]),)
        with ThreadPoolExecutor(max_workers=len(variants), thread_name_prefix="tritonserver-start") as pool:
            futures = [pool.submit(start_one, variant) for variant in variants]
        started = [future.result() for future in futures if future.exception() is None]
        failures = [error for future in futures if (error := future.exception()) is not None]
        if failures:
            self.stop(started)
            raise failures[0]
        return tuple(started)

    def _start_one(
        self,
        paths: EndpointPaths,
        config_name: str,
        config: Mapping[str, Any],
        variant: Mapping[str, Any],
        binary: TritonBinary,
        restricted_api: tuple[str, str] | None,
        phase: str,
        timeout: float,
        progress: Progress | None,
    ) -> ServerRecord:
        name = str(variant["name"])
        subject = f"{paths.name}/{name}"
        sagemaker = config["protocol"] == "sagemaker"
        paths.ensure()
        deadline = time.monotonic() + timeout

        def report(elapsed: float) -> None:
            self.report(progress, subject, phase, elapsed, timeout)

        for attempt in range(_PORT_RACE_RETRIES + 1):
            log_path = paths.logs / f"{name}-{config_name[-8:]}-{time.time_ns() // 1_000_000}.log"
            try:
                server = self.launcher(
                    paths.model(str(config["model_sha256"])),
                    sagemaker=sagemaker,
                    default_model=str(config["default_model"]) if sagemaker else None,
                    environment=dict(config["environment"]),
                    log_path=log_path,
                    ready_timeout=max(1.0, deadline - time.monotonic()),
                    binary=binary,
                    restricted_api=restricted_api,
                    on_progress=report,
                    detach=True,
                )
            except ProviderError as error:
                remove(log_path)  # the error carries the lines that matter
                # Two servers starting at once may be handed the same "free" port: try again once.
                if attempt < _PORT_RACE_RETRIES and "already in use" in str(error):
                    continue
                raise ProviderError(
                    f"local endpoint {subject}: {error}",
                    provider="local",
                    operation="create" if phase == "CREATING" else "update",
                    code=error.code,
                ) from error
            except ProvisionTimeout as error:
                remove(log_path)
                raise ProvisionTimeout(f"local endpoint {subject}: {error}") from error
            break
        self._started[server.pid] = server
        return ServerRecord(
            variant=name,
            pid=server.pid,
            start_ticks=process_start_ticks(server.pid),
            http_port=server.http_port,
            grpc_port=server.grpc_port,
            metrics_port=server.metrics_port,
            sagemaker_port=server.sagemaker_port,
            log_path=str(server.log_path),
            weight=float(variant["weight"]),
            instance_count=1,
            instance_type=variant.get("instance_type"),
        )

    def stop(self, servers: Sequence[ServerRecord]) -> None:
        """SIGTERM every live server, wait ``stop_grace`` for all, SIGKILL the rest; remove their logs.

        A recorded pid whose process started at another time than recorded is someone else's: never signalled.
        """
        self.before_stop()
        running = [server for server in servers if server_alive(server)]
        for server in running:
            _signal(server.pid, signal.SIGTERM)
        remaining = self._wait_stopped(running, self.stop_grace)
        for server in remaining:
            logger.warning(
                "tritonserver pid %d did not stop within %.0fs: killing it", server.pid, self.stop_grace
            )
            _signal(server.pid, signal.SIGKILL)
        self._wait_stopped(remaining, _KILL_WAIT)
        for server in servers:
            self._started.pop(server.pid, None)
            remove(Path(server.log_path))

    def _wait_stopped(self, servers: Sequence[ServerRecord], bound: float) -> list[ServerRecord]:
        deadline = time.monotonic() + bound
        pending = list(servers)
        while pending:
            pending = [server for server in pending if not self._exited(server)]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return pending

    def _exited(self, server: ServerRecord) -> bool:
        handle = self._started.get(server.pid)
        if handle is not None:
            return not handle.is_running()  # polls, and so reaps, our own child
        return not server_alive(server)

    def report(
        self, progress: Progress | None, subject: str, status: str, elapsed: float, timeout: float
    ) -> None:
        """Send a progress event; variants start in parallel and a callback need not be thread-safe."""
        if progress is None:
            return
        with self._progress_lock:
            progress(ProgressEvent(subject=subject, status=status, elapsed=elapsed, timeout=timeout))


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
