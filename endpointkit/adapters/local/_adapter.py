"""LocalAdapter: the local target's adapter (see the package docstring).

The class is the seam: desired state comes from ``_desired``, what exists from ``_state``, changes from
``_rollout``, spec-less listing and deletion from ``_reap``, requests from ``_invoke``; processes are started and
stopped by ``_servers``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from endpointkit._observations import EndpointMetrics, LogRecord
from endpointkit._wait import Progress
from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters._http import Body, HttpTransport, Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters.base import (
    Adapter,
    AsyncAdapter,
    Capability,
    DesiredState,
    EndpointState,
    GrpcAdapter,
    LogsAdapter,
    MetricsAdapter,
    ObservedState,
    RawResponse,
    ReapableAdapter,
    Resource,
    ResourceKind,
    VerifyHook,
)
from endpointkit.adapters.local import _desired
from endpointkit.adapters.local._drift import server_drift
from endpointkit.adapters.local._invoke import Invoker
from endpointkit.adapters.local._logs import endpoint_logs
from endpointkit.adapters.local._metrics import read_metrics
from endpointkit.adapters.local._reap import Reaper
from endpointkit.adapters.local._rollout import CANDIDATE, Rollout
from endpointkit.adapters.local._servers import Launcher, ServerSupervisor, gpu_available
from endpointkit.adapters.local._state import (
    KEY_HEADER,
    READY_PATH,
    EndpointPaths,
    ServerRecord,
    load_record,
    observe,
    read_state,
    state_root,
)
from endpointkit.adapters.local._tritonserver import TritonServerProcess
from endpointkit.errors import ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES
from endpointkit.spec import Deployment, LocalTarget, RolloutStrategy

__all__ = ["KEY_HEADER", "LocalAdapter", "gpu_available"]

logger = logging.getLogger("endpointkit.adapters.local")

_HEALTH_TIMEOUT = 2.0


class LocalAdapter:
    """Deploys a spec as ``tritonserver`` processes on 127.0.0.1, one per variant.

    Implements :class:`~endpointkit.adapters.base.ReapableAdapter`: :meth:`list_endpoints` and
    :meth:`destroy_by_state` work from the state folder alone, so ``endpointkit reap --target local`` and a
    ``destroy`` whose model repository is gone need no spec.

    An update is blue/green and all at once: the local target does not split traffic between two versions, so
    a spec's canary or linear rollout runs its checks, then moves every request at once (:meth:`rollout_lines`).

    ``instance_count`` is not honoured beyond one process per variant: a local endpoint has no instances to
    scale across (Triton's own ``instance_group`` in ``config.pbtxt`` sets parallelism inside the process).
    With several variants, :meth:`invoke` picks a variant per request at random in proportion to the weights
    (``Capability.TRAFFIC_SPLIT`` is supported).

    Security: everything listens on 127.0.0.1, the SageMaker protocol (``sagemaker_protocol: true``) too: Triton's
    own SageMaker listener can only bind every interface, so a small front per variant serves ``/ping`` and
    ``/invocations`` on 127.0.0.1 and passes requests to Triton's HTTP port. With ``api_key: true`` inference
    needs the key (``--http-restricted-api``, through the front as well), kept in a 0600 file in the endpoint's
    0700 state folder and never logged or returned in a state. Triton takes it on its command line, so other
    local users who may read the process list can see it: the key keeps other programs and stray requests out,
    not other users.

    A run killed while its servers start (SIGKILL, a power cut of the terminal) leaves them running; they are
    recorded before the wait for readiness, so :meth:`status` reports them (FAILED, naming their pids) and the
    next ``apply``, ``destroy`` or ``reap`` stops them.

    Args:
        target: the spec's local target section.
        target_name: the target's name in the spec.
        transport: the HTTP transport for health checks and inference (a pooled one by default).
        async_transport: the asyncio transport of ``ainvoke`` (a pooled one by default).
        max_response_bytes: the largest response body the default transports accept, inflated or not
            (64 MiB by default; ``invoke_endpoint(..., max_response_bytes=N)`` passes it here).
        gpu_probe: answers whether a GPU is present (default: :func:`gpu_available`).
        launcher: starts one server (default: :meth:`TritonServerProcess.start`); tests may wrap it. It is
            given ``on_spawn``, to call with the server as soon as its process exists.
        stop_grace: seconds between SIGTERM and SIGKILL when stopping a server.
    """

    kind: str = "local"
    payload_protocol: Literal["triton", "sagemaker"]
    #: no limit of the whole body: tritonserver checks each input against --http-max-input-size (64 MiB by
    #: default) and answers 400 with its own message
    max_request_bytes: int | None = None

    def __init__(
        self,
        target: LocalTarget,
        *,
        target_name: str = "local",
        transport: HttpTransport | None = None,
        async_transport: AsyncHttpTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
        gpu_probe: Callable[[], bool] | None = None,
        launcher: Launcher | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        self.target = target
        self.target_name = target_name
        self.root = state_root(target.state_dir)
        self.payload_protocol = "sagemaker" if target.sagemaker_protocol else "triton"
        bound = max_response_bytes
        self._transport = transport or HttpTransport(provider="local", max_response_bytes=bound)
        self._async_transport = async_transport or AsyncHttpTransport(
            provider="local", max_response_bytes=bound
        )
        self._gpu_probe = gpu_probe or gpu_available
        # Triton waits for open keep-alive connections on SIGTERM: every pooled one is closed before a stop.
        self._servers = ServerSupervisor(
            launcher or TritonServerProcess.start, stop_grace=stop_grace, before_stop=self.close
        )
        self._rollout = Rollout(self._servers, target_name=target_name, ready=self._ready)
        self._reaper = Reaper(self._servers, root=self.root, target_name=target_name)
        self._invoker = Invoker(self._transport, self._async_transport)

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
        return _desired.limitations(deployment, gpu_present=self._gpu_probe)

    def desired(self, deployment: Deployment) -> DesiredState:
        """Model, endpoint config and endpoint for ``deployment``. Reads and hashes the repository; no process."""
        return _desired.desired_state(deployment)

    # ---- reading ---------------------------------------------------------------------------------------
    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        """The endpoint's state, the config and model it runs, and which desired resources exist on disk.

        ``drift`` names each variant whose server died or no longer answers (``_drift``).
        """
        observed = observe(
            self._paths(deployment.name), desired, target_name=self.target_name, ready=self._ready
        )
        return dataclasses.replace(observed, drift=server_drift(observed.state))

    def status(self, deployment: Deployment) -> EndpointState:
        """IN_SERVICE when every server answers ready; FAILED, with the log's last lines, when one has died.

        Servers that a killed ``apply`` left starting, with no endpoint recorded, read as FAILED (CREATING while
        that apply still runs), with their pids in ``reason``. Read-only; asks each server's
        ``/v2/health/ready``.
        """
        paths = self._paths(deployment.name)
        return read_state(paths, load_record(paths), target_name=self.target_name, ready=self._ready)

    # ---- changes ---------------------------------------------------------------------------------------
    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        """Copy the model, write the config, or start the servers and block until every one is ready.

        Idempotent: an existing model or config is kept; a running endpoint with the same config is adopted (a
        concurrent apply of the same spec waits for the lock, then finds it); one whose servers died is cleaned
        up and started again, and so are servers a killed run left starting.

        Raises:
            ProviderError: a server exited before it was ready (a model failed to load); carries Triton's log
                lines. Nothing it started is left running.
            ProvisionTimeout: not ready within ``timeouts.create``.
            ConflictError: another run held the endpoint's lock for all of ``timeouts.create``, or made the
                endpoint with another config since this run planned (``ChangedSincePlan``: apply again).
        """
        self._rollout.create(deployment, self._paths(deployment.name), resource, progress)

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Blue/green: start servers with ``desired.config``, wait until ready, ``verify`` them, switch, then stop
        the old ones.

        Blocks until the new servers serve. ``verify`` is called once they are ready and before ``endpoint.json``
        names them, with a candidate state shaped as :meth:`status` returns it (``extra["servers"]`` are the new
        servers, ``extra["candidate"]`` is True): invoking it reaches the new servers only, never the version in
        service, even when they refuse. An endpoint already on ``desired.config`` is only re-tagged (ttl, tags)
        while every server answers ready, with no call to ``verify``; one whose server died or stopped answering
        (drift) is relaunched the same blue/green way.

        If the new servers fail, ``verify`` raises, or the run is interrupted (``KeyboardInterrupt``, or SIGTERM
        where the CLI turns it into one) before the old servers are signalled, the new servers are stopped,
        ``endpoint.json`` is left as it was, a key made for them is removed, and the old servers keep serving
        every request. The model copy and config of the new version are the caller's to remove (the provisioner
        deletes what its run created). An interrupt after the switch lets the old servers finish stopping.

        Raises:
            NotFoundError: the endpoint does not exist (destroyed since this run planned: the configs and model
                copies left in its folder are removed, as they would serve nothing).
            ProviderError, ProvisionTimeout: the new servers did not become ready (the old ones still serve).
            Exception: whatever ``verify`` raised (``VerificationError`` for a failed check).
        """
        paths = self._paths(deployment.name)
        self._rollout.update_endpoint(deployment, paths, desired, progress, verify)

    def rollout_lines(self, deployment: Deployment) -> list[str]:
        """How an update moves traffic on this target, for plan: all at once, after the checks pass.

        The local target does not split traffic between versions: a canary or linear rollout runs the ``verify``
        checks against the new version, then moves all traffic at once, and the line says so. Pure.
        """
        rollout = deployment.spec.rollout
        checked = " once its checks pass" if deployment.spec.verify else ""
        if not isinstance(rollout, RolloutStrategy):
            return [f"all at once: the new version takes all traffic{checked}"]
        return [
            f"{rollout.kind} asked, but the {deployment.target_name} target does not split traffic between "
            f"versions: the new version takes all traffic at once{checked}"
        ]

    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Stop the servers (SIGTERM, then SIGKILL after ``stop_grace``) or remove a config or a model copy.

        Blocks until the servers have exited. Succeeds when the resource is already gone. A config or model
        that the running endpoint still uses is kept; without an endpoint, every config and model copy in its
        folder goes, not only the one named (nothing can use them). The endpoint's folder goes once it is empty.
        """
        self._rollout.delete(deployment, self._paths(deployment.name), kind, name, progress)

    # ---- without a spec: reap and destroy after the repository is gone ------------------------------------
    def list_endpoints(self) -> list[EndpointState]:
        """Every local endpoint under the state root, with its status, spec hash and expiry. Read-only.

        Reads one ``endpoint.json`` per endpoint folder and checks that each recorded pid is still the recorded
        process; it sends no health request and starts no process. So ``status`` is IN_SERVICE while every
        server runs and FAILED (with the last lines of the log in ``reason``) when one has died. ``expires_at``
        is the expiry set from the spec's ttl at apply time (timezone-aware UTC), None without a ttl. A state
        file that cannot be read is listed as UNKNOWN with the reason and no expiry, so reap leaves it alone.
        Folders without ``endpoint.json`` are listed only when servers a killed run left starting still run
        there: FAILED, expired since they started, so reap stops them.
        """
        return self._reaper.list_endpoints()

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Stop the servers of the endpoint ``state`` names and remove its state folder, without its spec.

        The servers to stop are read from ``endpoint.json`` and ``starting/`` under the endpoint's lock (not
        from ``state``, which may be stale). Servers get SIGTERM, then SIGKILL after ``stop_grace``; only then
        are the key, logs, configs and model copies removed, and ``endpoint.json`` last, so an interrupted run
        can be repeated. Idempotent: an endpoint that is already gone is skipped. Blocks until the servers have
        exited.

        Raises:
            ConflictError: ``state`` does not name a local endpoint under this adapter's state root (a name that
                is not an endpoint name, or another state root); the endpoint was applied again with another
                expiry since ``state`` was read; or another run held its lock for too long.
            ProviderError: ``endpoint.json`` cannot be read (its servers cannot be found, so nothing is
                removed), or a server survived SIGKILL (the state is kept so a later run can retry).
        """
        self._reaper.destroy_by_state(state, progress)

    # ---- logs ------------------------------------------------------------------------------------------
    def logs(
        self,
        deployment: Deployment,
        *,
        variant: str | None,
        since: datetime | None,
        tail: int | None,
        follow: bool,
        previous: bool = False,
    ) -> Iterator[LogRecord]:
        """The endpoint's tritonserver log lines (each server's log file), interleaved by Triton's timestamps.

        ``replica`` is ``pid-<server pid>``. ``previous`` changes nothing: a local server that died is replaced
        by the next apply and its log goes with it. With ``follow`` the files are read again every half second
        until the caller stops iterating or the endpoint is destroyed. Read-only.

        Raises:
            NotFoundError: the endpoint has no recorded server.
        """
        return endpoint_logs(
            self._paths(deployment.name), variant=variant, since=since, tail=tail, follow=follow
        )

    # ---- metrics ---------------------------------------------------------------------------------------
    def metrics(self, deployment: Deployment, *, window: float) -> EndpointMetrics:
        """Each server's Triton metrics (127.0.0.1, its metrics port), per variant, for the default model.

        Triton's counters are cumulative since the server started and its latency summaries cover its last
        300 s, whatever ``window`` is: the result's ``note`` says so (``adapters/_triton_metrics``). Read-only.

        Raises:
            NotFoundError: the endpoint has no recorded server.
            ProviderError: a metrics port did not answer (names the variant, pid and port).
        """
        return read_metrics(
            load_record(self._paths(deployment.name)),
            self._transport,
            name=deployment.name,
            target_name=self.target_name,
            window=window,
        )

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
        return self._invoker.invoke(_pinned(state), body, headers, model=model, timeout=timeout)

    async def ainvoke(
        self,
        state: EndpointState,
        body: Body,
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """:meth:`invoke` as a coroutine, over the adapter's asyncio transport (at most ``max_concurrency``
        requests in flight per server, 64 by default). Cancelling the awaiting task cancels the request."""
        return await self._invoker.ainvoke(_pinned(state), body, headers, model=model, timeout=timeout)

    def grpc_connection(
        self, state: EndpointState, *, model: str | None = None
    ) -> tuple[GrpcConnection, str]:
        """The pooled gRPC connection to one of the endpoint's servers (picked by weight) and the model to call
        (default: the repository's default model). It carries the endpoint key when there is one; Triton checks
        it with ``--grpc-restricted-protocol``."""
        return self._invoker.grpc_connection(_pinned(state), model=model)

    def close(self) -> None:
        """Close pooled connections (HTTP, asyncio, gRPC). Servers keep running: ``delete`` stops them."""
        self._transport.close()
        self._async_transport.close()
        self._invoker.close()

    async def aclose(self) -> None:
        """Close the pooled connections, awaiting those of the running event loop."""
        await self._async_transport.aclose()
        self.close()

    # ---- helpers ---------------------------------------------------------------------------------------
    def _ready(self, server: ServerRecord) -> bool:
        origin = Origin("http", "127.0.0.1", server.http_port)
        try:
            response = self._transport.request("GET", origin, READY_PATH, timeout=_HEALTH_TIMEOUT)
        except ProviderError:
            return False
        return response.status == 200

    def _paths(self, name: str) -> EndpointPaths:
        return EndpointPaths(self.root, name)


def _pinned(state: EndpointState) -> EndpointState:
    """``state`` as the invoker must see it: a candidate's (``extra["candidate"]``) with no record to follow.

    The invoker follows ``endpoint.json`` when a state's servers have gone (a blue/green update moved them). A
    candidate's servers are not in it yet: following it would answer with the version the candidate is checked
    against. The invoker looks the record up under ``extra["state_root"]``; the candidate's own ``starting/``
    folder never holds one, so there a refusal ends as "not running". Other states pass unchanged.
    """
    if not state.extra.get(CANDIDATE):
        return state
    nowhere = Path(state.extra["state_dir"]) / "starting"
    return dataclasses.replace(state, extra={**state.extra, "state_root": str(nowhere)})


if TYPE_CHECKING:  # mypy checks the adapter against the Protocols it serves
    _conforms: type[Adapter] = LocalAdapter
    _reapable: type[ReapableAdapter] = LocalAdapter
    _awaitable: type[AsyncAdapter] = LocalAdapter
    _grpc: type[GrpcAdapter] = LocalAdapter
    _logs: type[LogsAdapter] = LocalAdapter
    _metrics: type[MetricsAdapter] = LocalAdapter
