"""The adapter seam: the Protocol every target implements, and the values that cross it.

An adapter manages three resource kinds on its cloud (model, endpoint config, endpoint), reads what exists,
and sends inference requests. It knows nothing of plans or rollback: the provisioner does that.

``EndpointState``, ``EndpointStatus``, ``VariantState`` and the managed tag names live in the import-free leaf
``endpointkit._endpoint_state`` (so ``errors`` can use them without a cycle) and are re-exported here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from endpointkit._endpoint_state import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    SPEC_HASH_TAG,
    EndpointState,
    EndpointStatus,
    VariantState,
)
from endpointkit._observations import Drift, EndpointMetrics, LogRecord
from endpointkit._wait import Progress
from endpointkit.errors import EndpointKitError
from endpointkit.spec import Deployment

if TYPE_CHECKING:
    from endpointkit.adapters._grpc import GrpcConnection

__all__ = [
    "EXPIRES_AT_TAG",
    "MANAGED_BY_TAG",
    "MANAGED_BY_VALUE",
    "SPEC_HASH_TAG",
    "Adapter",
    "AsyncAdapter",
    "AsyncInferenceAdapter",
    "GrpcAdapter",
    "Capability",
    "LogsAdapter",
    "MetricsAdapter",
    "PlanNotesAdapter",
    "RolloutAdapter",
    "DesiredState",
    "EndpointState",
    "EndpointStatus",
    "ObservedState",
    "RawResponse",
    "ReapableAdapter",
    "Resource",
    "ResourceKind",
    "VariantState",
    "VerifyHook",
    "required_capabilities",
]

ResourceKind = Literal["model", "endpoint_config", "endpoint"]

#: Runs the spec's ``verify`` checks against a candidate version: called with an :class:`EndpointState` that the
#: adapter can invoke and that reaches only the candidate; raises ``VerificationError`` when a check fails.
VerifyHook = Callable[[EndpointState], None]


class Capability(enum.Enum):
    """What a spec may need from a target."""

    GPU = "gpu"
    FPGA = "fpga"
    INFERENTIA = "inferentia"
    AUTOSCALING = "autoscaling"
    TRAFFIC_SPLIT = "traffic_split"
    MULTI_MODEL = "multi_model"
    KEY_AUTH = "key_auth"
    SERVERLESS = "serverless"
    ASYNC_INFERENCE = "async_inference"
    GRPC = "grpc"


@dataclass(frozen=True, slots=True)
class Resource:
    """A model, endpoint config or endpoint as the adapter names and describes it.

    ``properties`` is what plan compares and shows; models and configs are immutable and named after a hash of
    their content, so the same name means the same content.
    """

    kind: ResourceKind
    name: str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DesiredState:
    """What the spec asks for on a target, computed without any call to the cloud."""

    endpoint_name: str
    spec_hash: str
    model: Resource
    config: Resource
    endpoint: Resource
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedState:
    """What exists: the endpoint's state, the model and config it uses, and which desired names already exist."""

    state: EndpointState
    model: Resource | None = None
    config: Resource | None = None
    existing: frozenset[tuple[ResourceKind, str]] = frozenset()
    #: set when the endpoint cannot be changed in place (an immutable field differs): plan shows a replace
    replace_reason: str | None = None
    #: set when the spec cannot be applied over what exists (e.g. a node pool that cannot be replaced): plan and
    #: apply raise it; destroy, which needs no more than what exists, goes on
    refusal: EndpointKitError | None = None
    #: each field where what runs differs from what the spec asks (a count changed by hand, a dead server, a
    #: removed tag), found by the adapter's ``read``; plan turns it into changes (``provisioners.drift``)
    drift: tuple[Drift, ...] = ()

    @property
    def exists(self) -> bool:
        return self.state.status is not EndpointStatus.NOT_FOUND


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An inference response as the transport received it."""

    status: int
    headers: Mapping[str, str]
    body: bytes | bytearray | memoryview


@runtime_checkable
class Adapter(Protocol):
    """What a target implements. Every method maps its SDK's errors into ``endpointkit.errors``.

    Mutating methods are idempotent where the cloud allows: creating what exists under the same name adopts it
    when it carries the ``managed-by=endpointkit`` tag, deleting what is gone succeeds.
    """

    kind: str
    payload_protocol: Literal["triton", "sagemaker"]

    @property
    def target_name(self) -> str:
        """The target's name in the spec (``targets.NAME``), carried by every state the adapter returns."""
        ...

    @property
    def max_request_bytes(self) -> int | None:
        """The largest request body the target accepts, checked before any call; None: no limit."""
        ...

    @classmethod
    def from_state(cls, state: EndpointState, **options: Any) -> Adapter:
        """An adapter for the endpoint ``state`` describes, without the spec it came from.

        It can at least invoke the endpoint; what more it does without a spec is the adapter's to say.
        ``options`` go to its constructor (client factories, credential, ...).
        """
        ...

    def limitations(self, deployment: Deployment) -> Mapping[Capability, str]:
        """Capabilities this target cannot provide for ``deployment``, each with the reason and an alternative.

        Pure: makes no cloud call.
        """
        ...

    def desired(self, deployment: Deployment) -> DesiredState:
        """The resources the spec asks for, with deterministic names. No cloud call."""
        ...

    def read(self, deployment: Deployment, desired: DesiredState) -> ObservedState:
        """What exists now. Read-only."""
        ...

    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        """Create ``resource`` (an endpoint is waited on until it serves, bounded by the spec's timeouts)."""
        ...

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Move the existing endpoint to ``desired.config`` blue/green and wait until the new one serves.

        ``verify``, when given, is called with a state that reaches only the new version, once it is ready and
        before it takes any traffic; when it raises, the previous version keeps serving, what the update made is
        removed, and the error propagates.
        """
        ...

    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        """Delete a resource; succeeds when it is already gone."""
        ...

    def status(self, deployment: Deployment) -> EndpointState:
        """The endpoint's state (``NOT_FOUND`` when it does not exist). Read-only."""
        ...

    def invoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send an encoded inference request to the endpoint and return the response unparsed."""
        ...

    def close(self) -> None:
        """Release clients and connections."""
        ...


@runtime_checkable
class ReapableAdapter(Protocol):
    """What an adapter adds so ``endpointkit reap`` can find and delete expired endpoints without their specs.

    Optional: ``reap`` checks ``isinstance(adapter, ReapableAdapter)`` and says so when a target lacks it.
    """

    def list_endpoints(self) -> list[EndpointState]:
        """Every endpoint on this target that carries ``managed-by=endpointkit``, read-only.

        Each state has ``name``, ``target``, ``kind``, ``status`` and, when the endpoint has an
        ``endpointkit-expires-at`` tag, ``expires_at`` (timezone-aware UTC, read by
        :func:`~endpointkit._endpoint_state.decode_expiry`, so an unreadable tag is no expiry). Endpoints without
        the managed-by tag are never listed. One listing call (paginated) plus at most one tag read per endpoint.
        """
        ...

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        """Delete a listed endpoint, then the config and the model it uses, without the spec it came from.

        Idempotent: what is already gone is skipped. Must refuse (ConflictError) an endpoint that is not
        managed by endpointkit.
        """
        ...


@runtime_checkable
class AsyncAdapter(Protocol):
    """What an adapter adds so ``ainvoke_endpoint`` awaits its requests instead of blocking a thread.

    Optional: an adapter without it is called through a worker thread.
    """

    async def ainvoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """:meth:`Adapter.invoke` as a coroutine; cancelling the awaiting task cancels the request."""
        ...

    async def aclose(self) -> None:
        """Close the connections of the running event loop (the blocking ones stay: ``close`` ends those)."""
        ...


@runtime_checkable
class AsyncInferenceAdapter(Protocol):
    """What an adapter adds when its endpoints take requests queued for later (SageMaker asynchronous inference).

    Optional: ``invoke_endpoint(..., asynchronous=True)`` raises UnsupportedCapabilityError on an adapter without it.
    """

    def invoke_asynchronous(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        progress: Progress | None = None,
    ) -> RawResponse:
        """Queue the request, wait (bounded by ``timeout``) for its result, and return it unparsed."""
        ...


@runtime_checkable
class GrpcAdapter(Protocol):
    """What an adapter adds when its endpoints serve Triton's gRPC API (``transport="grpc"``, streams).

    Optional: ``invoke_endpoint(..., transport="grpc")`` and ``invoke_stream`` raise UnsupportedCapabilityError
    before any call on an adapter without it.
    """

    def grpc_connection(
        self, state: EndpointState, *, model: str | None = None
    ) -> tuple[GrpcConnection, str]:
        """The pooled gRPC connection to (one of) the endpoint's servers, and the model to call.

        ``model`` defaults to the endpoint's default model. The connection carries the endpoint key and TLS
        trust when the endpoint has them; it belongs to the adapter, which closes it.
        """
        ...


@runtime_checkable
class LogsAdapter(Protocol):
    """What an adapter adds when it can read what its endpoints' servers write (``endpointkit logs``).

    Optional: ``logs`` raises UnsupportedCapabilityError before any call on an adapter without it.
    """

    def logs(
        self,
        deployment: Deployment,
        *,
        variant: str | None,
        since: datetime | None,
        tail: int | None,
        follow: bool,
        previous: bool,
    ) -> Iterator[LogRecord]:
        """The endpoint's log records, every replica of every variant (or of ``variant``) interleaved by time.

        ``since`` keeps the records written at or after it; ``tail`` keeps the last N after interleaving;
        ``follow`` keeps yielding new records until the caller stops iterating (polls are bounded);
        ``previous`` reads the logs of restarted containers where the target has them. Read-only.

        Raises:
            NotFoundError: the endpoint (or its log source) does not exist.
        """
        ...


@runtime_checkable
class MetricsAdapter(Protocol):
    """What an adapter adds when it can read its endpoints' live traffic figures (``status --metrics``, ``top``).

    Optional: ``metrics`` raises UnsupportedCapabilityError before any call on an adapter without it.
    """

    def metrics(self, deployment: Deployment, *, window: float) -> EndpointMetrics:
        """Requests, failures, p50/p99 latency and queue time per variant over the last ``window`` seconds.

        Where the target's own figures cover another span (Triton's counters are cumulative), ``note`` says
        which. Read-only.

        Raises:
            NotFoundError: the endpoint does not exist.
            ProviderError: a source of figures did not answer (names the server and port, or the API).
        """
        ...


@runtime_checkable
class RolloutAdapter(Protocol):
    """What an adapter adds when it moves traffic to a new version in its own way (steps, alarms, all at once)."""

    def rollout_lines(self, deployment: Deployment) -> list[str]:
        """How an update of ``deployment`` moves traffic, one plan line each (steps, waits, alarms). Pure."""
        ...


@runtime_checkable
class PlanNotesAdapter(Protocol):
    """What an adapter adds when a plan has warnings or facts to show beside the changes."""

    def plan_notes(self, deployment: Deployment) -> list[str]:
        """Lines for the plan: risks the spec takes (plain HTTP with a key), renewals due. No mutating call."""
        ...


def required_capabilities(deployment: Deployment) -> dict[Capability, str]:
    """What ``deployment`` needs from its target, each with the part of the spec that needs it."""
    needed: dict[Capability, str] = {}
    accelerators = {
        "gpu": Capability.GPU,
        "fpga": Capability.FPGA,
        "inferentia": Capability.INFERENTIA,
    }
    for index, variant in enumerate(deployment.variants):
        capability = accelerators.get(variant.accelerator)
        if capability is not None:
            needed.setdefault(capability, f"variants[{index}].accelerator: {variant.accelerator}")
    if deployment.spec.autoscaling is not None:
        needed[Capability.AUTOSCALING] = "autoscaling"
    if len(deployment.variants) > 1:
        needed[Capability.TRAFFIC_SPLIT] = f"{len(deployment.variants)} variants"
    if getattr(deployment.target, "api_key", False):
        needed[Capability.KEY_AUTH] = f"targets.{deployment.target_name}.api_key"
    if getattr(deployment.target, "serverless", None) is not None:
        needed[Capability.SERVERLESS] = f"targets.{deployment.target_name}.serverless"
    if getattr(deployment.target, "async_inference", None) is not None:
        needed[Capability.ASYNC_INFERENCE] = f"targets.{deployment.target_name}.async"
    if deployment.target.transport == "grpc":
        needed[Capability.GRPC] = f"targets.{deployment.target_name}.transport: grpc"
    return needed
