"""LocalAdapter: the local target's adapter (see the package docstring)."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from endpointkit._wait import Progress
from endpointkit.adapters._http import Body, HttpTransport, Origin
from endpointkit.adapters.base import (
    Capability,
    DesiredState,
    EndpointState,
    EndpointStatus,
    ObservedState,
    RawResponse,
    Resource,
    ResourceKind,
)
from endpointkit.adapters.local._servers import Launcher, ServerSupervisor, gpu_available
from endpointkit.adapters.local._state import (
    KEY_HEADER,
    READY_PATH,
    EndpointPaths,
    EndpointRecord,
    ServerRecord,
    copy_model,
    delete_model,
    endpoint_lock,
    endpoint_state,
    ensure_key,
    is_endpoint_name,
    load_record,
    read_json,
    read_secret,
    remove,
    server_alive,
    server_json,
    state_root,
    write_json,
)
from endpointkit.adapters.local._tritonserver import TritonServerProcess
from endpointkit.adapters.naming import changed_since_plan, content_name, expires_at, managed_tags
from endpointkit.errors import AuthError, ConflictError, NotFoundError, ProviderError, SpecError
from endpointkit.modelrepo import is_remote_repository, load_repository
from endpointkit.spec import Deployment, LocalTarget, Timeouts

__all__ = ["KEY_HEADER", "LocalAdapter", "gpu_available"]

logger = logging.getLogger("endpointkit.adapters.local")

_HEALTH_TIMEOUT = 2.0
# Without a spec there are no timeouts to read: destroying by state waits as long as a default spec would.
_DESTROY_TIMEOUT = Timeouts().delete
# What a state file that cannot be read raises while it is parsed (bad JSON, missing or unknown fields, bad time).
_UNREADABLE = (OSError, ValueError, TypeError, KeyError)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _expiry_field(deployment: Deployment, changed: str) -> str | None:
    """The record's ``expires_at`` for a change made at ``changed``: a ttl counts from the latest change."""
    expiry = expires_at(deployment, now=datetime.fromisoformat(changed))
    return expiry.isoformat() if expiry else None


class LocalAdapter:
    """Deploys a spec as ``tritonserver`` processes on 127.0.0.1, one per variant.

    Implements :class:`~endpointkit.adapters.base.ReapableAdapter`: :meth:`list_endpoints` and
    :meth:`destroy_by_state` work from the state folder alone, so ``endpointkit reap --target local`` and a
    ``destroy`` whose model repository is gone need no spec.

    ``instance_count`` is not honoured beyond one process per variant: a local endpoint has no instances to
    scale across (Triton's own ``instance_group`` in ``config.pbtxt`` sets parallelism inside the process).
    With several variants, :meth:`invoke` picks a variant per request at random in proportion to the weights
    (``Capability.TRAFFIC_SPLIT`` is supported).

    Security: every server listens on 127.0.0.1, except Triton's SageMaker listener (``sagemaker_protocol:
    true``), which binds every interface; a warning says so when it starts. With ``api_key: true`` inference
    needs the key (``--http-restricted-api``), kept in a 0600 file in the endpoint's 0700 state folder and never
    logged or returned in a state. Triton takes it on its command line, so other local users who may read
    the process list can see it: the key keeps other programs and stray requests out, not other users.

    Args:
        target: the spec's local target section.
        target_name: the target's name in the spec.
        transport: the HTTP transport for health checks and inference (a pooled one by default).
        gpu_probe: answers whether a GPU is present (default: :func:`gpu_available`).
        launcher: starts one server (default: :meth:`TritonServerProcess.start`); tests may wrap it.
        stop_grace: seconds between SIGTERM and SIGKILL when stopping a server.
    """

    kind: str = "local"
    payload_protocol: Literal["triton", "sagemaker"]

    def __init__(
        self,
        target: LocalTarget,
        *,
        target_name: str = "local",
        transport: HttpTransport | None = None,
        gpu_probe: Callable[[], bool] | None = None,
        launcher: Launcher | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        self.target = target
        self.target_name = target_name
        self.root = state_root(target.state_dir)
        self.payload_protocol = "sagemaker" if target.sagemaker_protocol else "triton"
        self._transport = transport or HttpTransport(provider="local")
        self._gpu_probe = gpu_probe or gpu_available
        self._servers = ServerSupervisor(
            launcher or TritonServerProcess.start, stop_grace=stop_grace, before_stop=self._transport.close
        )
        self._keys: dict[Path, tuple[int, str]] = {}

    @classmethod
    def from_state(cls, state: EndpointState, **options: Any) -> LocalAdapter:
        """An adapter that can invoke, inspect, list and destroy local endpoints without their spec.

        ``state`` is either an endpoint's state (its ``extra["state_root"]`` says where its state lives) or the
        bare state ``endpointkit reap --target local`` passes, ``EndpointState("", "local", "local", UNKNOWN)``:
        without ``state_root`` the adapter uses the default state root (``$XDG_STATE_HOME/endpointkit/local``,
        else ``~/.local/state/endpointkit/local``). ``options`` go to the constructor.
        """
        extra = state.extra
        state_dir = extra.get("state_root")
        target = LocalTarget(
            kind="local",
            state_dir=str(state_dir) if state_dir else None,
            sagemaker_protocol=extra.get("protocol") == "sagemaker",
            api_key=bool(extra.get("api_key")),
        )
        options.setdefault("target_name", state.target or cls.kind)
        return cls(target, **options)

    # ---- capabilities and desired state --------------------------------------------------------------
    def limitations(self, deployment: Deployment) -> Mapping[Capability, str]:
        """What a local endpoint cannot do, with the reason and an alternative. Runs ``nvidia-smi -L`` at most once."""
        missing = {
            Capability.FPGA: "FPGAs are served through Azure's FPGA device plugin, not a local Triton; "
            "use an aks target with an NP-series node pool (e.g. Standard_NP10s)",
            Capability.INFERENTIA: "AWS Inferentia chips exist only on AWS; use a sagemaker target with an "
            "inf2 instance type (e.g. ml.inf2.xlarge)",
            Capability.AUTOSCALING: "a local endpoint is one tritonserver process per variant and does not "
            "scale; remove autoscaling or deploy to sagemaker or aks",
            Capability.SERVERLESS: "serverless hosting is a SageMaker feature; use a sagemaker target",
            Capability.ASYNC_INFERENCE: "asynchronous inference is a SageMaker feature; use a sagemaker target",
        }
        if any(variant.accelerator == "gpu" for variant in deployment.variants) and not self._gpu_probe():
            missing[Capability.GPU] = (
                "no GPU on this machine (nvidia-smi -L lists none); use accelerator: cpu for the local target "
                "(a per-target variant override), or deploy to a sagemaker or aks target with GPUs"
            )
        target = deployment.target
        if isinstance(target, LocalTarget) and target.api_key and target.sagemaker_protocol:
            missing[Capability.KEY_AUTH] = (
                "Triton's SageMaker listener does not check --http-restricted-api keys and listens on every "
                "interface, so a key could be bypassed; turn off sagemaker_protocol to protect the endpoint "
                "with api_key"
            )
        return missing

    def desired(self, deployment: Deployment) -> DesiredState:
        """Model, endpoint config and endpoint for ``deployment``. Reads and hashes the repository; no process."""
        target = self._local_target(deployment)
        spec = deployment.spec
        if is_remote_repository(deployment.repository):
            raise SpecError(
                f"model.repository {deployment.repository} is in cloud storage, which the local target does not "
                "read: download it to a folder and point model.repository at that folder, or deploy to a "
                "sagemaker or aks target",
                field="model.repository",
            )
        repository = load_repository(deployment.repository)
        default_model = repository.default_model(spec.model.default_model)
        sha256 = repository.content_hash()
        model = Resource(
            "model",
            content_name(spec.name, {"sha256": sha256}),
            {"sha256": sha256, "source": str(repository.path)},
        )
        launch = {
            "model": model.name,
            "model_sha256": sha256,
            "default_model": default_model,
            "protocol": "sagemaker" if target.sagemaker_protocol else "triton",
            "api_key": target.api_key,
            "environment": dict(spec.model.environment),
            "tritonserver": _binary_setting(target.tritonserver, spec.base_dir),
            "variants": [
                {
                    "name": variant.name,
                    "weight": variant.weight,
                    "accelerator": variant.accelerator,
                    "instance_type": variant.instance_type,
                    "instance_count": variant.instance_count,
                    "gpus": variant.gpus_per_replica,
                }
                for variant in deployment.variants
            ],
        }
        config = Resource("endpoint_config", content_name(spec.name, launch), launch)
        endpoint = Resource("endpoint", spec.name, {"config": config.name})
        return DesiredState(
            spec.name, deployment.spec_hash(), model, config, endpoint, managed_tags(deployment)
        )

    # ---- reading ---------------------------------------------------------------------------------------
    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        """The endpoint's state, the config and model it runs, and which desired resources exist on disk."""
        paths = self._paths(deployment.name)
        existing: set[tuple[ResourceKind, str]] = set()
        if paths.model_present(str(desired.model.properties["sha256"])):
            existing.add(("model", desired.model.name))
        if paths.config(desired.config.name).is_file():
            existing.add(("endpoint_config", desired.config.name))
        record = load_record(paths)
        state = self._state(paths, record)
        if record is None:
            return ObservedState(state, existing=frozenset(existing))
        config = Resource("endpoint_config", record.config, read_json(paths.config(record.config)) or {})
        model = Resource("model", record.model, {"sha256": record.model_sha256})
        return ObservedState(state, model, config, frozenset(existing))

    def status(self, deployment: Deployment) -> EndpointState:
        """IN_SERVICE when every server answers ready; FAILED, with the log's last lines, when one has died.

        Read-only; asks each server's ``/v2/health/ready``.
        """
        paths = self._paths(deployment.name)
        return self._state(paths, load_record(paths))

    # ---- changes ---------------------------------------------------------------------------------------
    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        """Copy the model, write the config, or start the servers and block until every one is ready.

        Idempotent: an existing model or config is kept; a running endpoint with the same config is adopted (a
        concurrent apply of the same spec waits for the lock, then finds it); one whose servers died is cleaned
        up and started again.

        Raises:
            ProviderError: a server exited before it was ready (a model failed to load); carries Triton's log
                lines. Nothing it started is left running.
            ProvisionTimeout: not ready within ``timeouts.create``.
            ConflictError: another run held the endpoint's lock for all of ``timeouts.create``, or made the
                endpoint with another config since this run planned (``ChangedSincePlan``: apply again).
        """
        paths = self._paths(deployment.name)
        with endpoint_lock(paths, timeout=deployment.spec.timeouts.create):
            if resource.kind == "model":
                self._copy_model(paths, resource)
            elif resource.kind == "endpoint_config":
                if not paths.config(resource.name).is_file():
                    paths.ensure()
                    write_json(paths.config(resource.name), resource.properties)
            else:
                self._create_endpoint(deployment, paths, str(resource.properties["config"]), progress)

    def update_endpoint(
        self, deployment: Deployment, desired: DesiredState, *, progress: Progress | None = None
    ) -> None:
        """Blue/green: start servers with ``desired.config``, wait until ready, switch, then stop the old ones.

        Blocks until the new servers serve. If they fail, they are stopped and the old ones keep serving.

        Raises:
            NotFoundError: the endpoint does not exist.
            ProviderError, ProvisionTimeout: the new servers did not become ready (the old ones still serve).
        """
        paths = self._paths(deployment.name)
        with endpoint_lock(paths, timeout=deployment.spec.timeouts.update):
            record = load_record(paths)
            if record is None:
                raise NotFoundError(
                    f"local endpoint {deployment.name} does not exist", provider="local", operation="update"
                )
            if record.config == desired.config.name:
                # Already serving the desired config: only the spec's ttl or tags changed (provisioners.plan.diff).
                self._retag(deployment, paths, record)
                return
            self._launch(deployment, paths, desired.config.name, progress, replacing=record)

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

    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Stop the servers (SIGTERM, then SIGKILL after ``stop_grace``) or remove a config or a model copy.

        Blocks until the servers have exited. Succeeds when the resource is already gone. A config or model
        that the running endpoint still uses is kept. The endpoint's folder goes once it is empty.
        """
        paths = self._paths(deployment.name)
        timeout = deployment.spec.timeouts.delete
        with endpoint_lock(paths, timeout=timeout):
            record = load_record(paths)
            if kind == "endpoint":
                if record is not None:
                    self._servers.report(progress, deployment.name, "DELETING", 0.0, timeout)
                    self._servers.stop(record.servers)
                for leftover in (paths.record, paths.key, paths.logs):
                    remove(leftover)
            elif kind == "endpoint_config" and (record is None or record.config != name):
                remove(paths.config(name))
            elif kind == "model" and (record is None or record.model != name):
                delete_model(paths, name)
            paths.prune()

    # ---- without a spec: reap and destroy after the repository is gone ------------------------------------
    def list_endpoints(self) -> list[EndpointState]:
        """Every local endpoint under the state root, with its status, spec hash and expiry. Read-only.

        Reads one ``endpoint.json`` per endpoint folder and checks that each recorded pid is still the recorded
        process; it sends no health request and starts no process. So ``status`` is IN_SERVICE while every
        server runs and FAILED (with the last lines of the log in ``reason``) when one has died. ``expires_at``
        is the expiry set from the spec's ttl at apply time (timezone-aware UTC), None without a ttl. A state
        file that cannot be read is listed as UNKNOWN with the reason and no expiry, so reap leaves it alone.
        Folders without ``endpoint.json`` (no endpoint was started) are not listed.
        """
        try:
            folders = sorted(entry for entry in self.root.iterdir() if entry.is_dir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ProviderError(
                f"cannot list the local state folder {self.root}: {error.strerror or error}",
                provider="local",
                operation="list",
            ) from error
        states: list[EndpointState] = []
        for folder in folders:
            if not is_endpoint_name(folder.name):
                continue  # .locks and anything endpointkit did not name
            paths = self._paths(folder.name)
            try:
                record = load_record(paths)
                if record is None:
                    continue
                state = endpoint_state(paths, record, ready=lambda server: True)
            except _UNREADABLE as error:
                logger.warning("local endpoint %s: cannot read %s: %s", folder.name, paths.record, error)
                states.append(
                    EndpointState(
                        folder.name,
                        self.target_name,
                        self.kind,
                        EndpointStatus.UNKNOWN,
                        reason=f"cannot read {paths.record}: {error}",
                        extra={"state_root": str(paths.root), "state_dir": str(paths.directory)},
                    )
                )
                continue
            states.append(dataclasses.replace(state, name=folder.name, target=self.target_name))
        return states

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Stop the servers of the endpoint ``state`` names and remove its state folder, without its spec.

        The servers to stop are read from ``endpoint.json`` under the endpoint's lock (not from ``state``, which
        may be stale). Servers get SIGTERM, then SIGKILL after ``stop_grace``; only then are the key, logs,
        configs and model copies removed, and ``endpoint.json`` last, so an interrupted run can be repeated.
        Idempotent: an endpoint that is already gone is skipped. Blocks until the servers have exited.

        Raises:
            ConflictError: ``state`` does not name a local endpoint under this adapter's state root (a name that
                is not an endpoint name, or another state root); the endpoint was applied again with another
                expiry since ``state`` was read; or another run held its lock for too long.
            ProviderError: ``endpoint.json`` cannot be read (its servers cannot be found, so nothing is
                removed), or a server survived SIGKILL (the state is kept so a later run can retry).
        """
        paths = self._owned_paths(state)
        with endpoint_lock(paths, timeout=_DESTROY_TIMEOUT):
            try:
                record = load_record(paths)
            except _UNREADABLE as error:
                raise ProviderError(
                    f"cannot read {paths.record} of local endpoint {paths.name} ({error}), so its servers "
                    "cannot be found; stop them and remove the folder by hand",
                    provider="local",
                    operation="delete",
                    code="UnreadableState",
                ) from error
            if record is None:
                paths.prune()
                return
            if state.expires_at is not None and record.expires != state.expires_at:
                raise ConflictError(
                    f"local endpoint {paths.name} was applied again since it was listed (it now expires at "
                    f"{record.expires.isoformat() if record.expires else 'never'}); not destroyed",
                    provider="local",
                    operation="delete",
                    code="Changed",
                )
            self._servers.report(progress, paths.name, "DELETING", 0.0, _DESTROY_TIMEOUT)
            self._servers.stop(record.servers)
            survivors = [server.pid for server in record.servers if server_alive(server)]
            if survivors:
                raise ProviderError(
                    f"local endpoint {paths.name}: tritonserver pid(s) {survivors} did not exit after SIGKILL; "
                    f"its state is kept in {paths.directory}",
                    provider="local",
                    operation="delete",
                    code="StillRunning",
                )
            for leftover in (paths.key, paths.logs, paths.configs, paths.models):
                remove(leftover)
            remove(paths.record)
            remove(paths.directory)
        logger.info("local endpoint %s destroyed (servers %s)", paths.name, [s.pid for s in record.servers])

    def _owned_paths(self, state: EndpointState) -> EndpointPaths:
        """The files of the endpoint ``state`` names, refusing names and roots this adapter does not manage."""
        if not is_endpoint_name(state.name):
            raise ConflictError(
                f"{state.name!r} is not a local endpoint name, so it is not managed by endpointkit under "
                f"{self.root}",
                provider="local",
                operation="delete",
                code="NotManaged",
            )
        root = state.extra.get("state_root")
        if root and Path(str(root)).expanduser().resolve() != self.root:
            raise ConflictError(
                f"local endpoint {state.name} lives under {root}, not under this adapter's state root "
                f"{self.root}; destroy it with LocalAdapter.from_state(state)",
                provider="local",
                operation="delete",
                code="OtherStateRoot",
            )
        return self._paths(state.name)

    # ---- inference -------------------------------------------------------------------------------------
    def invoke(
        self,
        state: EndpointState,
        body: Body,
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """POST an encoded request to one variant's server (picked by weight) and return the response unparsed.

        Triton protocol: ``/v2/models/<model>/infer`` on the HTTP port (``model`` defaults to the repository's
        default model). SageMaker protocol: ``/invocations`` on the SageMaker listener, which serves the default
        model only. The endpoint key, when there is one, is read from the state folder and sent in
        ``endpointkit-key``. A state from before a blue/green update (its servers are gone) is refreshed from
        disk once. Blocks; thread-safe.

        Raises:
            NotFoundError: the endpoint's servers are not running.
            ProviderError: the request failed on the way (``retryable`` for connection errors).
        """
        servers: Sequence[Mapping[str, Any]] = state.extra.get("servers", ())
        try:
            return self._send(state, servers, body, headers, model, timeout)
        except ProviderError as error:
            if error.code != "ConnectionRefused":
                raise
            refreshed = load_record(EndpointPaths(Path(state.extra["state_root"]), state.name))
            current = [] if refreshed is None else [server_json(server) for server in refreshed.servers]
            if not current or current == list(servers):
                raise NotFoundError(
                    f"local endpoint {state.name} is not running ({error}); run `endpointkit apply` to start it",
                    provider="local",
                    operation="invoke",
                    code="NotRunning",
                ) from error
            return self._send(state, current, body, headers, model, timeout)

    def close(self) -> None:
        """Close pooled connections. Servers keep running: ``delete`` stops them."""
        self._transport.close()

    # ---- endpoint internals ----------------------------------------------------------------------------
    def _create_endpoint(
        self, deployment: Deployment, paths: EndpointPaths, config_name: str, progress: Progress | None
    ) -> None:
        record = load_record(paths)
        if record is not None:
            alive = [server for server in record.servers if server_alive(server)]
            if len(alive) == len(record.servers) and all(self._ready(server) for server in alive):
                if record.config == config_name:
                    logger.info("local endpoint %s already serves %s: adopted", deployment.name, config_name)
                    timeout = deployment.spec.timeouts.create
                    self._servers.report(progress, deployment.name, "IN_SERVICE", 0.0, timeout)
                    return
                raise changed_since_plan(deployment.name, record.config, config_name, provider="local")
            self._servers.stop(record.servers)  # a dead endpoint's leftovers
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
    ) -> None:
        """Start the servers of ``config_name``, record them, then stop the ones they replace (blue/green)."""
        config = self._config(paths, config_name)
        key = ensure_key(paths) if config["api_key"] else None
        phase, timeout = ("UPDATING", deployment.spec.timeouts.update)
        if replacing is None:
            phase, timeout = ("CREATING", deployment.spec.timeouts.create)
        started = time.monotonic()
        servers = self._servers.start(
            paths,
            config_name,
            config,
            restricted_api=(KEY_HEADER, key) if key else None,
            phase=phase,
            timeout=timeout,
            progress=progress,
        )
        now = _now()
        created = replacing.created if replacing is not None else now
        record = EndpointRecord(
            name=deployment.name,
            target=self.target_name,
            config=config_name,
            model=str(config["model"]),
            model_sha256=str(config["model_sha256"]),
            default_model=str(config["default_model"]),
            protocol=str(config["protocol"]),
            api_key=bool(config["api_key"]),
            spec_hash=deployment.spec_hash(),
            created=created,
            updated=now,
            expires_at=_expiry_field(deployment, now),
            servers=servers,
        )
        try:
            write_json(paths.record, record.to_json())
        except BaseException:
            self._servers.stop(servers)
            raise
        if replacing is not None:
            self._servers.stop(replacing.servers)
        if key is None:
            remove(paths.key)
        elapsed = time.monotonic() - started
        logger.info("local endpoint %s serves %s after %.1fs", deployment.name, config_name, elapsed)
        self._servers.report(progress, deployment.name, "IN_SERVICE", elapsed, timeout)

    def _copy_model(self, paths: EndpointPaths, resource: Resource) -> None:
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

    # ---- state ----------------------------------------------------------------------------------------
    def _state(self, paths: EndpointPaths, record: EndpointRecord | None) -> EndpointState:
        if record is None or not record.servers:
            return EndpointState(paths.name, self.target_name, self.kind, EndpointStatus.NOT_FOUND)
        return endpoint_state(paths, record, ready=self._ready)

    def _ready(self, server: ServerRecord) -> bool:
        origin = Origin("http", "127.0.0.1", server.http_port)
        try:
            response = self._transport.request("GET", origin, READY_PATH, timeout=_HEALTH_TIMEOUT)
        except ProviderError:
            return False
        return response.status == 200

    def _config(self, paths: EndpointPaths, name: str) -> dict[str, Any]:
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

    # ---- helpers ---------------------------------------------------------------------------------------
    def _key(self, key_file: Path) -> str:
        try:
            stamp = key_file.stat().st_mtime_ns
        except FileNotFoundError:
            raise NotFoundError(
                f"the endpoint key {key_file} is missing; apply the endpoint again",
                provider="local",
                operation="invoke",
            ) from None
        cached = self._keys.get(key_file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            key = read_secret(key_file) or ""
        except OSError as error:
            raise AuthError(
                f"cannot read the endpoint key {key_file}: {error.strerror or error}; it is readable by the user "
                "who applied the endpoint only",
                provider="local",
                operation="invoke",
            ) from error
        self._keys[key_file] = (stamp, key)
        return key

    def _send(
        self,
        state: EndpointState,
        servers: Sequence[Mapping[str, Any]],
        body: Body,
        headers: Mapping[str, str],
        model: str | None,
        timeout: float | None,
    ) -> RawResponse:
        if not servers:
            raise NotFoundError(
                f"local endpoint {state.name} has no server", provider="local", operation="invoke"
            )
        server = (
            servers[0] if len(servers) == 1 else random.choices(servers, [s["weight"] for s in servers])[0]
        )
        extra = state.extra
        default_model = str(extra["default_model"])
        if extra.get("protocol") == "sagemaker":
            if model is not None and model != default_model:
                raise ProviderError(
                    f"{state.name} speaks the SageMaker protocol, whose /invocations serves only the default "
                    f"model {default_model!r}, not {model!r}; set sagemaker_protocol: false to call any model",
                    provider="local",
                    operation="invoke",
                    code="ModelNotServed",
                )
            origin, path = Origin("http", "127.0.0.1", int(server["sagemaker_port"])), "/invocations"
        else:
            origin = Origin("http", "127.0.0.1", int(server["http_port"]))
            path = f"/v2/models/{quote(model or default_model, safe='')}/infer"
        if extra.get("api_key"):
            headers = {**headers, KEY_HEADER: self._key(Path(extra["key_file"]))}
        return self._transport.request("POST", origin, path, body, headers, timeout=timeout)

    def _paths(self, name: str) -> EndpointPaths:
        return EndpointPaths(self.root, name)

    def _local_target(self, deployment: Deployment) -> LocalTarget:
        if not isinstance(deployment.target, LocalTarget):
            raise SpecError(f"target {deployment.target_name!r} is {deployment.kind}, not local")
        return deployment.target


def _binary_setting(value: str | None, base_dir: Path) -> str | None:
    """The target's ``tritonserver`` setting, a relative path resolved against the spec file's folder."""
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())
