"""Find, start, watch and stop a real ``tritonserver`` process on loopback.

Used by the local adapter and by the test fixtures. The binary comes from an explicit setting, then
``ENDPOINTKIT_TRITONSERVER``, then ``PATH``, then the one bundled in the ``nvidia-pytriton`` wheel, which
needs a little preparation to run on a CPU-only machine (see ``_prepare_bundled``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from endpointkit.adapters._triton_metrics import SUMMARY_ARGUMENTS
from endpointkit.errors import MissingDependencyError, ProviderError, ProvisionTimeout

__all__ = [
    "TritonBinary",
    "TritonServerProcess",
    "find_tritonserver",
    "free_port",
    "health_status",
    "log_tail",
    "pid_alive",
    "running_tritonserver",
    "session_leftovers",
    "stop_pid",
]

ENV_BINARY = "ENDPOINTKIT_TRITONSERVER"
# Triton waits for open keep-alive connections for --exit-timeout-secs (30 s by default) on SIGTERM;
# a short bound keeps `destroy` fast (checked here, see shared/triton-local.md).
EXIT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True, slots=True)
class TritonBinary:
    """A runnable tritonserver: the executable, extra arguments it needs and its environment additions."""

    executable: Path
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    source: str = "PATH"


def find_tritonserver(explicit: str | os.PathLike[str] | None = None) -> TritonBinary:
    """Locate a tritonserver binary: ``explicit``, ``$ENDPOINTKIT_TRITONSERVER``, ``PATH``, then nvidia-pytriton's.

    Raises:
        MissingDependencyError: none was found; the message says how to get one.
    """
    for candidate, source in ((explicit, "setting"), (os.environ.get(ENV_BINARY), ENV_BINARY)):
        if candidate:
            path = Path(candidate).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise MissingDependencyError(
                    f"tritonserver from {source} is not an executable file: {path}. "
                    "Point it at a tritonserver binary or unset it to use the bundled one."
                )
            return TritonBinary(executable=path, source=source)
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonBinary(executable=Path(on_path), source="PATH")
    return _prepare_bundled()


def _prepare_bundled() -> TritonBinary:
    try:
        import pytriton
    except ImportError as exc:
        raise MissingDependencyError(
            "no tritonserver found: set ENDPOINTKIT_TRITONSERVER, put tritonserver on PATH, "
            "or pip install 'endpointkit[local]' for the one bundled in nvidia-pytriton"
        ) from exc
    package_root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    executable = package_root / "bin" / "tritonserver"
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = package_root / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    if not executable.is_file() or not stub.is_file():
        raise MissingDependencyError(
            f"nvidia-pytriton at {package_root.parent} has no tritonserver for Python {python_version}; "
            "install a tritonserver and set ENDPOINTKIT_TRITONSERVER"
        )
    backends = _private_backends(package_root, stub, python_version)
    libs = package_root.parent.parent / "nvidia_pytriton.libs"
    library_path = [p for p in (sysconfig.get_config_var("LIBDIR"), str(libs)) if p]
    return TritonBinary(
        executable=executable,
        arguments=(f"--backend-directory={backends}",),
        environment={
            # The Python backend stub embeds this interpreter's libpython, and the stub and backend copied out
            # of the wheel lose the RPATH ($ORIGIN/../../../../nvidia_pytriton.libs) that finds libcudart.
            "LD_LIBRARY_PATH": os.pathsep.join(library_path),
            # The stub's embedded interpreter runs isolated (PYTHONPATH is ignored): it finds its Python by
            # looking up `python3` on PATH and reading the pyvenv.cfg beside it, so this environment's bin comes first.
            "PATH": str(Path(sys.executable).parent),
        },
        source="nvidia-pytriton",
    )


def _private_backends(package_root: Path, stub: Path, python_version: str) -> Path:
    """A writable copy of the bundled backends folder with the stub for this interpreter in place.

    The package folder may be read-only, so the stub is never copied into it.
    """
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "endpointkit"
    source_backend = package_root / "backends" / "python"
    stamp = f"{int(source_backend.joinpath('libtriton_python.so').stat().st_mtime)}-{python_version}"
    target = cache_root / "triton-backends" / stamp
    marker = target / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="backends-", dir=target.parent))
    python_dir = staging / "python"
    python_dir.mkdir()
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(source_backend / name, python_dir / name)
    shutil.copy2(stub, python_dir / "triton_python_backend_stub")
    (staging / ".complete").touch()
    try:
        staging.rename(target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A stopped child stays in the process table until its parent reaps it (shared/triton-local.md).
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def session_leftovers(leader: int, *, started_since: int | None) -> list[tuple[int, int]]:
    """``(pid, start ticks)`` of the live processes still in the session that process ``leader`` led.

    A server started with ``detach`` leads its own session, and its Python backend stubs are in it. When
    tritonserver exits on ``--exit-timeout-secs`` (a client kept a connection open) rather than after unloading
    its models, a stub outlives it, reparented to init, holding its shared memory. Only processes started at or
    after ``started_since`` (the leader's start, in clock ticks) count, so a session id the kernel has given to an
    unrelated program since is left alone. Reads Linux ``/proc``; elsewhere, nothing is found.
    """
    found: list[tuple[int, int]] = []
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == leader:
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                # After the command name: state, ppid, pgrp, session, ... field 22 (index 19) the start time.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                state, session, start_ticks = fields[0], int(fields[3]), int(fields[19])
                if (
                    session == leader
                    and state != "Z"
                    and (started_since is None or start_ticks >= started_since)
                ):
                    found.append((int(entry.name), start_ticks))
    return found


def stop_pid(
    pid: int, *, grace_seconds: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Stop a process: SIGTERM, then SIGKILL after ``grace_seconds``. Idempotent."""
    for sig, bound in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, bound, process):
            break
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)


def _wait_gone(pid: int, bound: float, process: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def log_tail(log_path: Path, *, lines: int = 15, errors_only: bool = False) -> list[str]:
    """The last ``lines`` lines of a Triton log; with ``errors_only`` the error lines (``E…``) when any exist."""
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    if errors_only:
        flagged = [line for line in text if _is_error_line(line)]
        if flagged:
            return flagged[-lines:]
    return text[-lines:]


# Logged as an error by every start on a machine without a GPU driver; it says nothing about a failure.
_NOISE = ("CudaDriverHelper has not been initialized",)


def _is_error_line(line: str) -> bool:
    if any(noise in line for noise in _NOISE):
        return False
    # Triton log lines start with a severity letter and a date: "E1122 07:31:49.123 ..."
    return (line[:1] == "E" and line[1:5].isdigit()) or "failed to load" in line or "UNAVAILABLE" in line


def health_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status code of ``GET path`` on ``host:port``, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class _LoopbackPorts:
    """The ports one tritonserver listens on, free on 127.0.0.1 when picked."""

    http: int
    grpc: int
    metrics: int
    sagemaker: int | None

    @classmethod
    def pick(cls, *, sagemaker: bool) -> _LoopbackPorts:
        return cls(free_port(), free_port(), free_port(), free_port() if sagemaker else None)


def _command_line(
    binary: TritonBinary,
    model_repository: Path,
    ports: _LoopbackPorts,
    restricted_api: tuple[str, str] | None,
    extra_arguments: Sequence[str],
) -> list[str]:
    """tritonserver's arguments: every listener on 127.0.0.1 (but Triton's SageMaker one, see ``start``)."""
    arguments = [
        str(binary.executable),
        f"--model-repository={model_repository.resolve()}",
        *binary.arguments,
        "--strict-model-config=false",
        f"--exit-timeout-secs={EXIT_TIMEOUT_SECONDS}",
        "--http-address=127.0.0.1",
        f"--http-port={ports.http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={ports.grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={ports.metrics}",
        *SUMMARY_ARGUMENTS,
    ]
    if ports.sagemaker is not None:
        arguments += ["--allow-sagemaker=true", f"--sagemaker-port={ports.sagemaker}"]
    if restricted_api is not None:
        header, value = restricted_api
        # The same key guards the gRPC API: Triton reads it from the metadata ``triton-grpc-protocol-HEADER``
        # (server docs/customization_guide/inference_protocols.md, "Limit endpoint access").
        arguments += [
            f"--http-restricted-api=inference,model-repository:{header}={value}",
            f"--grpc-restricted-protocol=inference,model-repository:{header}={value}",
        ]
    return arguments + list(extra_arguments)


def _server_environment(
    binary: TritonBinary, environment: Mapping[str, str] | None, default_model: str | None
) -> dict[str, str]:
    """This process's environment, the binary's path additions in front, then the caller's variables."""
    env = dict(os.environ)
    for key, value in binary.environment.items():
        env[key] = os.pathsep.join(filter(None, (value, env.get(key))))
    env.update(environment or {})
    if default_model:
        env["SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"] = default_model
    return env


class TritonServerProcess:
    """A tritonserver this process started (``start``) or found by pid (``attach``).

    Listens on 127.0.0.1 only, except Triton's own SageMaker listener (``start(sagemaker=True)``), which binds
    every interface.
    """

    def __init__(
        self,
        *,
        pid: int,
        http_port: int,
        grpc_port: int,
        metrics_port: int,
        sagemaker_port: int | None,
        log_path: Path,
        process: subprocess.Popen[bytes] | None = None,
        owned_log_dir: Path | None = None,
    ) -> None:
        self.pid = pid
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.sagemaker_port = sagemaker_port
        self.log_path = log_path
        self._process = process
        self._owned_log_dir = owned_log_dir

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def sagemaker_url(self) -> str | None:
        return None if self.sagemaker_port is None else f"http://{self.host}:{self.sagemaker_port}"

    @classmethod
    def attach(cls, **fields: object) -> TritonServerProcess:
        """A handle on a server started by another process, from its recorded pid, ports and log path."""
        return cls(**fields)  # type: ignore[arg-type]

    @classmethod
    def start(
        cls,
        model_repository: str | os.PathLike[str],
        *,
        sagemaker: bool = False,
        default_model: str | None = None,
        environment: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        ready_timeout: float = 60.0,
        binary: TritonBinary | str | os.PathLike[str] | None = None,
        restricted_api: tuple[str, str] | None = None,
        extra_arguments: Sequence[str] = (),
        on_progress: Callable[[float], None] | None = None,
        on_spawn: Callable[[TritonServerProcess], None] | None = None,
        detach: bool = False,
    ) -> TritonServerProcess:
        """Start tritonserver on free loopback ports and wait until it is ready (:meth:`is_ready`).

        Args:
            model_repository: the Triton model repository folder.
            sagemaker: also start Triton's own SageMaker listener (``/ping``, ``/invocations``). Triton binds it
                to 0.0.0.0 and has no option to choose the address (``sagemaker_address_`` is fixed in its
                command_line_parser.h), so this is for tests on a private machine; the local adapter serves the
                SageMaker protocol on 127.0.0.1 itself (``_sagemaker_front``).
            default_model: ``SAGEMAKER_TRITON_DEFAULT_MODEL_NAME`` for the SageMaker listener.
            environment: extra environment variables for the server.
            log_path: where Triton's output goes (a temporary file by default).
            ready_timeout: seconds to wait for readiness.
            binary: a :class:`TritonBinary` or a path; found with :func:`find_tritonserver` by default.
            restricted_api: ``(header, value)``: inference and model-repository calls need that header (HTTP) or
                the metadata ``triton-grpc-protocol-HEADER`` (gRPC).
            extra_arguments: more tritonserver arguments.
            on_progress: called with the elapsed seconds while waiting.
            on_spawn: called with the server as soon as its process exists, before the wait for readiness (the
                local adapter records the pid there, so a run killed during the wait leaves a server it can find).
            detach: start in its own session so the server outlives this process.

        Raises:
            ProviderError: the server exited or a model failed to load; the message has Triton's log lines.
            ProvisionTimeout: not ready within ``ready_timeout``.
        """
        server = cls.spawn(
            model_repository,
            sagemaker=sagemaker,
            default_model=default_model,
            environment=environment,
            log_path=log_path,
            binary=binary,
            restricted_api=restricted_api,
            extra_arguments=extra_arguments,
            detach=detach,
        )
        try:
            if on_spawn is not None:
                on_spawn(server)
            server.wait_ready(ready_timeout, on_progress=on_progress)
        except BaseException:
            server.stop()
            raise
        return server

    @classmethod
    def spawn(
        cls,
        model_repository: str | os.PathLike[str],
        *,
        sagemaker: bool = False,
        default_model: str | None = None,
        environment: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        binary: TritonBinary | str | os.PathLike[str] | None = None,
        restricted_api: tuple[str, str] | None = None,
        extra_arguments: Sequence[str] = (),
        detach: bool = False,
    ) -> TritonServerProcess:
        """Start the tritonserver process and return at once, without waiting for readiness.

        The arguments are those of :meth:`start`. The caller owns the process: :meth:`wait_ready`, then
        :meth:`stop`.
        """
        resolved = binary if isinstance(binary, TritonBinary) else find_tritonserver(binary)
        owned_log_dir = None
        if log_path is None:
            owned_log_dir = Path(tempfile.mkdtemp(prefix="endpointkit-triton-"))
            log_file = owned_log_dir / "tritonserver.log"
        else:
            log_file = Path(log_path)
        ports = _LoopbackPorts.pick(sagemaker=sagemaker)
        arguments = _command_line(resolved, Path(model_repository), ports, restricted_api, extra_arguments)
        env = _server_environment(resolved, environment, default_model)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("wb") as log_stream:
            process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=detach,
            )
        return cls(
            pid=process.pid,
            http_port=ports.http,
            grpc_port=ports.grpc,
            metrics_port=ports.metrics,
            sagemaker_port=ports.sagemaker,
            log_path=log_file,
            process=process,
            owned_log_dir=owned_log_dir,
        )

    def exit_code(self) -> int | None:
        """The exit code when the server has stopped and this process started it, else None."""
        return None if self._process is None else self._process.poll()

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return pid_alive(self.pid)

    def is_ready(self, timeout: float = 1.0) -> bool:
        """``/v2/health/ready`` answers 200, and so does the SageMaker listener's ``/ping`` when it runs."""
        if health_status(self.host, self.http_port, "/v2/health/ready", timeout) != 200:
            return False
        # Triton opens its SageMaker listener after the HTTP one: ready on HTTP alone, /invocations could
        # still refuse connections for a moment (seen in a test run on this machine).
        return (
            self.sagemaker_port is None
            or health_status(self.host, self.sagemaker_port, "/ping", timeout) == 200
        )

    def wait_ready(self, timeout: float, *, on_progress: Callable[[float], None] | None = None) -> None:
        """Block until ready; fail at once, with Triton's own log lines, when the process exits."""
        start = time.monotonic()
        delay = 0.05
        while True:
            if not self.is_running():
                reason = "\n".join(log_tail(self.log_path, errors_only=True))
                raise ProviderError(
                    f"tritonserver exited (code {self.exit_code()}) before it was ready:\n{reason}",
                    provider="local",
                    operation="start",
                    code="ServerExited",
                )
            if self.is_ready():
                return
            elapsed = time.monotonic() - start
            if on_progress is not None:
                on_progress(elapsed)
            if elapsed >= timeout:
                raise ProvisionTimeout(
                    f"tritonserver was not ready after {timeout:.0f}s; last log lines:\n"
                    + "\n".join(log_tail(self.log_path))
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace_seconds``). Idempotent."""
        stop_pid(self.pid, grace_seconds=grace_seconds, process=self._process)
        if self._owned_log_dir is not None:
            shutil.rmtree(self._owned_log_dir, ignore_errors=True)
            self._owned_log_dir = None

    def __enter__(self) -> TritonServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_tritonserver(model_repository: Path, **options: object) -> Iterator[TritonServerProcess]:
    """``with running_tritonserver(repo) as server:``; always stops the server."""
    server = TritonServerProcess.start(model_repository, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
