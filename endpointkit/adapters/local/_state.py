"""What a local endpoint keeps on disk, and the lock that serializes changes to it.

Layout under the state root (``$XDG_STATE_HOME/endpointkit/local``, ``~/.local/state/endpointkit/local`` by
default, or the target's ``state_dir``)::

    .locks/NAME.lock                   fcntl.flock'ed by every change to endpoint NAME (never deleted)
    NAME/                              0700
      endpoint.json                    the running servers: pids, ports, logs, config, spec hash, expiry
      api-key                          0600, only with ``api_key: true``
      configs/<NAME>-<hash8>.json      endpoint configs: Triton launch settings per variant
      models/<sha256>/                 the model repository, copied
      models/<sha256>.json             what that copy is (name, source, default model)
      logs/<variant>-<config hash>-<time>.log

Every JSON file is written to a temporary file and moved into place (``os.replace``), so a reader in another
process sees the old or the new content, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from endpointkit.adapters.base import EndpointState, EndpointStatus, VariantState
from endpointkit.adapters.local._tritonserver import log_tail, pid_alive
from endpointkit.errors import ConflictError

__all__ = [
    "KEY_HEADER",
    "READY_PATH",
    "EndpointPaths",
    "EndpointRecord",
    "ServerRecord",
    "copy_model",
    "delete_model",
    "endpoint_lock",
    "endpoint_state",
    "ensure_key",
    "generate_key",
    "is_endpoint_name",
    "load_record",
    "process_start_ticks",
    "read_json",
    "read_secret",
    "remove",
    "server_alive",
    "server_json",
    "state_root",
    "write_json",
    "write_secret",
]

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
        for folder in (self.configs, self.models, self.logs, self.directory):
            with contextlib.suppress(OSError):
                folder.rmdir()


@dataclass(frozen=True)
class ServerRecord:
    """One tritonserver process: which variant it serves and where."""

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
        """The expiry from the spec's ttl at apply time, timezone-aware UTC (a naive time is taken as UTC).

        Raises:
            ValueError: ``expires_at`` is not an ISO 8601 time.
        """
        if not self.expires_at:
            return None
        moment = datetime.fromisoformat(self.expires_at)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)


def load_record(paths: EndpointPaths) -> EndpointRecord | None:
    """The endpoint's ``endpoint.json``, or None when it has none."""
    data = read_json(paths.record)
    return None if data is None else EndpointRecord.from_json(data)


def server_json(server: ServerRecord) -> dict[str, Any]:
    """What an :class:`EndpointState` shows of a server (``extra["servers"]``), and what invoke routes by."""
    return {
        "variant": server.variant,
        "pid": server.pid,
        "http_port": server.http_port,
        "grpc_port": server.grpc_port,
        "metrics_port": server.metrics_port,
        "sagemaker_port": server.sagemaker_port,
        "weight": server.weight,
        "log_path": server.log_path,
    }


# ---- files ---------------------------------------------------------------------------------------------
def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temporary file, fsync, ``os.replace``), mode 0600."""
    write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_bytes(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    data = orjson.loads(content)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def generate_key() -> str:
    """A fresh endpoint key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def write_secret(path: Path, value: str) -> None:
    """Store a secret readable by its owner only (0600)."""
    write_bytes(path, value.encode())


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    """Delete a file or a folder tree; nothing happens when it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# ---- the model copy and the key -------------------------------------------------------------------------
def copy_model(paths: EndpointPaths, name: str, sha256: str, source: str) -> None:
    """Copy repository ``source`` to ``models/<sha256>/`` (staged, then renamed) unless it is there already.

    Raises:
        OSError: the copy failed; nothing is left behind.
    """
    if paths.model_present(sha256):
        return
    paths.ensure()
    paths.models.mkdir(exist_ok=True)
    destination = paths.model(sha256)
    staging = paths.models / f".{sha256}.{os.getpid()}.partial"
    remove(staging)
    remove(destination)
    try:
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        staging.rename(destination)
    except BaseException:
        remove(staging)
        raise
    write_json(paths.model_record(sha256), {"name": name, "sha256": sha256, "source": source})


def delete_model(paths: EndpointPaths, name: str) -> None:
    """Remove every model copy recorded under ``name``."""
    if not paths.models.is_dir():
        return
    for record_path in paths.models.glob("*.json"):
        data = read_json(record_path)
        if data is not None and data.get("name") == name:
            remove(record_path)  # the record first: without it the copy no longer counts as present
            remove(paths.model(record_path.stem))


def ensure_key(paths: EndpointPaths) -> str:
    """The endpoint's key, generated and stored (0600) on first use."""
    key = read_secret(paths.key)
    if key is None:
        paths.ensure()
        key = generate_key()
        write_secret(paths.key, key)
    return key


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


def server_alive(server: ServerRecord) -> bool:
    """Whether the recorded process still runs and is the same process that was recorded."""
    if not pid_alive(server.pid):
        return False
    if server.start_ticks is None:
        return True
    return process_start_ticks(server.pid) == server.start_ticks


# ---- the shared state vocabulary ---------------------------------------------------------------------
def endpoint_state(
    paths: EndpointPaths, record: EndpointRecord, *, ready: Callable[[ServerRecord], bool]
) -> EndpointState:
    """The :class:`EndpointState` of a recorded endpoint: IN_SERVICE when every server is ``ready``, FAILED
    (with the last lines of its log) when one has exited or none is recorded, UNKNOWN when one runs but is not
    ready. Carries the record's spec hash and expiry.

    Raises:
        ValueError: the record's ``expires_at`` is not an ISO 8601 time.
    """
    problems: list[str] = []
    if not record.servers:
        problems.append("no tritonserver is recorded for this endpoint")
    variants: list[VariantState] = []
    for server in record.servers:
        if not server_alive(server):
            tail = "\n".join(log_tail(Path(server.log_path), lines=10))
            problems.append(
                f"variant {server.variant}: tritonserver (pid {server.pid}) is not running"
                + (f"; last log lines:\n{tail}" if tail else "")
            )
            variant_status = EndpointStatus.FAILED
        elif not ready(server):
            problems.append(
                f"variant {server.variant}: tritonserver (pid {server.pid}) runs but "
                f"{READY_PATH} on port {server.http_port} does not answer 200"
            )
            variant_status = EndpointStatus.UNKNOWN
        else:
            variant_status = EndpointStatus.IN_SERVICE
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
