"""The AKS adapter: the Adapter protocol over ARM (cluster, pool), Blob storage (model) and Kubernetes (objects)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from endpointkit._observations import EndpointMetrics, LogRecord
from endpointkit._wait import Progress
from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ArmClient, ClientFactory, ClusterInfo, default_credential
from endpointkit.adapters.aks._desired import EndpointPlan, plan_endpoint
from endpointkit.adapters.aks._errors import PollPolicy, RetryPolicy
from endpointkit.adapters.aks._infra import Infrastructure, pool_request_for
from endpointkit.adapters.aks._invoke import Invoker
from endpointkit.adapters.aks._kube import KubeClient, KubeFactory, Observation, ScaleUpGrace
from endpointkit.adapters.aks._logs import PodLogs
from endpointkit.adapters.aks._metrics import read_metrics
from endpointkit.adapters.aks._model import create_model
from endpointkit.adapters.aks._observed import existing_names, observe_endpoint, records
from endpointkit.adapters.aks._reap import list_managed, remove_endpoint
from endpointkit.adapters.aks._rollout import config_map, ensure_key, runs_config, stamper
from endpointkit.adapters.aks._room import room_note
from endpointkit.adapters.aks._routes import front_notes
from endpointkit.adapters.aks._rules import check_spec, limitations
from endpointkit.adapters.aks._state import cluster_state, endpoint_state
from endpointkit.adapters.aks._steps import (
    Session,
    create_endpoint,
    restamp_endpoint,
    rollout_lines,
    update_endpoint,
)
from endpointkit.adapters.aks._storage import (
    ContainerFactory,
    default_container_factory,
    storage_suffix,
)
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
    PlanNotesAdapter,
    RawResponse,
    ReapableAdapter,
    Resource,
    ResourceKind,
    RolloutAdapter,
    VerifyHook,
)
from endpointkit.adapters.naming import changed_since_plan
from endpointkit.errors import ConflictError, NotFoundError, ProviderError, UnsupportedCapabilityError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES
from endpointkit.spec import AksTarget, Deployment, Timeouts

__all__ = ["AksAdapter"]


class AksAdapter:
    """Triton on Azure Kubernetes Service.

    Args:
        target: the spec's ``kind: aks`` target.
        target_name: the target's name in the spec.
        credential: an azure-core TokenCredential; default azure-identity ``DefaultAzureCredential`` (made on
            first use).
        arm_client_factory: ``(credential, subscription_id, **options) -> ContainerServiceClient``.
        arm_options: azure-core options for ARM (``connection_verify``, ``polling_interval``, ``transport``…);
            without ``connection_verify``, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (read by requests) or else
            ``SSL_CERT_FILE`` name the CA bundle for ARM and Blob storage.
        kube_client_factory: ``(kubeconfig dict, temp dir) -> kubernetes ApiClient``.
        blob_container_factory: ``(account, key, container) -> ContainerClient`` for repository uploads.
        retry: bounds on retries of throttling, 5xx and connection errors.
        request_timeout: seconds for one Kubernetes API call.
        invoke_timeout: default seconds for one inference request.
        max_response_bytes: the largest inference response body accepted, inflated or not (64 MiB by default).
        polling: delays between polls of every wait (default: 5 s, doubling up to 15 s).
        api_key: the endpoint key, when known (saves reading its Secret before ``invoke``).
        scale_up_grace: seconds a pod of an autoscaled pool may stay Unschedulable before the cluster
            autoscaler's first verdict (TriggeredScaleUp / NotTriggerScaleUp); within the spec's timeouts.
        connect_to: ``{"HOST:PORT": "ADDRESS:PORT"}`` for invoke (curl's ``--connect-to``): requests to the
            endpoint's host go to that address while TLS still verifies the host (before DNS resolves it, or
            through a port-forward).

    Traffic: a Gateway (Gateway API) terminates TLS for ``https://HOST`` and its HTTPRoute and GRPCRoute weight
    the variants' Services, so weights are independent of ``instance_count``; an update moves the weights from
    the old version to the new one (``_steps``).
    """

    kind: str = "aks"
    payload_protocol: Literal["triton", "sagemaker"] = "triton"
    #: no limit of the whole body: the Gateway passes it to tritonserver, which checks each input against
    #: --http-max-input-size (64 MiB by default) and answers 400 with its own message
    max_request_bytes: int | None = None

    def __init__(
        self,
        target: AksTarget,
        *,
        target_name: str = "aks",
        credential: Any = None,
        arm_client_factory: ClientFactory | None = None,
        arm_options: Mapping[str, Any] | None = None,
        kube_client_factory: KubeFactory | None = None,
        blob_container_factory: ContainerFactory | None = None,
        retry: RetryPolicy | None = None,
        polling: PollPolicy | None = None,
        request_timeout: float = 30.0,
        invoke_timeout: float = 60.0,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
        api_key: str | None = None,
        log_lines: int = 20,
        scale_up_grace: float = 90.0,
        connect_to: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.target_name = target_name
        self._credential = credential
        self._retry = retry or RetryPolicy()
        self._polling = polling or PollPolicy()
        self._request_timeout = request_timeout
        self._log_lines = log_lines
        self._scale_up_grace = scale_up_grace
        self._kube_factory = kube_client_factory
        self._containers = blob_container_factory or default_container_factory(
            storage_suffix(target.arm_endpoint)
        )
        self._arm = ArmClient(
            target,
            credential=self._get_credential,
            client_factory=arm_client_factory,
            client_options=arm_options,
            retry=self._retry,
            polling=self._polling,
        )
        self._infra = Infrastructure(self._arm, self._kube_client, self._forget_kube, polling=self._polling)
        self._kube: KubeClient | None = None
        self._plans: dict[str, EndpointPlan] = {}
        #: per endpoint, the drift of its listener certificate the last read found (plan notes name it)
        self._read_notes: dict[str, list[str]] = {}
        self._invoker = Invoker(
            invoke_timeout,
            kube_client=self._kube_client,
            api_key=api_key,
            max_response_bytes=max_response_bytes,
            connect_to=connect_to,
        )

    @classmethod
    def from_state(cls, state: EndpointState, **options: Any) -> AksAdapter:
        """An adapter able to invoke the endpoint ``state`` describes (its ``extra`` names the cluster)."""
        extra = state.extra
        target = AksTarget(
            kind="aks",
            subscription_id=extra["subscription_id"],
            resource_group=extra["resource_group"],
            cluster=extra["cluster"],
            namespace=extra.get("namespace", "default"),
            arm_endpoint=extra.get("arm_endpoint", "https://management.azure.com"),
            api_key=bool(extra.get("api_key_secret")),
        )
        return cls(target, target_name=state.target, **options)

    # ---- clients -------------------------------------------------------------------------------------
    def _get_credential(self) -> Any:
        if self._credential is None:
            self._credential = default_credential()
        return self._credential

    def _kube_client(self) -> KubeClient:
        if self._kube is None:
            self._kube = KubeClient(
                self._arm.kubeconfig(),
                factory=self._kube_factory,
                retry=self._retry,
                request_timeout=self._request_timeout,
                operation_prefix=f"cluster {self.target.cluster}: ",
            )
        return self._kube

    def _forget_kube(self) -> None:
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    def __enter__(self) -> AksAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close HTTP and gRPC connections and clients; removes the kube client's certificate files."""
        self._invoker.close()
        self._forget_kube()
        self._arm.close()

    # ---- plan ----------------------------------------------------------------------------------------
    def limitations(self, deployment: Deployment) -> Mapping[Capability, str]:
        """What AKS cannot serve for this spec; raises SpecError for rules the spec breaks. No cloud call."""
        check_spec(deployment)
        return limitations(deployment)

    def desired(self, deployment: Deployment) -> DesiredState:
        """The model, config and endpoint the spec asks for, with content-hashed names. Reads the local
        repository (to hash it); makes no cloud call."""
        plan = plan_endpoint(deployment)
        for resource in (plan.desired.model, plan.desired.config, plan.desired.endpoint):
            self._plans[f"{resource.kind}/{resource.name}"] = plan
        self._plans[f"endpoint/{deployment.name}"] = plan
        return plan.desired

    def plan_notes(self, deployment: Deployment) -> list[str]:
        """Warnings and facts for plan, one line each: a key sent in clear text (``tls: off``), what a Key Vault
        certificate needs, and what the last :meth:`read` found: a certificate renewal due, a pool without room
        for the new version beside the old one. No cloud call."""
        return [*front_notes(deployment), *self._read_notes.get(deployment.name, ())]

    def rollout_lines(self, deployment: Deployment) -> list[str]:
        """How an update moves traffic to the new version (steps, waits, alarms), one line each. No cloud call."""
        return rollout_lines(deployment, verify=bool(deployment.spec.verify))

    def _plan(self, deployment: Deployment, resource: Resource) -> EndpointPlan:
        plan = self._plans.get(f"{resource.kind}/{resource.name}")
        if plan is None:
            self.desired(deployment)
            plan = self._plans.get(f"{resource.kind}/{resource.name}")
        if plan is None:
            raise ProviderError(
                f"{resource.kind} {resource.name} is not what this spec asks for",
                provider="aks",
                operation=f"create {resource.kind}",
            )
        return plan

    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        """What exists: the endpoint, the config and model it uses, and which desired names exist. Read-only.

        The endpoint's spec hash comes back in ``state.spec_hash`` (the Service's ``endpointkit-spec-hash`` label).
        A pool field set only at creation (VM size, taints) that differs makes ``replace_reason`` when
        endpointkit may replace the pool.

        ``refusal`` (raised by plan and apply, not by destroy) is an UnsupportedCapabilityError when FPGA variants
        meet a cluster whose region offers no NP-series VMs, or a ConflictError when the cluster lacks the
        Gateway API add-on the Gateway class needs and ``allow_addon_changes`` is false (naming the ``az aks``
        commands), or when a pool field set only at creation differs and the pool cannot be replaced (someone
        else made it, or other endpoints run on it); the message names the field and the fix. ``drift`` names
        each Deployment field, the anchor Service, the routes' weights or a tag changed by hand since the last
        apply (``_drift``), and the listener certificate when apply would replace it (due for renewal, or not
        the spec's files).
        """
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() != "succeeded":
            return ObservedState(cluster_state(deployment.name, self.target_name, cluster))
        refusal: UnsupportedCapabilityError | ConflictError | None = None
        reason = None
        try:
            self._infra.check_region(deployment, cluster)
            self._infra.check_gateway_addon(deployment, cluster)
            reason = self._infra.check_pool(deployment, pool_request_for(deployment))
        except (UnsupportedCapabilityError, ConflictError) as error:
            refusal = error
        kube = self._kube_client()
        existing = existing_names(kube, self.target.namespace, desired)
        observation = self._observe(kube, deployment.name, deployment, cluster.location)
        state = endpoint_state(deployment.name, self.target_name, self.target, cluster, observation)
        self._read_notes.pop(deployment.name, None)
        if not observation.exists:
            return ObservedState(state, existing=existing, refusal=refusal)
        plan = self._plan(deployment, desired.config)
        found = records(kube, deployment, desired, plan, observation, state.extra.get("config"))
        notes = [note for note in (found.certificate_note, room_note(plan, observation, self.target)) if note]
        if notes:
            self._read_notes[deployment.name] = notes
        return ObservedState(
            state,
            found.model,
            found.config,
            existing,
            replace_reason=reason,
            refusal=refusal,
            drift=found.drift,
        )

    def status(self, deployment: Deployment) -> EndpointState:
        """The endpoint's state; ``NOT_FOUND`` when it does not exist. Read-only."""
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() != "succeeded":
            return cluster_state(deployment.name, self.target_name, cluster)
        observation = self._observe(self._kube_client(), deployment.name, deployment, cluster.location)
        return endpoint_state(deployment.name, self.target_name, self.target, cluster, observation)

    def _observe(
        self,
        kube: KubeClient,
        name: str,
        deployment: Deployment,
        location: str | None,
        grace: ScaleUpGrace | None = None,
    ) -> Observation:
        return observe_endpoint(kube, deployment, location=location, log_lines=self._log_lines, grace=grace)

    # ---- logs ----------------------------------------------------------------------------------------
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
        """Every pod's log lines (``replica`` is the pod name) interleaved by the kubelet's timestamps; ``previous``
        adds restarted containers' last runs; ``follow`` polls every 2 s until the endpoint is destroyed.

        Raises:
            NotFoundError: the cluster or the endpoint does not exist.
        """
        if self._arm.cluster() is None:
            raise NotFoundError(
                f"AKS endpoint {deployment.name}: its cluster does not exist",
                provider="azure",
                operation="logs",
            )
        reader = PodLogs(
            self._kube_client,
            namespace=self.target.namespace,
            cluster_exists=lambda: self._arm.cluster() is not None,
        )
        return reader.records(
            deployment.name, variant=variant, since=since, tail=tail, follow=follow, previous=previous
        )

    # ---- metrics ---------------------------------------------------------------------------------------
    def metrics(self, deployment: Deployment, *, window: float) -> EndpointMetrics:
        """Triton's metrics of every running pod (port 8002, through the API server's pod proxy), per variant.

        Triton's counters are cumulative since each pod started and its latency summaries cover its last 300 s,
        whatever ``window`` is: the result's ``note`` says so. Read-only.

        Raises:
            NotFoundError: the cluster or the endpoint does not exist.
            ProviderError: a pod's metrics port did not answer through the proxy (names the pod and port).
        """
        cluster = self._arm.cluster()
        if cluster is None:
            raise NotFoundError(
                f"AKS endpoint {deployment.name}: its cluster does not exist",
                provider="azure",
                operation="metrics",
            )
        return read_metrics(
            self._kube_client(),
            deployment,
            namespace=self.target.namespace,
            target_name=self.target_name,
            window=window,
        )

    # ---- create / update -----------------------------------------------------------------------------
    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        """Create the model (upload + Secret), the config (ConfigMap) or the endpoint (pool, objects, wait).

        The cluster is made first when missing and ``create_cluster`` is set. Blocks until the endpoint serves
        (Deployments rolled out, Gateway programmed, routes attached), bounded by ``timeouts.create``; pods that
        cannot run, or a Gateway that refuses, end the wait at once with their reason.

        Raises:
            ConflictError: another run created the endpoint with another config since this run planned
                (``ChangedSincePlan``: apply again); it is left as it is.
        """
        plan = self._plan(deployment, resource)
        deadline = time.monotonic() + deployment.spec.timeouts.create
        cluster = self._infra.ensure_cluster(deployment, plan, deadline=deadline, progress=progress)
        kube = self._kube_client()
        if self.target.namespace != "default":
            kube.apply(_render.namespace(self.target.namespace))
        stamp = stamper(deployment, plan)
        if resource.kind == "model":
            create_model(
                plan,
                kube,
                stamp,
                arm=self._arm,
                containers=self._containers,
                retry=self._retry,
                progress=progress,
            )
        elif resource.kind == "endpoint_config":
            kube.apply(stamp(config_map(deployment, plan)))
        else:
            service = kube.get("Service", _render.service_name(deployment.name), self.target.namespace)
            running = _render.applied_config(service)
            if running is not None and running != resource.properties["config"]:
                raise changed_since_plan(
                    deployment.name, running, resource.properties["config"], provider="aks"
                )
            cluster = self._infra.ensure_gateway_addon(
                deployment, cluster, deadline=deadline, progress=progress
            )
            pool = self._infra.ensure_pool(
                deployment, plan, cluster, deadline=deadline, progress=progress, allow_replace=True
            )
            self._infra.prepare_accelerators(plan, pool, kube, deadline=deadline, progress=progress)
            ensure_key(plan, kube, self.target.namespace, stamp)
            create_endpoint(self._session(deployment, plan, kube, cluster, deadline, progress))

    def _session(
        self,
        deployment: Deployment,
        plan: EndpointPlan,
        kube: KubeClient,
        cluster: ClusterInfo,
        deadline: float,
        progress: Progress | None,
    ) -> Session:
        name = deployment.name
        return Session(
            deployment=deployment,
            plan=plan,
            kube=kube,
            cluster=cluster,
            deadline=deadline,
            progress=progress,
            polling=self._polling,
            observe=lambda grace: self._observe(kube, name, deployment, cluster.location, grace),
            state=lambda observation: endpoint_state(
                name, self.target_name, self.target, cluster, observation
            ),
            subject=f"endpoint {name} on AKS cluster {self.target.cluster}",
            scale_up_grace=self._scale_up_grace,
        )

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Move the endpoint to ``desired.config`` blue/green through the routes (``_steps`` has the steps).

        The new versions start beside the old ones; ``verify`` runs against them through the preview route
        (requests carrying ``endpointkit-version: <config>``) before they take traffic; ``rollout`` moves the
        weights in steps with alarms; the old versions go once the new ones hold all traffic. On any failure or
        interrupt the previous routes are applied again, what the update made is deleted, and the error
        propagates: the previous version serves all along. Bounded by ``timeouts.update`` plus the steps' waits.

        An endpoint already on ``desired.config`` (the spec changed only in ttl or tags) is re-stamped: labels
        and annotations change, no pod restarts and no ARM write is made; fields changed by hand (drift) are put
        back by the same server-side apply, and the certificate is renewed when due. A change of weights alone
        writes only the routes and the anchor Service.

        Raises:
            NotFoundError: the endpoint does not exist.
            VerificationError: a verify check or a rollout alarm failed (the previous version serves).
        """
        plan = self._plan(deployment, desired.config)
        rollout = deployment.spec.rollout
        waits = 0.0 if rollout == "all_at_once" else rollout.steps.wait * (len(rollout.percentages()) - 1)
        deadline = time.monotonic() + deployment.spec.timeouts.update + waits
        cluster = self._infra.ensure_cluster(deployment, plan, deadline=deadline, progress=progress)
        kube = self._kube_client()
        before = self._observe(kube, deployment.name, deployment, cluster.location)
        if not before.exists:
            raise NotFoundError(
                f"endpoint {deployment.name} does not exist on cluster {self.target.cluster}",
                provider="aks",
                operation="update endpoint",
            )
        session = self._session(deployment, plan, kube, cluster, deadline, progress)
        if runs_config(before, plan):
            restamp_endpoint(session, before)
            return
        cluster = self._infra.ensure_gateway_addon(deployment, cluster, deadline=deadline, progress=progress)
        pool = self._infra.ensure_pool(
            deployment, plan, cluster, deadline=deadline, progress=progress, allow_replace=False
        )
        self._infra.prepare_accelerators(plan, pool, kube, deadline=deadline, progress=progress)
        ensure_key(plan, kube, self.target.namespace, session.stamp)
        update_endpoint(session, before, verify)

    # ---- delete --------------------------------------------------------------------------------------
    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Delete one resource; succeeds when it is gone already.

        endpoint: routes, its own Gateway (not one the spec names), Services, Deployments, key and TLS Secrets
        (and an endpointkit pool of the wrong VM size);
        config: its ConfigMap; model: its Secret (blobs stay: they are shared by content). After a config or
        model, the pool and then the cluster go too when endpointkit made them and no endpoint uses them.
        """
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() == "deleting":
            return
        namespace = self.target.namespace
        timeout = deployment.spec.timeouts.delete
        pool = pool_request_for(deployment)
        try:
            kube = self._kube_client()
        except ProviderError:
            if not self._infra.created_cluster:
                raise
            # A cluster this run made that failed to provision: nothing runs on it, it only has to go.
            self._infra.release(pool.name if pool else None, timeout=timeout, progress=progress)
            return
        if kind == "endpoint":
            remove_endpoint(kube, namespace, name, records=False)
            self._infra.drop_mismatched_pool(deployment, pool, timeout=timeout, progress=progress)
            return
        kube.delete("ConfigMap" if kind == "endpoint_config" else "Secret", name, namespace)
        self._infra.release(pool.name if pool else None, timeout=timeout, progress=progress)

    # ---- reap ----------------------------------------------------------------------------------------
    def list_endpoints(self) -> list[EndpointState]:
        """Every endpointkit endpoint on the target's cluster, any namespace (one list of Services). Read-only."""
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() != "succeeded":
            return []
        return list_managed(self._kube_client(), self.target_name, self.target, cluster.location)

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Delete a listed endpoint's objects, then the pool or cluster endpointkit made if nothing else uses
        them. Idempotent; refuses a Service endpointkit does not manage."""
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() == "deleting":
            return
        namespace = str(state.extra.get("namespace") or self.target.namespace)
        pools = remove_endpoint(self._kube_client(), namespace, state.name)
        timeout = Timeouts().delete
        candidates: list[str | None] = [*sorted(pools)] or [None]
        for pool in candidates:
            self._infra.release(pool, timeout=timeout, progress=progress)

    # ---- invoke --------------------------------------------------------------------------------------
    def invoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """POST the encoded request to ``https://HOST/v2/models/MODEL/infer`` (Triton framing) through the Gateway,
        verifying the endpoint's own CA when its state carries one (``tls: auto``).

        The endpoint key, when the endpoint has one, is read once from its Secret and sent as the
        ``endpointkit-key`` header that ``--http-restricted-api`` checks.
        """
        return self._invoker.invoke(state, body, headers, model=model, timeout=timeout)

    async def ainvoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """:meth:`invoke` as a coroutine, over the adapter's asyncio transport (at most ``max_concurrency``
        requests in flight, 64 by default). Cancelling the awaiting task cancels the request."""
        return await self._invoker.ainvoke(state, body, headers, model=model, timeout=timeout)

    def grpc_connection(
        self, state: EndpointState, *, model: str | None = None
    ) -> tuple[GrpcConnection, str]:
        """The pooled gRPC connection to the endpoint (``HOST:443`` over TLS through the Gateway's GRPCRoute) and
        the model to call. The endpoint key travels as the metadata ``--grpc-restricted-protocol`` checks."""
        return self._invoker.grpc_connection(state, model=model)

    async def aclose(self) -> None:
        """Close the pooled connections, awaiting those of the running event loop."""
        await self._invoker.aclose()
        self.close()


if TYPE_CHECKING:  # mypy checks the adapter against the Protocols it serves
    _conforms: type[Adapter] = AksAdapter
    _reapable: type[ReapableAdapter] = AksAdapter
    _awaitable: type[AsyncAdapter] = AksAdapter
    _grpc_capable: type[GrpcAdapter] = AksAdapter
    _metrics: type[MetricsAdapter] = AksAdapter
    _logs: type[LogsAdapter] = AksAdapter
    _rollout: type[RolloutAdapter] = AksAdapter
    _notes: type[PlanNotesAdapter] = AksAdapter
