"""The AKS adapter: the Adapter protocol over ARM (cluster, pool), Blob storage (model) and Kubernetes (objects)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from endpointkit._observations import EndpointMetrics, LogRecord
from endpointkit._wait import Progress, wait_for
from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ArmClient, ClientFactory, ClusterInfo, default_credential
from endpointkit.adapters.aks._desired import EndpointPlan, config_objects, plan_endpoint
from endpointkit.adapters.aks._drift import deployment_drift, endpoint_drift, live_deployments
from endpointkit.adapters.aks._errors import PollPolicy, RetryPolicy
from endpointkit.adapters.aks._infra import Infrastructure, pool_request_for
from endpointkit.adapters.aks._invoke import Invoker
from endpointkit.adapters.aks._kube import KubeClient, KubeFactory, Observation, ScaleUpGrace, observe
from endpointkit.adapters.aks._logs import PodLogs
from endpointkit.adapters.aks._metrics import read_metrics
from endpointkit.adapters.aks._reap import list_managed, remove_endpoint
from endpointkit.adapters.aks._rollout import (
    Stamp,
    config_map,
    ensure_key,
    restamp,
    restore,
    runs_config,
    stamper,
)
from endpointkit.adapters.aks._rules import check_spec, limitations
from endpointkit.adapters.aks._state import cluster_state, endpoint_state
from endpointkit.adapters.aks._storage import (
    CONTAINER,
    ContainerFactory,
    default_container_factory,
    storage_suffix,
    upload_repository,
)
from endpointkit.adapters.base import (
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
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

    Traffic between variants: one LoadBalancer Service selects every variant's pods, so each variant receives
    its share of ready replicas; weights must be proportional to ``instance_count`` (checked in plan).
    """

    kind: str = "aks"
    payload_protocol: Literal["triton", "sagemaker"] = "triton"
    #: no limit of the whole body: the LoadBalancer passes it to tritonserver, which checks each input against
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
        self._invoker = Invoker(
            invoke_timeout,
            kube_client=self._kube_client,
            api_key=api_key,
            max_response_bytes=max_response_bytes,
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
        meet a cluster whose region offers no NP-series VMs, or a ConflictError when a pool field set only at
        creation differs and the pool cannot be replaced (someone else made it, or other endpoints run on it);
        the message names the field and the fix. ``drift`` names each Deployment field, the Service or a tag
        changed by hand since the last apply (``_drift``).
        """
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() != "succeeded":
            return ObservedState(cluster_state(deployment.name, self.target_name, cluster))
        refusal: UnsupportedCapabilityError | ConflictError | None = None
        reason = None
        try:
            self._infra.check_region(deployment, cluster)
            reason = self._infra.check_pool(deployment, pool_request_for(deployment))
        except (UnsupportedCapabilityError, ConflictError) as error:
            refusal = error
        kube = self._kube_client()
        namespace = self.target.namespace
        existing: set[tuple[ResourceKind, str]] = set()
        if kube.get("Secret", desired.model.name, namespace) is not None:
            existing.add(("model", desired.model.name))
        if kube.get("ConfigMap", desired.config.name, namespace) is not None:
            existing.add(("endpoint_config", desired.config.name))
        observation = self._observe(kube, deployment.name, deployment)
        state = endpoint_state(deployment.name, self.target_name, self.target, cluster, observation)
        if not observation.exists:
            return ObservedState(state, existing=frozenset(existing), refusal=refusal)
        config = model = None
        config_name = state.extra.get("config")
        found = kube.get("ConfigMap", config_name, namespace) if config_name else None
        if found is not None:
            summary = json.loads((found.get("data") or {}).get("summary.json", "{}"))
            config = Resource("endpoint_config", str(config_name), summary)
            model = Resource("model", str(summary.get("model")), {}) if summary.get("model") else None
        # The running config's record; without a Service to name it, the spec's render (the same content hash).
        plan = self._plan(deployment, desired.config)
        rendered = config_objects(found.get("data") or {}) if found else plan.objects
        live = live_deployments(kube, namespace, deployment.name)
        drift = endpoint_drift(observation, live, rendered, desired)
        return ObservedState(
            state, model, config, frozenset(existing), replace_reason=reason, refusal=refusal, drift=drift
        )

    def status(self, deployment: Deployment) -> EndpointState:
        """The endpoint's state; ``NOT_FOUND`` when it does not exist. Read-only."""
        cluster = self._arm.cluster()
        if cluster is None or cluster.provisioning_state.lower() != "succeeded":
            return cluster_state(deployment.name, self.target_name, cluster)
        observation = self._observe(self._kube_client(), deployment.name, deployment)
        return endpoint_state(deployment.name, self.target_name, self.target, cluster, observation)

    def _observe(
        self,
        kube: KubeClient,
        name: str,
        deployment: Deployment | None,
        grace: ScaleUpGrace | None = None,
    ) -> Observation:
        pool = pool_request_for(deployment) if deployment is not None else None
        return observe(
            kube,
            namespace=self.target.namespace,
            endpoint=name,
            service=_render.service_name(name),
            autoscaling=pool is not None and pool.autoscale,
            log_lines=self._log_lines,
            grace=grace,
        )

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

        The cluster is made first when missing and ``create_cluster`` is set. Blocks until the endpoint serves,
        bounded by ``timeouts.create``; pods that cannot run end the wait at once with their reason.

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
            self._create_model(plan, kube, stamp, progress)
        elif resource.kind == "endpoint_config":
            kube.apply(stamp(config_map(deployment, plan)))
        else:
            service = kube.get("Service", _render.service_name(deployment.name), self.target.namespace)
            running = _render.applied_config(service)
            if running is not None and running != resource.properties["config"]:
                raise changed_since_plan(
                    deployment.name, running, resource.properties["config"], provider="aks"
                )
            pool = self._infra.ensure_pool(
                deployment, plan, cluster, deadline=deadline, progress=progress, allow_replace=True
            )
            self._infra.prepare_accelerators(plan, pool, kube, deadline=deadline, progress=progress)
            ensure_key(plan, kube, self.target.namespace, stamp)
            for obj in plan.objects:
                kube.apply(stamp(obj))
            self._await(
                deployment, plan, kube, cluster, deadline=deadline, progress=progress, need_address=True
            )

    def _create_model(
        self, plan: EndpointPlan, kube: KubeClient, stamp: Stamp, progress: Progress | None
    ) -> None:
        key = None
        if plan.local_repository is not None and plan.content_digest is not None:
            key = self._arm.storage_key(plan.storage_account)
            container = self._containers(plan.storage_account, key, CONTAINER)
            try:
                upload_repository(
                    container,
                    plan.local_repository,
                    plan.content_digest,
                    retry=self._retry,
                    progress=progress,
                )
            finally:
                if hasattr(container, "close"):
                    container.close()
            if self.target.storage_secret is not None:
                key = None  # Triton reads with the user's Secret; endpointkit keeps no copy
        kube.apply(
            stamp(
                _render.model_secret(
                    plan.desired.model.name,
                    self.target.namespace,
                    endpoint=plan.render.endpoint,
                    repository_uri=plan.render.repository_uri,
                    account=plan.storage_account,
                    key=key,
                )
            )
        )

    def _await(
        self,
        deployment: Deployment,
        plan: EndpointPlan,
        kube: KubeClient,
        cluster: ClusterInfo,
        *,
        deadline: float,
        progress: Progress | None,
        need_address: bool,
    ) -> Observation:
        wanted = {obj["metadata"]["name"] for obj in plan.objects if obj["kind"] == "Deployment"}

        def done(observation: Observation) -> bool:
            current = [d for d in observation.deployments if d.name in wanted]
            return (
                len(current) == len(wanted)
                and all(d.rolled_out for d in current)
                and (observation.address is not None or not need_address)
            )

        name = deployment.name
        grace = ScaleUpGrace.starting_now(min(self._scale_up_grace, max(0.0, deadline - time.monotonic())))
        observation: Observation = wait_for(
            lambda: self._observe(kube, name, deployment, grace),
            done=done,
            failure=lambda observation: observation.problem,
            describe=lambda observation: observation.describe(),
            subject=f"endpoint {name} on AKS cluster {self.target.cluster}",
            timeout=max(0.0, deadline - time.monotonic()),
            progress=progress,
            first_delay=self._polling.first,
            max_delay=self._polling.most,
            last_state=lambda observation: endpoint_state(
                name,
                self.target_name,
                self.target,
                cluster,
                observation,
            ),
        )
        return observation

    def update_endpoint(
        self, deployment: Deployment, desired: DesiredState, *, progress: Progress | None = None
    ) -> None:
        """Roll every variant to ``desired.config``; the Service moves only once the new pods are ready.

        Variants roll with a surge pod when the pool has a spare accelerator, else one pod at a time. If the
        rollout fails, the previous Deployments are applied again from the previous config and the error is
        raised. An endpoint already on ``desired.config`` (the spec changed only in ttl or tags) is re-stamped:
        its labels and annotations change, no pod restarts and no ARM write is made; Deployment fields changed by
        hand (replicas, image, args, resources: drift) are put back by the same server-side apply, and the call
        then waits until the endpoint serves again.
        """
        plan = self._plan(deployment, desired.config)
        deadline = time.monotonic() + deployment.spec.timeouts.update
        cluster = self._infra.ensure_cluster(deployment, plan, deadline=deadline, progress=progress)
        kube = self._kube_client()
        before = self._observe(kube, deployment.name, deployment)
        if not before.exists:
            raise NotFoundError(
                f"endpoint {deployment.name} does not exist on cluster {self.target.cluster}",
                provider="aks",
                operation="update endpoint",
            )
        stamp = stamper(deployment, plan)
        if runs_config(before, plan):
            live = live_deployments(kube, self.target.namespace, deployment.name)
            restamp(deployment, plan, kube, stamp)
            if deployment_drift(live, plan.objects):  # fields set by hand are back: pods roll as in an update
                self._await(
                    deployment, plan, kube, cluster, deadline=deadline, progress=progress, need_address=True
                )
            return
        previous = _render.applied_config(before.service)
        pool = self._infra.ensure_pool(
            deployment, plan, cluster, deadline=deadline, progress=progress, allow_replace=False
        )
        self._infra.prepare_accelerators(plan, pool, kube, deadline=deadline, progress=progress)
        ensure_key(plan, kube, self.target.namespace, stamp)
        new = [stamp(obj) for obj in plan.objects]
        try:
            for obj in new:
                if obj["kind"] == "Deployment":
                    kube.apply(obj)
            self._await(
                deployment, plan, kube, cluster, deadline=deadline, progress=progress, need_address=False
            )
        except BaseException:
            applied = {o["metadata"]["name"] for o in new if o["kind"] == "Deployment"}
            restore(kube, self.target.namespace, previous, applied, before)
            raise
        for obj in new:
            if obj["kind"] == "Service":
                kube.apply(obj)
        self._await(deployment, plan, kube, cluster, deadline=deadline, progress=progress, need_address=True)
        wanted = {o["metadata"]["name"] for o in new if o["kind"] == "Deployment"}
        for stale in before.deployments:
            if stale.name not in wanted:
                kube.delete("Deployment", stale.name, self.target.namespace)
        if plan.render.api_key_secret is None:
            kube.delete("Secret", plan.key_secret, self.target.namespace)

    # ---- delete --------------------------------------------------------------------------------------
    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Delete one resource; succeeds when it is gone already.

        endpoint: Service, Deployments and key Secret (and an endpointkit pool of the wrong VM size);
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
            kube.delete("Service", _render.service_name(name), namespace)
            selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{_render.LABEL_ENDPOINT}={name}"
            for item in kube.list("Deployment", namespace, label_selector=selector):
                kube.delete("Deployment", item["metadata"]["name"], namespace)
            kube.delete("Secret", f"{name}-api-key", namespace)
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
        """POST the encoded request to ``http://ADDRESS:8000/v2/models/MODEL/infer`` (Triton framing).

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
        """The pooled gRPC connection to the endpoint's Service (``ADDRESS:8001``, TLS when its URL is https)
        and the model to call. The endpoint key travels as the metadata ``--grpc-restricted-protocol`` checks."""
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
