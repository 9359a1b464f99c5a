"""What a local endpoint keeps on disk, how that reads as an endpoint state, and the lock on changes to it.

Layout under the state root (``$XDG_STATE_HOME/endpointkit/local``, ``~/.local/state/endpointkit/local`` by
default, or the target's ``state_dir``)::

    .locks/NAME.lock                   fcntl.flock'ed by every change to endpoint NAME (never deleted)
    NAME/                              0700
      endpoint.json                    the running servers: pids, ports, logs, config, spec hash, expiry
      starting/<pid>.json              a server an apply has started but not yet put in endpoint.json
      api-key                          0600, only with ``api_key: true``
      configs/<NAME>-<hash8>.json      endpoint configs: Triton launch settings per variant
      models/<sha256>/                 the model repository, copied
      models/<sha256>.json             what that copy is (name, source, default model)
      logs/<variant>-<config hash>-<time>.log

Every JSON file is written atomically (``_files.py``), so a reader in another process sees the old or the new
content, never half of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from endpointkit._endpoint_state import decode_expiry
from endpointkit.adapters.base import (
    DesiredState,
    EndpointState,
    EndpointStatus,
    ObservedState,
    Resource,
    ResourceKind,
    VariantState,
)
from endpointkit.adapters.local._files import read_json, remove, write_json
from endpointkit.adapters.local._tritonserver import log_tail, pid_alive
from endpointkit.errors import ConflictError

__all__ = [
    "KEY_HEADER",
    "READY_PATH",
    "EndpointPaths",
    "EndpointRecord",
    "ServerRecord",
    "StartingServer",
    "endpoint_lock",
    "endpoint_state",
    "forget_starting",
    "is_endpoint_name",
    "load_record",
    "load_starting",
    "observe",
    "process_alive",
    "process_start_ticks",
    "read_state",
    "server_alive",
    "server_json",
    "starting_state",
    "state_root",
    "write_starting",
]

logger = logging.getLogger("endpointkit.adapters.local")

STATE_VERSION = 1
KEY_HEADER = "endpointkit-key"
"""The request header that carries the endpoint key when ``api_key: true``."""
READY_PATH = "/v2/health/ready"

_ENDPOINT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")  # the spec's name rule


def is_endpoint_name(name: str) -> bool:
    """Whether ``name`` can be a local endpoint's folder: an endpoint name as the spec allows it.

    Keeps ``.locks``, stray files and anything with a path separator or ``..`` out of listing and deletion.
    """
    return len(name) <= 63 and _ENDPOINT_NAME.fullmatch(name) is not None


def state_root(state_dir: str | None) -> Path:
    """Where local endpoints keep their state: ``state_dir`` if set, else the XDG state home's endpointkit/local."""
    if state_dir:
        return Path(state_dir).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser().resolve() / "endpointkit" / "local"


@dataclass(frozen=True)
class EndpointPaths:
    """The files of one local endpoint."""

    root: Path
    name: str

    @property
    def directory(self) -> Path:
        return self.root / self.name

    @property
    def record(self) -> Path:
        return self.directory / "endpoint.json"

    @property
    def key(self) -> Path:
        return self.directory / "api-key"

    @property
    def lock(self) -> Path:
        return self.root / ".locks" / f"{self.name}.lock"

    @property
    def configs(self) -> Path:
        return self.directory / "configs"

    @property
    def models(self) -> Path:
        return self.directory / "models"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def starting(self) -> Path:
        return self.directory / "starting"

    def starting_entry(self, pid: int) -> Path:
        return self.starting / f"{pid}.json"

    def config(self, name: str) -> Path:
        return self.configs / f"{name}.json"

    def model(self, sha256: str) -> Path:
        return self.models / sha256

    def model_record(self, sha256: str) -> Path:
        return self.models / f"{sha256}.json"

    def model_present(self, sha256: str) -> bool:
        """Whether the copy of repository ``sha256`` is complete (its record is written last)."""
        return self.model_record(sha256).is_file() and self.model(sha256).is_dir()

    def ensure(self) -> None:
        """Create the endpoint folder, readable by its owner only (logs and the key live there)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def prune(self) -> None:
        """Remove the endpoint folder once nothing is left in it."""
        for folder in (self.configs, self.models, self.logs, self.starting, self.directory):
            with contextlib.suppress(OSError):
                folder.rmdir()


@dataclass(frozen=True)
class ServerRecord:
    """One variant's tritonserver process, which variant it serves and where.

    With the SageMaker protocol, ``sagemaker_pid`` is the process that serves ``sagemaker_port`` on 127.0.0.1
    (``_sagemaker_front``); a record without it (written before that front existed) had Triton's own listener.
    """

    variant: str
    pid: int
    start_ticks: int | None
    http_port: int
    grpc_port: int
    metrics_port: int
    sagemaker_port: int | None
    log_path: str
    weight: float
    instance_count: int
    instance_type: str | None = None
    sagemaker_pid: int | None = None
    sagemaker_start_ticks: int | None = None

    def processes(self) -> list[tuple[int, int | None]]:
        """``(pid, start ticks)`` of every process of this variant: the server, then its SageMaker front."""
        found = [(self.pid, self.start_ticks)]
        if self.sagemaker_pid is not None:
            found.append((self.sagemaker_pid, self.sagemaker_start_ticks))
        return found


@dataclass(frozen=True)
class EndpointRecord:
    """The content of ``endpoint.json``: the servers of a local endpoint and what they run."""

    name: str
    target: str
    config: str
    model: str
    model_sha256: str
    default_model: str
    protocol: str
    api_key: bool
    spec_hash: str
    created: str
    updated: str
    expires_at: str | None
    servers: tuple[ServerRecord, ...] = field(default_factory=tuple)
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = [asdict(server) for server in self.servers]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointRecord:
        fields = dict(data)
        fields["servers"] = tuple(ServerRecord(**server) for server in fields.get("servers", ()))
        return cls(**fields)

    @property
    def expires(self) -> datetime | None:
        """The expiry from the spec's ttl at apply time, timezone-aware UTC, read by the one expiry codec.

        An unreadable ``expires_at`` (a hand-edited file) is logged and read as no expiry, as on every target.
        """
        return decode_expiry(self.expires_at, endpoint=self.name)


@dataclass(frozen=True)
class StartingServer:
    """A server an apply has started and not yet put in ``endpoint.json``: the file ``starting/<pid>.json``.

    Written as soon as the process exists, before the wait for readiness, and removed once ``endpoint.json``
    lists the server or the server is stopped. So a run killed while its server starts leaves this file behind,
    and every later command finds the server: while the run that started it (``owner_pid``) lives, the server is
    that run's; after, it is an orphan that apply, destroy and reap stop. ``expires_at`` is the time it was
    started, in the expiry codec's form: an orphan is due for reaping at once.
    """

    server: ServerRecord
    config: str
    owner_pid: int
    owner_start_ticks: int | None
    expires_at: str | None

    def owner_alive(self) -> bool:
        """Whether the run that started the server still runs."""
        return process_alive(self.owner_pid, self.owner_start_ticks)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StartingServer:
        fields = dict(data)
        fields["server"] = ServerRecord(**fields["server"])
        return cls(**fields)


def load_record(paths: EndpointPaths) -> EndpointRecord | None:
    """The endpoint's ``endpoint.json``, or None when it has none."""
    data = read_json(paths.record)
    return None if data is None else EndpointRecord.from_json(data)


def load_starting(paths: EndpointPaths) -> list[StartingServer]:
    """The servers recorded in ``starting/``, by pid. A file that cannot be read is logged and skipped."""
    try:
        files = sorted(paths.starting.glob("*.json"))
    except OSError:
        return []
    entries: list[StartingServer] = []
    for path in files:
        try:
            data = read_json(path)
            if data is not None:
                entries.append(StartingServer.from_json(data))
        except (OSError, ValueError, TypeError, KeyError) as error:
            logger.warning("local endpoint %s: cannot read %s: %s", paths.name, path, error)
    return entries


def write_starting(paths: EndpointPaths, entry: StartingServer) -> None:
    """Record a server that is starting (``starting/<pid>.json``), atomically."""
    write_json(paths.starting_entry(entry.server.pid), entry.to_json())


def forget_starting(paths: EndpointPaths, servers: Iterable[ServerRecord]) -> None:
    """Remove the ``starting/`` files of ``servers``: they are in ``endpoint.json`` now, or stopped."""
    for server in servers:
        remove(paths.starting_entry(server.pid))
    with contextlib.suppress(OSError):
        paths.starting.rmdir()


def server_json(server: ServerRecord) -> dict[str, Any]:
    """What an :class:`EndpointState` shows of a server (``extra["servers"]``), and what invoke routes by."""
    return {
        "variant": server.variant,
        "pid": server.pid,
        "http_port": server.http_port,
        "grpc_port": server.grpc_port,
        "metrics_port": server.metrics_port,
        "sagemaker_port": server.sagemaker_port,
        "sagemaker_pid": server.sagemaker_pid,
        "weight": server.weight,
        "log_path": server.log_path,
    }


# ---- lock ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def endpoint_lock(paths: EndpointPaths, *, timeout: float, poll: float = 0.1) -> Iterator[None]:
    """Hold endpoint ``paths.name``'s exclusive lock; wait at most ``timeout`` seconds for it.

    The lock is an ``fcntl.flock`` on a file that is never deleted, so it works between threads (each call
    opens its own file description) and between processes, and the kernel releases it if the holder dies.

    Raises:
        ConflictError: another process or thread held the lock for all of ``timeout``.
    """
    paths.lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConflictError(
                        f"another endpointkit run has been changing local endpoint {paths.name} for more than "
                        f"{timeout:.0f}s; wait for it to finish and try again (lock: {paths.lock})",
                        provider="local",
                        operation="lock",
                        code="Locked",
                        retryable=True,
                    ) from None
                time.sleep(poll)
        yield
    finally:
        os.close(descriptor)  # closing the only descriptor releases the flock


# ---- processes -----------------------------------------------------------------------------------------
def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux ``/proc``); None where that is not available.

    Recorded with every pid so that a pid the kernel has since given to another program is not taken for
    our server (and never signalled).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses, so split after its last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether ``pid`` still runs and is the process that was recorded (started at ``start_ticks``)."""
    if not pid_alive(pid):
        return False
    return start_ticks is None or process_start_ticks(pid) == start_ticks


def server_alive(server: ServerRecord) -> bool:
    """Whether every process of the recorded server still runs and is the same process that was recorded."""
    return all(process_alive(pid, start_ticks) for pid, start_ticks in server.processes())


# ---- the shared state vocabulary ---------------------------------------------------------------------
def endpoint_state(
    paths: EndpointPaths, record: EndpointRecord, *, ready: Callable[[ServerRecord], bool]
) -> EndpointState:
    """The :class:`EndpointState` of a recorded endpoint: IN_SERVICE when every server is ``ready``, FAILED
    (with the last lines of its log) when one has exited or none is recorded, UNKNOWN when one runs but is not
    ready. Carries the record's spec hash and expiry.
    """
    problems: list[str] = []
    if not record.servers:
        problems.append("no tritonserver is recorded for this endpoint")
    variants: list[VariantState] = []
    for server in record.servers:
        variant_status, problem = _server_status(server, ready)
        if problem is not None:
            problems.append(f"variant {server.variant}: {problem}")
        variants.append(
            VariantState(server.variant, server.instance_type, 1, server.weight, variant_status.value)
        )
    statuses = {variant.status for variant in variants}
    status = EndpointStatus.IN_SERVICE
    if EndpointStatus.FAILED.value in statuses or not record.servers:
        status = EndpointStatus.FAILED
    elif EndpointStatus.UNKNOWN.value in statuses:
        status = EndpointStatus.UNKNOWN
    url: str | None = None
    if record.servers:
        first = record.servers[0]
        if record.protocol == "sagemaker":
            url = f"http://127.0.0.1:{first.sagemaker_port}/invocations"
        else:
            url = f"http://127.0.0.1:{first.http_port}/v2/models/{quote(record.default_model, safe='')}/infer"
    extra: dict[str, Any] = {
        "state_root": str(paths.root),
        "state_dir": str(paths.directory),
        "config": record.config,
        "model": record.model,
        "model_sha256": record.model_sha256,
        "default_model": record.default_model,
        "protocol": record.protocol,
        "api_key": record.api_key,
        "created": record.created,
        "updated": record.updated,
        "servers": [server_json(server) for server in record.servers],
    }
    if record.api_key:
        extra["key_header"] = KEY_HEADER
        extra["key_file"] = str(paths.key)
    return EndpointState(
        name=record.name,
        target=record.target,
        kind="local",
        status=status,
        url=url,
        variants=tuple(variants),
        reason="\n".join(problems) or None,
        spec_hash=record.spec_hash,
        expires_at=record.expires,
        extra=extra,
    )


def _server_status(
    server: ServerRecord, ready: Callable[[ServerRecord], bool]
) -> tuple[EndpointStatus, str | None]:
    """One server's status, and what is wrong with it when it does not serve."""
    if not process_alive(server.pid, server.start_ticks):
        tail = "\n".join(log_tail(Path(server.log_path), lines=10))
        return EndpointStatus.FAILED, f"tritonserver (pid {server.pid}) is not running" + (
            f"; last log lines:\n{tail}" if tail else ""
        )
    if not server_alive(server):
        return EndpointStatus.FAILED, (
            f"the SageMaker listener (pid {server.sagemaker_pid}) of port {server.sagemaker_port} is not running"
        )
    if not ready(server):
        return EndpointStatus.UNKNOWN, (
            f"tritonserver (pid {server.pid}) runs but {READY_PATH} on port {server.http_port} does not answer 200"
        )
    return EndpointStatus.IN_SERVICE, None


def starting_state(
    paths: EndpointPaths, entries: Iterable[StartingServer], *, target_name: str
) -> EndpointState:
    """The state of an endpoint without ``endpoint.json``, from the servers an apply recorded as starting.

    CREATING while the apply that started them runs; FAILED once it is gone (it was killed while its servers
    started: they are orphans, which apply, destroy and reap stop; the expiry is when they were started, so reap
    takes them at once); NOT_FOUND when none of them runs. Sends no request.
    """
    live = [entry for entry in entries if _any_running(entry.server)]
    if not live:
        return EndpointState(paths.name, target_name, "local", EndpointStatus.NOT_FOUND)
    starters = sorted({entry.owner_pid for entry in live if entry.owner_alive()})
    if starters:
        status = EndpointStatus.CREATING
        reason = f"an apply (pid {', '.join(map(str, starters))}) is starting tritonserver {_pids(live)}"
        expiry = None
    else:
        status = EndpointStatus.FAILED
        reason = _orphan_reason(live)
        expiries = [decode_expiry(entry.expires_at, endpoint=paths.name) for entry in live]
        expiry = min((moment for moment in expiries if moment is not None), default=None)
    variants = tuple(
        VariantState(entry.server.variant, entry.server.instance_type, 1, entry.server.weight, status.value)
        for entry in live
    )
    return EndpointState(
        name=paths.name,
        target=target_name,
        kind="local",
        status=status,
        variants=variants,
        reason=reason,
        expires_at=expiry,
        extra={
            "state_root": str(paths.root),
            "state_dir": str(paths.directory),
            "starting": [server_json(entry.server) for entry in live],
        },
    )


def read_state(
    paths: EndpointPaths,
    record: EndpointRecord | None,
    *,
    target_name: str,
    ready: Callable[[ServerRecord], bool],
) -> EndpointState:
    """The endpoint's state: from ``record`` (:func:`endpoint_state`) when it lists servers, else from the servers
    an apply left starting (:func:`starting_state`). Orphans beside a record (an update killed while its new
    servers started) are named in ``reason``; they do not change the status of the servers that serve.
    """
    starting = load_starting(paths)
    if record is None or not record.servers:
        return starting_state(paths, starting, target_name=target_name)
    state = endpoint_state(paths, record, ready=ready)
    recorded = {server.pid for server in record.servers}
    orphans = [
        entry
        for entry in starting
        if entry.server.pid not in recorded and not entry.owner_alive() and _any_running(entry.server)
    ]
    if not orphans:
        return state
    return dataclasses.replace(state, reason="\n".join(filter(None, (state.reason, _orphan_reason(orphans)))))


def observe(
    paths: EndpointPaths,
    desired: DesiredState,
    *,
    target_name: str,
    ready: Callable[[ServerRecord], bool],
) -> ObservedState:
    """The endpoint's state, the config and model it runs, and which desired resources exist on disk."""
    existing: set[tuple[ResourceKind, str]] = set()
    if paths.model_present(str(desired.model.properties["sha256"])):
        existing.add(("model", desired.model.name))
    if paths.config(desired.config.name).is_file():
        existing.add(("endpoint_config", desired.config.name))
    record = load_record(paths)
    state = read_state(paths, record, target_name=target_name, ready=ready)
    if record is None:
        return ObservedState(state, existing=frozenset(existing))
    config = Resource("endpoint_config", record.config, read_json(paths.config(record.config)) or {})
    model = Resource("model", record.model, {"sha256": record.model_sha256})
    return ObservedState(state, model, config, frozenset(existing))


def _any_running(server: ServerRecord) -> bool:
    return any(process_alive(pid, start_ticks) for pid, start_ticks in server.processes())


def _pids(entries: Iterable[StartingServer]) -> str:
    pids = [pid for entry in entries for pid, _ in entry.server.processes()]
    return f"pid{'s' if len(pids) > 1 else ''} {', '.join(map(str, pids))}"


def _orphan_reason(entries: list[StartingServer]) -> str:
    configs = ", ".join(sorted({entry.config for entry in entries}))
    return (
        f"tritonserver {_pids(entries)} (config {configs}) left running by an apply that was interrupted while "
        "they started; apply, destroy or reap stops them"
    )
