"""Creating, updating and deleting a local endpoint's model copy, config and servers, under the endpoint's lock.

An update is blue/green: the new servers start and become ready, the caller's ``verify`` hook checks them through a
candidate state that reaches them alone (:func:`candidate_state`), ``endpoint.json`` switches to them, then the old
ones stop. Until the old servers are signalled, any exception, ``KeyboardInterrupt`` included, undoes the launch:
the new servers stop, ``endpoint.json`` is what it was, and the previous version serves all traffic. The local
target has no traffic split between versions, so a canary or linear rollout runs all at once after the checks.

Every change first stops the servers a killed run left starting (``starting/``), and once an endpoint is gone
nothing in its folder is kept: a destroy that raced an update leaves no model copy or config behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from endpointkit._endpoint_state import encode_expiry
from endpointkit._wait import Progress
from endpointkit.adapters.base import DesiredState, EndpointState, Resource, ResourceKind, VerifyHook
from endpointkit.adapters.local._files import (
    generate_key,
    read_json,
    read_secret,
    remove,
    write_json,
    write_secret,
)
from endpointkit.adapters.local._servers import ServerSupervisor
from endpointkit.adapters.local._state import (
    KEY_HEADER,
    EndpointPaths,
    EndpointRecord,
    ServerRecord,
    endpoint_lock,
    endpoint_state,
    load_record,
    server_alive,
)
from endpointkit.adapters.naming import changed_since_plan, expires_at
from endpointkit.errors import NotFoundError, ProviderError
from endpointkit.spec import Deployment

__all__ = ["CANDIDATE", "Rollout", "candidate_state", "copy_model", "delete_model", "ensure_key"]

logger = logging.getLogger("endpointkit.adapters.local")

CANDIDATE = "candidate"
"""The ``extra`` key that marks a candidate's state: invoking it must never follow ``endpoint.json``."""


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _expiry_field(deployment: Deployment, changed: str) -> str | None:
    """The record's ``expires_at`` for a change made at ``changed``: a ttl counts from the latest change."""
    expiry = expires_at(deployment, now=datetime.fromisoformat(changed))
    return encode_expiry(expiry) if expiry else None


class Rollout:
    """``create``, ``update_endpoint`` and ``delete`` of ``LocalAdapter``, which documents them.

    Args:
        servers: starts and stops the endpoint's processes.
        target_name: the target's name, recorded in ``endpoint.json``.
        ready: whether a recorded server answers ready (decides whether a running endpoint is adopted).
    """

    def __init__(
        self, servers: ServerSupervisor, *, target_name: str, ready: Callable[[ServerRecord], bool]
    ) -> None:
        self._servers = servers
        self._target_name = target_name
        self._ready = ready

    def create(
        self, deployment: Deployment, paths: EndpointPaths, resource: Resource, progress: Progress | None
    ) -> None:
        with endpoint_lock(paths, timeout=deployment.spec.timeouts.create):
            if resource.kind == "model":
                _copy_model_or_raise(paths, resource)
            elif resource.kind == "endpoint_config":
                if not paths.config(resource.name).is_file():
                    paths.ensure()
                    write_json(paths.config(resource.name), resource.properties)
            else:
                self._create_endpoint(deployment, paths, str(resource.properties["config"]), progress)

    def update_endpoint(
        self,
        deployment: Deployment,
        paths: EndpointPaths,
        desired: DesiredState,
        progress: Progress | None,
        verify: VerifyHook | None,
    ) -> None:
        with endpoint_lock(paths, timeout=deployment.spec.timeouts.update):
            record = load_record(paths)
            self._servers.stop_orphans(paths, record)
            if record is None:
                # Destroyed since this run planned: what the run created for it would serve nothing.
                self._remove_unused(paths)
                raise NotFoundError(
                    f"local endpoint {deployment.name} does not exist", provider="local", operation="update"
                )
            if record.config == desired.config.name and self._serving(record):
                # Already serving the desired config: only the spec's ttl or tags changed (provisioners.plan.diff).
                self._retag(deployment, paths, record)
                return
            # A new config, or the same one with a server that stopped answering (drift): relaunch blue/green.
            self._launch(deployment, paths, desired.config.name, progress, replacing=record, verify=verify)

    def delete(
        self,
        deployment: Deployment,
        paths: EndpointPaths,
        kind: ResourceKind,
        name: str,
        progress: Progress | None,
    ) -> None:
        timeout = deployment.spec.timeouts.delete
        with endpoint_lock(paths, timeout=timeout):
            record = load_record(paths)
            if kind == "endpoint":
                self._servers.stop_orphans(paths, record)
                if record is not None:
                    self._servers.report(progress, deployment.name, "DELETING", 0.0, timeout)
                    self._servers.stop(paths, record.servers)
                for leftover in (paths.record, paths.key, paths.logs):
                    remove(leftover)
            elif record is None:
                # No endpoint: every config and model copy in its folder is unused, not only the one named
                # (an update that raced this destroy may have added its own).
                self._remove_unused(paths)
            elif kind == "endpoint_config" and record.config != name:
                remove(paths.config(name))
            elif kind == "model" and record.model != name:
                delete_model(paths, name)
            paths.prune()

    # ---- internals ------------------------------------------------------------------------------------
    def _remove_unused(self, paths: EndpointPaths) -> None:
        """Without an endpoint: stop what a killed run left starting, then remove every config and model copy."""
        self._servers.stop_orphans(paths, None)
        for leftover in (paths.configs, paths.models):
            remove(leftover)
        paths.prune()

    def _serving(self, record: EndpointRecord) -> bool:
        """Whether every recorded server runs and answers ready (one readiness probe each)."""
        return bool(record.servers) and all(
            server_alive(server) and self._ready(server) for server in record.servers
        )

    def _retag(self, deployment: Deployment, paths: EndpointPaths, record: EndpointRecord) -> None:
        now = _now()
        write_json(
            paths.record,
            dataclasses.replace(
                record,
                spec_hash=deployment.spec_hash(),
                updated=now,
                expires_at=_expiry_field(deployment, now),
            ).to_json(),
        )

    def _create_endpoint(
        self, deployment: Deployment, paths: EndpointPaths, config_name: str, progress: Progress | None
    ) -> None:
        record = load_record(paths)
        self._servers.stop_orphans(paths, record)
        if record is not None:
            alive = [server for server in record.servers if server_alive(server)]
            if len(alive) == len(record.servers) and all(self._ready(server) for server in alive):
                if record.config == config_name:
                    logger.info("local endpoint %s already serves %s: adopted", deployment.name, config_name)
                    timeout = deployment.spec.timeouts.create
                    self._servers.report(progress, deployment.name, "IN_SERVICE", 0.0, timeout)
                    return
                raise changed_since_plan(deployment.name, record.config, config_name, provider="local")
            self._servers.stop(paths, record.servers)  # a dead endpoint's leftovers
            remove(paths.record)
        self._launch(deployment, paths, config_name, progress, replacing=None)

    def _launch(
        self,
        deployment: Deployment,
        paths: EndpointPaths,
        config_name: str,
        progress: Progress | None,
        *,
        replacing: EndpointRecord | None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Start the servers of ``config_name``, let ``verify`` check them, record them, then stop the ones they
        replace (blue/green).

        Until the replaced servers are signalled, any exception (an interrupt too) undoes the launch
        (:meth:`_abandon`) and propagates; once they are, the launch has taken over and completes.
        """
        config = _config(paths, config_name)
        phase, timeout = ("UPDATING", deployment.spec.timeouts.update)
        if replacing is None:
            phase, timeout = ("CREATING", deployment.spec.timeouts.create)
        started = time.monotonic()
        key_made = bool(config["api_key"]) and read_secret(paths.key) is None
        servers: tuple[ServerRecord, ...] = ()
        try:
            key = ensure_key(paths) if config["api_key"] else None
            servers = self._servers.start(
                paths,
                config_name,
                config,
                restricted_api=(KEY_HEADER, key) if key else None,
                phase=phase,
                timeout=timeout,
                progress=progress,
            )
            record = self._record(deployment, config_name, config, servers, replacing)
            if verify is not None:
                verify(candidate_state(paths, record, ready=self._ready))
            write_json(paths.record, record.to_json())
            self._servers.settle(paths, servers)
        except BaseException:
            self._abandon(paths, servers, replacing, key_made=key_made)
            raise
        if replacing is not None:
            self._retire(paths, replacing)
        if key is None:
            remove(paths.key)
        elapsed = time.monotonic() - started
        logger.info("local endpoint %s serves %s after %.1fs", deployment.name, config_name, elapsed)
        self._servers.report(progress, deployment.name, "IN_SERVICE", elapsed, timeout)

    def _record(
        self,
        deployment: Deployment,
        config_name: str,
        config: dict[str, Any],
        servers: tuple[ServerRecord, ...],
        replacing: EndpointRecord | None,
    ) -> EndpointRecord:
        """The ``endpoint.json`` that makes ``servers`` the endpoint."""
        now = _now()
        return EndpointRecord(
            name=deployment.name,
            target=self._target_name,
            config=config_name,
            model=str(config["model"]),
            model_sha256=str(config["model_sha256"]),
            default_model=str(config["default_model"]),
            protocol=str(config["protocol"]),
            api_key=bool(config["api_key"]),
            spec_hash=deployment.spec_hash(),
            created=replacing.created if replacing is not None else now,
            updated=now,
            expires_at=_expiry_field(deployment, now),
            servers=servers,
        )

    def _abandon(
        self,
        paths: EndpointPaths,
        servers: tuple[ServerRecord, ...],
        replacing: EndpointRecord | None,
        *,
        key_made: bool,
    ) -> None:
        """Undo a launch before its servers took over: ``endpoint.json`` back to ``replacing``, every server the
        launch started stopped, and the key it made removed unless ``replacing`` uses one.

        The record is compared, not assumed: an interrupt may land after ``endpoint.json`` was replaced and before
        the call that replaced it returned. ``stop_orphans`` finds the servers an interrupt inside ``start`` left
        without a handle (each is in ``starting/`` from the moment its process exists).
        """
        if load_record(paths) != replacing:
            if replacing is None:
                remove(paths.record)
            else:
                write_json(paths.record, replacing.to_json())
        self._servers.stop(paths, servers)
        self._servers.stop_orphans(paths, replacing)
        if key_made and (replacing is None or not replacing.api_key):
            remove(paths.key)

    def _retire(self, paths: EndpointPaths, replaced: EndpointRecord) -> None:
        """Stop the servers ``endpoint.json`` no longer lists: the new ones serve."""
        try:
            self._servers.stop(paths, replaced.servers)
        except BaseException:
            # No record lists them any more, so no later run would find them: finish stopping them first.
            self._servers.stop(paths, replaced.servers)
            raise


def candidate_state(
    paths: EndpointPaths, record: EndpointRecord, *, ready: Callable[[ServerRecord], bool]
) -> EndpointState:
    """The state of servers that ``record`` would make the endpoint, before ``endpoint.json`` says so.

    Shaped as :meth:`LocalAdapter.status` shapes a state (``extra["servers"]`` are the new servers), and marked
    with ``extra["candidate"]``: the adapter invokes it without ever following ``endpoint.json`` (which names the
    version the candidate is checked against), so a candidate whose servers refuse fails instead of answering
    with the old version. Asks each server's readiness once.
    """
    state = endpoint_state(paths, record, ready=ready)
    return dataclasses.replace(state, extra={**state.extra, CANDIDATE: True})


def _config(paths: EndpointPaths, name: str) -> dict[str, Any]:
    config = read_json(paths.config(name))
    if config is None:
        raise NotFoundError(
            f"endpoint config {name} of local endpoint {paths.name} does not exist ({paths.config(name)})",
            provider="local",
            operation="create",
        )
    if not paths.model_present(str(config["model_sha256"])):
        raise NotFoundError(
            f"model {config['model']} of local endpoint {paths.name} is not in {paths.models}",
            provider="local",
            operation="create",
        )
    return config


def _copy_model_or_raise(paths: EndpointPaths, resource: Resource) -> None:
    source = str(resource.properties["source"])
    try:
        copy_model(paths, resource.name, str(resource.properties["sha256"]), source)
    except OSError as error:
        raise ProviderError(
            f"cannot copy the model repository {source} into {paths.models}: {error}",
            provider="local",
            operation="create",
            code="CopyFailed",
        ) from error


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
