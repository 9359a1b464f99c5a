"""SageMakerAdapter: a Triton model repository as a SageMaker Model, EndpointConfig and Endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from endpointkit._observations import Drift, EndpointMetrics, LogRecord
from endpointkit._wait import Progress
from endpointkit.adapters.base import (
    Adapter,
    AsyncAdapter,
    AsyncInferenceAdapter,
    Capability,
    DesiredState,
    EndpointState,
    LogsAdapter,
    MetricsAdapter,
    ObservedState,
    ReapableAdapter,
    Resource,
    ResourceKind,
    RolloutAdapter,
    VerifyHook,
)
from endpointkit.adapters.naming import managed_tags
from endpointkit.adapters.sagemaker import _deployment_config, _desired
from endpointkit.adapters.sagemaker._alarms import RolloutAlarms
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._artifacts import ArtifactStore, RehearsalArtifact
from endpointkit.adapters.sagemaker._async_inference import (
    SAGEMAKER_ASYNC_LIMIT,
    AsyncInvoker,
    async_input_prefix,
)
from endpointkit.adapters.sagemaker._autoscaling import Autoscaler
from endpointkit.adapters.sagemaker._clients import MAX_POOL_CONNECTIONS, ClientFactory
from endpointkit.adapters.sagemaker._drift import endpoint_drift
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.adapters.sagemaker._executor import BlockingCallExecutor
from endpointkit.adapters.sagemaker._images import DEFAULT_TRITON_TAG
from endpointkit.adapters.sagemaker._invocations import Invocations
from endpointkit.adapters.sagemaker._logs import CloudWatchLogs
from endpointkit.adapters.sagemaker._metrics import read_metrics
from endpointkit.adapters.sagemaker._reap import Reaper
from endpointkit.adapters.sagemaker._rollout import FALLBACK_TAG, Rollout
from endpointkit.adapters.sagemaker._state import Description, EndpointWaiter, tag_list
from endpointkit.adapters.sagemaker._teardown import Teardown
from endpointkit.errors import (
    ConflictError,
    EndpointKitError,
    NotFoundError,
    UnsupportedCapabilityError,
)
from endpointkit.modelrepo import load_repository
from endpointkit.payloads import SAGEMAKER_REALTIME_LIMIT, SAGEMAKER_SERVERLESS_LIMIT
from endpointkit.spec import Deployment, SageMakerTarget

__all__ = ["DEFAULT_DELETE_TIMEOUT", "FALLBACK_TAG", "RehearsalArtifact", "SageMakerAdapter"]

logger = logging.getLogger("endpointkit.sagemaker")

DEFAULT_DELETE_TIMEOUT = 20 * 60.0
"""Seconds ``destroy_by_state`` waits for an endpoint to be gone: there is no spec, so no ``timeouts.delete``."""


class SageMakerAdapter(Invocations):
    """Deploys a Triton model repository on Amazon SageMaker real-time, serverless or asynchronous hosting.

    Resources: a Model (the ``sagemaker-tritonserver`` image with the packaged repository from S3), an
    EndpointConfig (one production variant per spec variant) and the Endpoint. Models and configs are named
    ``NAME-HASH8`` after their content, so a re-apply finds them; everything is tagged ``managed-by=endpointkit``.

    Without a target (built from an EndpointState by :meth:`from_state`, for ``invoke`` or ``reap``) the adapter
    reads, invokes, lists and deletes in its region but refuses to create or update anything: there is no role
    or bucket to create with, and none is made up.

    Args:
        target: the spec's SageMaker target section (None when built from an EndpointState).
        target_name: the target's name in the spec.
        region: the AWS region (default: the target's).
        client_factory: builds a boto3 client for a service name (default: from the AWS environment).
        session: a boto3 session for the default client factory.
        purge_artifacts: delete a model's S3 archive with the model (``--purge-artifacts``); kept by default.
        target_variant: the production variant ``invoke`` sends to (SageMaker ``TargetVariant``).
        image_tag: the ``sagemaker-tritonserver`` tag used when the spec sets no ``model.image``.
        serverless: whether the endpoint is serverless (for the request size limit; default: from the target).
        asynchronous: whether the endpoint is asynchronous (request limit 1 GB; default: from the target).
        async_input_path: the ``s3://`` folder :meth:`invoke_asynchronous` uploads requests to (default
            ``s3://BUCKET/PREFIX/NAME/async-inputs/`` of the target; see that method).
        max_concurrency: the most :meth:`ainvoke` calls running at once (default 16); the default clients keep
            as many pooled connections.
        sleep, clock: injectable time, for waits and retry backoff.
        retry_attempts, retry_seconds: bounds of the retries of one AWS call.
        transfer_config: a ``boto3.s3.transfer.TransferConfig`` for the artifact upload.
        delete_timeout: seconds :meth:`destroy_by_state` waits for an endpoint to be gone (default 20 minutes);
            a spec's deletes use its ``timeouts.delete``.
    """

    kind: str = "sagemaker"
    payload_protocol: Literal["triton", "sagemaker"] = "sagemaker"

    def __init__(
        self,
        target: SageMakerTarget | None = None,
        *,
        target_name: str = "sagemaker",
        region: str | None = None,
        client_factory: ClientFactory | None = None,
        session: Any = None,
        purge_artifacts: bool = False,
        target_variant: str | None = None,
        image_tag: str = DEFAULT_TRITON_TAG,
        serverless: bool | None = None,
        asynchronous: bool | None = None,
        async_input_path: str | None = None,
        max_concurrency: int = MAX_POOL_CONNECTIONS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_attempts: int = 8,
        retry_seconds: float = 120.0,
        transfer_config: Any = None,
        delete_timeout: float = DEFAULT_DELETE_TIMEOUT,
    ) -> None:
        resolved_region = region or (target.region if target is not None else None)
        if not resolved_region:
            raise ValueError("SageMakerAdapter needs a target or a region")
        self.target = target
        self.target_name = target_name
        self.region: str = resolved_region
        self.purge_artifacts = purge_artifacts
        self.target_variant = target_variant
        self.image_tag = image_tag
        self.delete_timeout = delete_timeout
        # Creates refused for want of a target: the provisioner's rollback asks to delete them, and there is none.
        self._refused: set[tuple[ResourceKind, str]] = set()
        is_serverless = (
            serverless if serverless is not None else bool(target is not None and target.serverless)
        )
        is_async = (
            asynchronous if asynchronous is not None else bool(target is not None and target.async_inference)
        )
        #: read by invoke_endpoint before any call: the body limit (6 MiB, serverless 4 MB, asynchronous 1 GB)
        self.max_request_bytes = (
            SAGEMAKER_SERVERLESS_LIMIT
            if is_serverless
            else SAGEMAKER_ASYNC_LIMIT
            if is_async
            else SAGEMAKER_REALTIME_LIMIT
        )
        self.async_input_path = async_input_path
        self._session = session
        self._executor = BlockingCallExecutor(max_concurrency, thread_name_prefix="endpointkit-sagemaker")
        caller = Caller(max_attempts=retry_attempts, max_seconds=retry_seconds, sleep=sleep)
        self._api = SageMakerApi(
            self.region, caller, factory=client_factory, session=session, max_pool_connections=max_concurrency
        )
        self._repositories: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
        self._artifacts = ArtifactStore(
            lambda: self._api.client("s3"), caller, transfer_config=transfer_config
        )
        self._autoscaler = Autoscaler(lambda: self._api.client("application-autoscaling"), caller)
        self._logs = CloudWatchLogs(lambda: self._api.client("logs"), caller, sleep=sleep)
        self._waiter = EndpointWaiter(
            lambda name: self._api.describe("endpoint", name),
            self._state,
            sleep=sleep,
            clock=clock,
            failure_logs=self._logs.last_lines,
        )
        alarms = RolloutAlarms(self._api)
        self._teardown = Teardown(
            self._api,
            autoscaler=self._autoscaler,
            waiter=self._waiter,
            artifacts=self._artifacts,
            alarms=alarms,
        )
        self._rollout = Rollout(
            self._api,
            autoscaler=self._autoscaler,
            waiter=self._waiter,
            teardown=self._teardown,
            alarms=alarms,
            state=self._state,
            clock=clock,
        )
        self._reaper = Reaper(self._api, teardown=self._teardown, artifacts=self._artifacts)
        self._async = AsyncInvoker(
            caller,
            runtime=lambda: self._api.client("sagemaker-runtime"),
            s3=lambda: self._api.client("s3"),
            objects=self._artifacts,
            sleep=sleep,
            clock=clock,
        )

    @classmethod
    def from_state(cls, state: EndpointState, **options: Any) -> SageMakerAdapter:
        """An adapter for the region of ``state``, without the spec: it invokes, lists and deletes, never creates.

        ``state`` may be a listed or applied endpoint, or a bare one naming only a region, as ``endpointkit reap
        --target sagemaker --region R`` passes: ``EndpointState("", "sagemaker", "sagemaker", UNKNOWN,
        region=R)``. ``options`` go to the constructor (client factory, ``purge_artifacts``, ...).

        Raises:
            ValueError: ``state`` has no region and ``options`` give none.
        """
        options.setdefault("region", state.region)
        options.setdefault("serverless", state.extra.get("mode") == "serverless")
        options.setdefault("asynchronous", state.extra.get("mode") == "async")
        return cls(None, target_name=state.target or cls.kind, **options)

    def _require_target(self, operation: str, resource: Resource | None = None) -> None:
        """Refuse to create or change resources on an adapter that has no spec target (see the class docstring)."""
        if self.target is None:
            if resource is not None:
                self._refused.add((resource.kind, resource.name))
            raise UnsupportedCapabilityError(
                f"this SageMaker adapter was built without a spec target (from an endpoint state, to invoke or "
                f"reap in {self.region}), so it cannot {operation}: build it from the spec's target",
                missing={operation: "no spec target: no execution role or bucket to create with"},
            )

    def _state(self, name: str, description: Description | None) -> EndpointState:
        state = self._api.state(name, description, target_name=self.target_name)
        if self.target is not None and state.extra.get("mode") == "async":
            # Where invoke_asynchronous uploads requests, for an adapter later built from this state alone.
            inputs = async_input_prefix(name, bucket=self.target.bucket, prefix=self.target.prefix)
            state = dataclasses.replace(state, extra={**state.extra, "async_input_path": inputs})
        return state

    # ------------------------------------------------------------------------------------------------ planning
    def limitations(self, deployment: Deployment) -> Mapping[Capability, str]:
        """What SageMaker hosting cannot do for ``deployment``: FPGA and multi-model always; GPU, Inferentia and
        autoscaling with serverless. KEY_AUTH is supported: IAM (SigV4) authenticates every call. No cloud call."""
        return _desired.limitations(deployment)

    def _repository_facts(self, deployment: Deployment) -> tuple[str | None, str | None]:
        """(package sha256, default model) of a local repository; (None, default_model) for an s3:// archive."""
        repository, explicit = deployment.repository, deployment.spec.model.default_model
        key = (repository, explicit)
        if key not in self._repositories:
            if "://" in repository:
                self._repositories[key] = (None, explicit)
            else:
                loaded = load_repository(repository)
                self._repositories[key] = (loaded.content_hash(), loaded.default_model(explicit))
        return self._repositories[key]

    def desired(self, deployment: Deployment) -> DesiredState:
        """Model, config and endpoint with their ``NAME-HASH8`` names and contents. No cloud call.

        Raises:
            SpecError: the name, an instance type or fallback, the repository or the region is not usable on
                SageMaker; the message names the field and the nearest valid choices.
        """
        _desired.validate(deployment)
        target = _desired.sagemaker_target(deployment)
        content_hash, default_model = self._repository_facts(deployment)
        plan = _desired.model_plan(
            deployment, content_hash=content_hash, default_model=default_model, image_tag=self.image_tag
        )
        model_properties = {
            **plan.content,
            "repository": plan.repository,
            "content_hash": content_hash,
            "default_model": default_model,
        }
        content = _desired.config_content(deployment, plan.name)
        config_name = _desired.config_name(deployment, content)
        fallbacks = list(target.instance_type_fallbacks)
        return DesiredState(
            deployment.name,
            deployment.spec_hash(),
            Resource("model", plan.name, model_properties),
            Resource("endpoint_config", config_name, {**content, "instance_type_fallbacks": fallbacks}),
            Resource("endpoint", deployment.name, {"config": config_name, "region": target.region}),
            managed_tags(deployment),
        )

    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        """The endpoint, the config and model it runs, and which desired resources exist. Read-only.

        An unchanged endpoint costs DescribeEndpoint, ListTags and DescribeEndpointConfig. ``drift`` names the
        weights, counts, config and tags changed since the last apply (``_drift``). ``refusal`` (raised by plan
        and apply, not destroy) says when the spec's rollout cannot move the existing endpoint to the new config.

        Raises:
            ConflictError: an endpoint of that name exists and is not managed by endpointkit.
        """
        description = self._api.describe("endpoint", deployment.name)
        existing: set[tuple[ResourceKind, str]] = set()
        model: Resource | None = None
        config: Resource | None = None
        refusal: EndpointKitError | None = None
        if description is not None:
            if not self._api.is_managed(description):
                raise ConflictError(
                    f"endpoint {deployment.name} exists in {self.region} and is not managed by endpointkit (it has "
                    "no managed-by=endpointkit tag): change the spec's name, or delete or tag that endpoint",
                    provider="sagemaker",
                    operation="read",
                    code="NotManaged",
                )
            config_name = description.get("EndpointConfigName")
            if config_name:
                config_description = self._api.describe("endpoint_config", config_name) or {}
                variants = config_description.get("ProductionVariants", [])
                config = Resource("endpoint_config", config_name, {"variants": variants})
                model_name = variants[0].get("ModelName") if variants else None
                model = Resource("model", model_name, {}) if model_name else None
                # The config is named after its content, which names the model: no need to describe them again.
                if config_name == desired.config.name and config_description:
                    existing.add(("endpoint_config", config_name))
                    if model_name == desired.model.name:
                        existing.add(("model", model_name))
                else:
                    refusal = _deployment_config.rollout_refusal(
                        deployment, [v["VariantName"] for v in variants]
                    )
        for resource in (desired.model, desired.config):
            if (resource.kind, resource.name) not in existing and self._api.describe(
                resource.kind, resource.name
            ):
                existing.add((resource.kind, resource.name))
        drift: tuple[Drift, ...] = ()
        if description is not None:
            drift = endpoint_drift(description, self._api.endpoint_tags(description), desired)
        state = self._state(deployment.name, description)
        return ObservedState(state, model, config, frozenset(existing), drift=drift, refusal=refusal)

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
        """The endpoint's CloudWatch log events (``/aws/sagemaker/Endpoints/NAME``, every instance stream,
        ``replica`` the instance id), in time order; ``follow`` polls every 5 s. ``previous`` changes nothing.

        Raises:
            NotFoundError: the endpoint does not exist, or its log group does not (it never started, or its role
                cannot write logs).
        """
        if self._api.describe("endpoint", deployment.name) is None:
            raise NotFoundError(f"SageMaker endpoint {deployment.name} does not exist in {self.region}")
        return self._logs.records(deployment.name, variant=variant, since=since, tail=tail, follow=follow)

    def status(self, deployment: Deployment) -> EndpointState:
        """The endpoint's state (NOT_FOUND when it does not exist). Read-only."""
        description = self._api.describe("endpoint", deployment.name)
        if description is not None:
            self._api.endpoint_tags(description)
            if description.get("EndpointConfigName"):
                self._api.describe("endpoint_config", description["EndpointConfigName"])
        return self._state(deployment.name, description)

    # ------------------------------------------------------------------------------------------------ create
    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        """Create a model (uploading the packaged repository first), a config, or the endpoint.

        Creating the endpoint waits until it is InService (bounded by ``timeouts.create``), trying each of
        ``instance_type_fallbacks`` in order when SageMaker has no capacity, then registers autoscaling.
        Something that already exists under the name is adopted when tagged ``managed-by=endpointkit``.

        Raises:
            ConflictError: the name is taken by a resource endpointkit does not manage.
            CapacityError: no capacity for the instance type nor any fallback; names every type tried.
            QuotaError, ProviderError: SageMaker refused, or the endpoint went Failed (with its FailureReason).
            ProvisionTimeout: not InService within ``timeouts.create``; carries the last state.
            UnsupportedCapabilityError: the adapter has no spec target (built by :meth:`from_state`).
        """
        self._require_target("create", resource)
        if resource.kind == "model":
            self._create_model(deployment, resource)
        elif resource.kind == "endpoint_config":
            self._rollout.create_config(deployment, resource.name, resource.properties)
        else:
            content = self.desired(deployment).config.properties
            self._rollout.create_endpoint(deployment, resource, content, progress)

    def _create_model(self, deployment: Deployment, resource: Resource) -> None:
        properties = resource.properties
        url = properties["model_data_url"]
        if properties.get("content_hash"):
            self._artifacts.ensure_uploaded(
                properties["repository"], url, properties["content_hash"], deployment.name
            )
        else:
            self._artifacts.check_exists(url)
        container = {
            "Image": properties["image"],
            "ModelDataUrl": url,
            "Environment": dict(properties["environment"]),
        }
        params: dict[str, Any] = {
            "ModelName": resource.name,
            "PrimaryContainer": container,
            "ExecutionRoleArn": properties["execution_role_arn"],
            "Tags": tag_list(managed_tags(deployment)),
        }
        if properties.get("vpc"):
            params["VpcConfig"] = dict(properties["vpc"])
        self._api.create_or_adopt("model", resource.name, "create_model", **params)

    # ------------------------------------------------------------------------------------------------ update
    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Move the endpoint to ``desired.config`` blue/green and wait until it serves on it.

        The old config keeps serving until the new fleet is InService (SageMaker's default blue/green
        deployment). With a ``canary`` or ``linear`` rollout, SageMaker shifts the traffic itself
        (UpdateEndpoint ``DeploymentConfig``) and rolls back on its own, even without this process, when one of
        the rollout's alarms goes off; the alarms are created first and deleted once a rollout no longer asks for
        them (:meth:`rollout_lines` names them). Variants whose instance type changes are deregistered from
        autoscaling first (SageMaker refuses such an update otherwise) and registered again after; on failure
        the old registrations are restored. Capacity errors try ``instance_type_fallbacks`` as create does.

        ``verify`` runs once the update is complete: SageMaker cannot address the new fleet before it takes
        traffic, so the check comes after the shift (which the alarms guard). When it raises, the endpoint is
        moved back to the config it ran before (which serves again), then the error propagates.

        Raises:
            NotFoundError: the endpoint does not exist.
            SpecError: SageMaker cannot run the spec's rollout (before any call).
            UnsupportedCapabilityError: a canary or linear rollout across a change of variant names; or the
                adapter has no spec target (built by :meth:`from_state`).
            VerificationError: an alarm rolled the update back, or ``verify`` failed; the old config serves.
            CapacityError, QuotaError, ProviderError: the update failed; the old config is still serving.
            ProvisionTimeout: not done within ``timeouts.update``.
        """
        self._require_target("update")
        self._rollout.update_endpoint(deployment, desired, progress, verify)

    def rollout_lines(self, deployment: Deployment) -> list[str]:
        """How an update moves traffic on SageMaker, one plan line each (``rollout:`` goes before). No call.

        E.g. ``canary 10% for 5m, then 100%; auto-rollback on alarms endpointkit-x-primary-errors (5XX > 1%),
        endpointkit-x-primary-p99 (p99 > 250 ms)``, then who shifts the traffic and when the old fleet goes, a
        variant too small for the step, and when the ``verify`` checks run.

        Raises:
            SpecError: SageMaker cannot run the rollout as written (a step or wait out of its bounds, too many
                alarms, ``timeouts.update`` too short for the waits, Inf1 instances).
        """
        return _deployment_config.rollout_lines(deployment)

    @contextlib.contextmanager
    def rehearsal_artifact(self, deployment: Deployment) -> Iterator[RehearsalArtifact]:
        """The very ``model.tar.gz`` :meth:`create` would upload for ``deployment``, in a temporary folder removed
        when the ``with`` block ends; with the default model and environment its container would get.

        A local repository is packaged by the code path of the upload (``ArtifactStore.packaged``), byte for byte
        the same; an ``s3://`` archive is downloaded (S3 GetObject). No SageMaker call either way.

        Raises:
            SpecError: the spec is not deployable on SageMaker (as :meth:`desired`).
            NotFoundError: the ``s3://`` archive does not exist.
        """
        model = self.desired(deployment).model.properties
        environment = dict(model["environment"])
        default_model = environment.get(_desired.DEFAULT_MODEL_ENV)
        if model.get("content_hash"):
            with self._artifacts.packaged(model["repository"], model["content_hash"]) as packaged:
                yield RehearsalArtifact(packaged.path, default_model, environment)
        else:
            with self._artifacts.downloaded(model["model_data_url"]) as path:
                yield RehearsalArtifact(path, default_model, environment)

    # ------------------------------------------------------------------------------------------------ delete
    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Delete a model, config or endpoint; succeeds when it is already gone.

        Deleting the endpoint deregisters its autoscaling and waits until it is gone (bounded by
        ``timeouts.delete``). Deleting a model keeps its S3 archive unless ``purge_artifacts`` is set.
        """
        if (kind, name) in self._refused:
            self._refused.discard((kind, name))  # never created: a rollback of a refused create
        elif (kind, name) in self._api.foreign:
            logger.warning("not deleting %s %s: it is not managed by endpointkit", kind, name)
        elif kind == "endpoint":
            self._teardown.delete_endpoint(name, progress, timeout=deployment.spec.timeouts.delete)
        elif kind == "endpoint_config":
            self._api.delete_config(name)
        else:
            self._teardown.delete_model(
                name,
                purge_artifacts=self.purge_artifacts,
                owns_artifact=lambda url: self._owns_artifact(deployment, name, url),
            )

    def _owns_artifact(self, deployment: Deployment, model_name: str, url: str) -> bool:
        ours = _desired.artifact_url(_desired.sagemaker_target(deployment), deployment.name, "")
        if not url.startswith(ours.removesuffix("-/model.tar.gz") + "-"):
            return False  # an archive the user gave (model.repository: s3://...) is never deleted
        desired = self.desired(deployment)
        # An update replaces the model but may keep its archive (only the environment changed): keep it then.
        return model_name == desired.model.name or url != desired.model.properties["model_data_url"]

    # ------------------------------------------------------------------------------------------------ metrics
    def metrics(self, deployment: Deployment, *, window: float) -> EndpointMetrics:
        """CloudWatch ``AWS/SageMaker`` figures per variant over the last ``window`` seconds: one DescribeEndpoint
        and one GetMetricData for every metric and variant (``_metrics`` says which statistic is which).

        Raises:
            NotFoundError: the endpoint does not exist.
            ProviderError: CloudWatch refused (e.g. AccessDenied on cloudwatch:GetMetricData).
        """
        return read_metrics(
            self._api,
            name=deployment.name,
            target_name=self.target_name,
            spec_variants=[variant.name for variant in deployment.variants],
            window=window,
        )

    # ------------------------------------------------------------------------------------------------ reap
    def list_endpoints(self) -> list[EndpointState]:
        """Every endpoint in the region tagged ``managed-by=endpointkit``, by name, with its expiry. Read-only.

        Costs one ListEndpoints (paginated, 100 a page) and one ListTags per endpoint in the region, managed or
        not: ListEndpoints cannot filter by tag (and ``NameContains`` says nothing about who manages an
        endpoint). An endpoint deleted between the two calls is skipped. The states have no variants (a summary
        has none); an unreadable ``endpointkit-expires-at`` tag is logged and read as no expiry.
        """
        return self._reaper.list_endpoints(target_name=self.target_name)

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Delete a listed endpoint, then the endpoint config and model(s) it used, without its spec.

        The endpoint is described and its tags read afresh: it is refused when it is not managed by endpointkit,
        and, for a listed state with an expiry, when its ``endpointkit-expires-at`` changed since it was listed
        (someone re-applied it meanwhile). Its variants are deregistered from autoscaling, the endpoint deleted
        and waited on until gone (``delete_timeout``), then its config and every model the config names
        (DescribeEndpointConfig, ProductionVariants[].ModelName) are deleted when they carry
        ``managed-by=endpointkit`` (others are logged and kept). The model's S3 archive is deleted only with
        ``purge_artifacts`` and only when its object tags say endpointkit uploaded it for this endpoint.
        Idempotent: whatever is already gone is skipped.

        Raises:
            ConflictError: the endpoint is not managed by endpointkit (``NotManaged``), its expiry changed since
                it was listed (``ExpiryChanged``), or ``state`` is from another region (``WrongRegion``).
            ProvisionTimeout: the endpoint was not gone within ``delete_timeout``.
            ProviderError: SageMaker refused a call.
        """
        self._reaper.destroy_by_state(
            state, progress=progress, timeout=self.delete_timeout, purge_artifacts=self.purge_artifacts
        )

    def close(self) -> None:
        """Shut the :meth:`ainvoke` executor down (waiting for its running calls), then close every client's
        connections. The adapter can be used again: the executor and clients are rebuilt on demand."""
        self._executor.shutdown()
        self._api.close()

    async def aclose(self) -> None:
        """:meth:`close` from asyncio: the wait for running calls happens in a worker thread."""
        await asyncio.to_thread(self.close)


if TYPE_CHECKING:
    _conforms: type[Adapter] = SageMakerAdapter  # mypy checks the adapter against the Protocols here
    _reapable: type[ReapableAdapter] = SageMakerAdapter
    _logs: type[LogsAdapter] = SageMakerAdapter
    _metrics: type[MetricsAdapter] = SageMakerAdapter
    _rollout: type[RolloutAdapter] = SageMakerAdapter
    _awaitable: type[AsyncAdapter] = SageMakerAdapter
    _queueing: type[AsyncInferenceAdapter] = SageMakerAdapter
