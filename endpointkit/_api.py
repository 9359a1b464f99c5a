"""The facade: validate, plan, apply, status, destroy, reap. Each resolves the target, makes its adapter, closes it.

The CLI and the Terraform hook come in here and nowhere else (with ``invoke`` for requests). The facade owns the
invoke connection pool (:data:`connection_pool`) and drops an endpoint's pooled connections before ``destroy``
and before each deletion of ``reap``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from endpointkit import adapters
from endpointkit._clients import ConnectionPool
from endpointkit._observations import EndpointMetrics, LogRecord
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.base import (
    Adapter,
    EndpointState,
    EndpointStatus,
    LogsAdapter,
    MetricsAdapter,
    ReapableAdapter,
)
from endpointkit.adapters.memory import MemoryAdapter
from endpointkit.errors import (
    CostLimitExceeded,
    EndpointKitError,
    MissingDependencyError,
    NotFoundError,
    SpecError,
    UnsupportedCapabilityError,
    UsageError,
)
from endpointkit.modelrepo import ModelInfo, is_remote_repository, load_repository
from endpointkit.pricing import cost_limit_violation, estimate_cost, format_usd
from endpointkit.provisioners import (
    Plan,
    apply_plan,
    check_capabilities,
    destroy_endpoint,
    make_plan,
    read_status,
)
from endpointkit.provisioners.reap import ReapOutcome, ReapReport, time_left
from endpointkit.provisioners.reap import reap as reap_expired
from endpointkit.spec import Deployment, Spec, load_spec
from endpointkit.verification import (
    VerificationReport,
    endpoint_invoker,
    load_checks,
    record_checks,
    run_checks,
    verify_hook,
)

__all__ = [
    "LogStream",
    "ModelInfo",
    "Plan",
    "ReapOutcome",
    "ReapProgress",
    "ReapReport",
    "SpecLike",
    "ValidationReport",
    "apply",
    "connection_pool",
    "destroy",
    "format_usd",
    "hourly_cost",
    "logs",
    "metrics",
    "model_info",
    "plan",
    "reap",
    "resolve",
    "status",
    "time_left",
    "validate",
    "verify",
]

SpecLike = Deployment | Spec | str | os.PathLike[str]

#: The adapters ``invoke_endpoint`` keeps warm, by endpoint. ``destroy`` and ``reap`` close an endpoint's
#: connections before deleting it: pooled keep-alive connections would hold a stopping Triton for its whole exit
#: timeout.
connection_pool = ConnectionPool()


def resolve(spec: SpecLike, target: str | None = None, *, check_repository: bool = True) -> Deployment:
    """``spec`` (a Spec, the path of one, or an already resolved Deployment) resolved for ``target``.

    A Deployment is returned as it is when ``target`` is None or its own target: nothing is resolved twice.

    Raises:
        SpecError: the file is not a valid spec, or ``target`` is not one of its targets.
    """
    if isinstance(spec, Deployment):
        if target is None or target == spec.target_name:
            return spec
        return spec.spec.deployment(target)
    loaded = spec if isinstance(spec, Spec) else load_spec(spec, check_repository=check_repository)
    return loaded.deployment(target)


@contextlib.contextmanager
def _adapter_for(
    deployment: Deployment, adapter: Adapter | None, options: Mapping[str, Any], *, dry_run: bool = False
) -> Iterator[Adapter]:
    """The adapter to use: the caller's (left open), an in-memory one for a dry run, or the target's own."""
    if adapter is not None:
        if dry_run:
            raise UsageError("dry_run plans against an in-memory target: it does not take an adapter too")
        yield adapter
        return
    if dry_run:
        created: Adapter = MemoryAdapter(target_name=deployment.target_name)
    else:
        # Looked up in the registry module at each call, so a replaced entry point reaches every verb.
        created = adapters.create_adapter(deployment, **options)
    try:
        yield created
    finally:
        created.close()


def plan(
    spec: SpecLike,
    target: str | None = None,
    *,
    adapter: Adapter | None = None,
    dry_run: bool = False,
    **options: Any,
) -> Plan:
    """What ``apply`` would change. Read-only: checks capabilities, reads the target, diffs.

    With ``dry_run`` the plan is made against an empty in-memory target: no call reaches the real one.

    Raises:
        SpecError, UnsupportedCapabilityError: before any cloud call.
        ProviderError: reading the target failed.
    """
    deployment = resolve(spec, target)
    with _adapter_for(deployment, adapter, options, dry_run=dry_run) as active:
        return make_plan(deployment, active)


def apply(
    spec: SpecLike,
    target: str | None = None,
    *,
    progress: Progress | None = None,
    adapter: Adapter | None = None,
    dry_run: bool = False,
    max_hourly_cost: float | None = None,
    record_checks: bool = False,
    rehearse: bool = True,
    **options: Any,
) -> EndpointState:
    """Create or update the endpoint and block until it serves (bounded by the spec's timeouts).

    An unchanged spec makes no mutating call. An update is blue/green: the spec's ``verify`` checks run against
    the new version before it takes any traffic (a new endpoint is checked once it serves), and a failed check
    raises ``VerificationError`` with the previous version still serving. ``record_checks`` makes the new
    version the reference instead: its answers are written to the checks' ``expect`` files (how a first version
    gets them), then the other checks run. On SageMaker a spec with checks is first rehearsed: the exact
    ``model.tar.gz`` runs on a local tritonserver in SageMaker mode and the checks run against it, before any
    SageMaker call, even the plan's reads (``rehearse=False`` skips it, e.g. on a machine without
    tritonserver). On failure everything this run created
    is deleted, what existed before is left serving, and the provider's reason is raised. With ``dry_run`` the
    endpoint is applied to an in-memory target; with ``max_hourly_cost`` (USD) a spec whose estimated on-demand
    cost per hour is above it, or unknown, is refused before any call.

    Raises:
        SpecError, UnsupportedCapabilityError, CostLimitExceeded: before any cloud call.
        ProviderError (QuotaError, CapacityError, …): the provider refused; carries its reason.
        ProvisionTimeout: the endpoint did not serve within ``timeouts``.
    """
    deployment = resolve(spec, target)
    if max_hourly_cost is not None:
        _check_cost_limit(deployment, max_hourly_cost)
    with _adapter_for(deployment, adapter, options, dry_run=dry_run) as active:
        # Made before planning: the check files are read now, so a bad one fails before anything starts.
        hook = None if dry_run else verify_hook(deployment, active, progress=progress, record=record_checks)
        if hook is not None and rehearse and not record_checks:
            # Before the plan: the rehearsal fails a bad model before a single SageMaker call.
            _rehearse_if_sagemaker(deployment, active, progress)
        state = apply_plan(deployment, active, make_plan(deployment, active), progress=progress, verify=hook)
    return _with_invoke_settings(state, deployment)


def _rehearse_if_sagemaker(deployment: Deployment, adapter: Adapter, progress: Progress | None) -> None:
    """Run the checks on the archive SageMaker would get, on a local tritonserver, before any SageMaker call."""
    if deployment.kind != "sagemaker":
        return
    from endpointkit import _rehearsal  # loads the local and SageMaker adapters: only for a SageMaker apply
    from endpointkit.adapters.sagemaker import SageMakerAdapter

    if isinstance(adapter, SageMakerAdapter):
        _rehearsal.rehearse(deployment, adapter, verify_hook, progress=progress)


def _check_cost_limit(deployment: Deployment, limit: float) -> None:
    estimate = estimate_cost(deployment)
    violation = cost_limit_violation(estimate, limit)
    if violation is not None:
        raise CostLimitExceeded(
            f"{deployment.name} on {deployment.target_name}: {violation}",
            estimate=estimate.total,
            limit=limit,
        )


def status(
    spec: SpecLike, target: str | None = None, *, adapter: Adapter | None = None, **options: Any
) -> EndpointState | None:
    """The endpoint's state, or None when it does not exist. Read-only."""
    deployment = resolve(spec, target, check_repository=False)
    with _adapter_for(deployment, adapter, options) as active:
        state = read_status(deployment, active)
    return None if state is None else _with_invoke_settings(state, deployment)


def logs(
    spec: SpecLike,
    target: str | None = None,
    *,
    variant: str | None = None,
    since: datetime | None = None,
    tail: int | None = None,
    follow: bool = False,
    previous: bool = False,
    adapter: Adapter | None = None,
    **options: Any,
) -> LogStream:
    """The endpoint's log records (time, variant, replica, line), every replica interleaved by time. Read-only.

    ``variant`` keeps one variant's; ``since`` (timezone-aware) keeps those written at or after it; ``tail``
    keeps the last N; ``follow`` keeps yielding new records (the target is polled at a bounded interval) until
    the caller stops iterating; ``previous`` adds what restarted containers wrote, where the target keeps it
    (AKS). The spec, the target's support and the endpoint's existence are checked before this returns; the
    adapter is closed when the iteration ends or the iterator is closed (use ``contextlib.closing`` to stop a
    follow early).

    Raises:
        SpecError: ``variant`` is not one of the spec's variants.
        UsageError: ``tail`` is below 1.
        UnsupportedCapabilityError: the target cannot read logs; before any call.
        NotFoundError: the endpoint, or its log source (a SageMaker log group), does not exist.
    """
    deployment = resolve(spec, target, check_repository=False)
    names = [each.name for each in deployment.variants]
    if variant is not None and variant not in names:
        raise SpecError(f"{deployment.name} has no variant {variant!r}; its variants: {', '.join(names)}")
    if tail is not None and tail < 1:
        raise UsageError(f"tail must be at least 1, not {tail}")
    stack = contextlib.ExitStack()
    try:
        active = stack.enter_context(_adapter_for(deployment, adapter, options))
        if not isinstance(active, LogsAdapter):
            raise UnsupportedCapabilityError(
                f"the {deployment.kind} target {deployment.target_name!r} cannot read its endpoints' logs",
                missing={"LOGS": f"{type(active).__name__} has no logs()"},
            )
        records = active.logs(
            deployment, variant=variant, since=since, tail=tail, follow=follow, previous=previous
        )
    except BaseException:
        stack.close()
        raise
    return LogStream(records, stack)


class LogStream(Iterator[LogRecord]):
    """What :func:`logs` returns: an iterator of records that closes the adapter when they end, fail, or the
    caller calls :meth:`close` (also as a context manager; even a stream never iterated is closed)."""

    def __init__(self, records: Iterator[LogRecord], resources: contextlib.ExitStack) -> None:
        self._records = records
        self._resources = resources

    def __next__(self) -> LogRecord:
        try:
            return next(self._records)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading (a follow too) and close the adapter. Idempotent."""
        closer = getattr(self._records, "close", None)
        try:
            if callable(closer):
                closer()
        except ValueError:
            # "generator already executing": another thread is reading it (the CLI's follow reader, a daemon
            # thread that ends with the process); the adapter below is closed all the same.
            pass
        finally:
            self._resources.close()


def metrics(
    spec: SpecLike,
    target: str | None = None,
    *,
    window: float = 300.0,
    adapter: Adapter | None = None,
    **options: Any,
) -> EndpointMetrics:
    """Live traffic per variant: requests, failures, p50/p99 latency and queue time. Read-only.

    ``window`` (seconds) is the span asked for: SageMaker's CloudWatch figures cover exactly it; Triton's own
    (local, AKS) are cumulative counters and a fixed 300 s latency window, which ``EndpointMetrics.note`` says.

    Raises:
        UsageError: ``window`` is not a positive number of seconds.
        UnsupportedCapabilityError: the target cannot read metrics; before any call.
        NotFoundError: the endpoint does not exist.
        ProviderError: a source of figures did not answer (a metrics port: named with its server).
    """
    if not (window > 0 and math.isfinite(window)):
        raise UsageError(f"window must be a positive number of seconds, not {window}")
    deployment = resolve(spec, target, check_repository=False)
    with _adapter_for(deployment, adapter, options) as active:
        if not isinstance(active, MetricsAdapter):
            raise UnsupportedCapabilityError(
                f"the {deployment.kind} target {deployment.target_name!r} cannot read its endpoints' metrics",
                missing={"METRICS": f"{type(active).__name__} has no metrics()"},
            )
        return active.metrics(deployment, window=window)


def _with_invoke_settings(state: EndpointState, deployment: Deployment) -> EndpointState:
    """The state with what ``invoke_endpoint`` needs from the spec later: the target's ``transport``.

    A long-running service keeps the state of an apply and invokes with it, without the spec.
    """
    if deployment.target.transport == "http":
        return state
    return dataclasses.replace(state, extra={**state.extra, "transport": deployment.target.transport})


def destroy(
    spec: SpecLike,
    target: str | None = None,
    *,
    progress: Progress | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> bool:
    """Delete the endpoint, its config and its model, in that order. Idempotent; True when anything existed.

    Closes this process's pooled invoke connections to the endpoint first.
    """
    deployment = resolve(spec, target, check_repository=False)
    connection_pool.forget(deployment.name)
    with _adapter_for(deployment, adapter, options) as active:
        return destroy_endpoint(deployment, active, progress=progress)


def hourly_cost(spec: SpecLike, target: str | None = None) -> float | None:
    """The estimated on-demand cost per hour in USD of what the spec deploys; None when a price is unknown."""
    return estimate_cost(resolve(spec, target, check_repository=False)).total


def model_info(deployment: Deployment, model: str | None = None) -> ModelInfo | None:
    """What the spec's local model repository declares about ``model`` (default: the default model).

    None when that cannot be known here: the repository is in cloud storage, cannot be read, or has no such
    model. The endpoint has the last word on its models; this is for shaping a request, never for refusing one.
    """
    if is_remote_repository(deployment.repository):
        return None
    try:
        repository = load_repository(deployment.repository)
        name = model or repository.default_model(deployment.spec.model.default_model)
    except EndpointKitError:
        return None
    return repository.models.get(name)


# ------------------------------------------------------------------------------------------------ verify


def verify(
    spec: SpecLike,
    target: str | None = None,
    *,
    record: bool = False,
    adapter: Adapter | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> VerificationReport:
    """Run the spec's ``verify`` checks against the serving endpoint, or with ``record`` write their ``expect``
    files from its answers. Blocks for the requests; changes nothing on the target.

    Every input, expectation and ``python:`` function is read before the endpoint is called. Without ``record``
    the checks stop at the first failure; ``progress`` gets one event per check as it ends.

    Returns:
        One result per check (with ``record``: per check that has ``expect``, and the paths written).

    Raises:
        SpecError: the spec has no checks, or one of its files or names is wrong (see ``load_checks``).
        NotFoundError: the endpoint does not exist or is not IN_SERVICE.
        VerificationError: a check failed, naming it, the output, the largest difference and where, or the p99.
        ProviderError: a request failed.
    """
    deployment = resolve(spec, target)
    if not deployment.spec.verify:
        raise SpecError(
            f"{deployment.name} has no verify checks: add a verify section with inputs and expect, max_p99 or "
            "python: module:function",
            field="verify",
        )
    checks = load_checks(deployment, read_expectations=not record)
    with _adapter_for(deployment, adapter, options) as active:
        state = read_status(deployment, active)
        if state is None or state.status is not EndpointStatus.IN_SERVICE:
            seen = "NOT_FOUND" if state is None else state.status.value
            raise NotFoundError(
                f"endpoint {deployment.name} on {deployment.target_name} is {seen}: verify checks a serving "
                "endpoint; run `endpointkit apply` first",
                provider=deployment.kind,
                operation="verify",
                code=seen,
            )
        invoke = endpoint_invoker(state, active)
        subject = f"endpoint {state.name} on {deployment.target_name}"
        run = record_checks if record else run_checks
        return run(checks, invoke, subject=subject, progress=progress)


# ------------------------------------------------------------------------------------------------ validate


@dataclass(frozen=True)
class ValidationReport:
    """What ``validate`` checked: the endpoint's name and, per target, None when the target's own checks ran,
    or why they were skipped (the target's pip extra is not installed)."""

    name: str
    checks: Mapping[str, str | None]

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets checked, in the spec's order."""
        return tuple(self.checks)

    @property
    def skipped(self) -> dict[str, str]:
        """The targets whose own checks were skipped, with the reason."""
        return {target: note for target, note in self.checks.items() if note is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": True,
            "name": self.name,
            "targets": list(self.targets),
            "checks": {target: "skipped" if note else "ok" for target, note in self.checks.items()},
            "skipped": self.skipped,
        }


def validate(
    spec: SpecLike, target: str | None = None, *, adapter: Adapter | None = None, **options: Any
) -> ValidationReport:
    """Check a spec and its model repository, and run what each target's adapter checks before any call.

    ``target`` None checks every target the spec lists (a Deployment: its own). Per target: the capability check
    and the adapter's ``desired()``, which makes no cloud call but catches what only that target refuses (a
    SageMaker instance type botocore does not know). A target whose pip extra is missing is skipped, with the
    reason in the report. Touches no target.

    Raises:
        SpecError, UnsupportedCapabilityError: the spec is invalid, or a target would refuse it.
    """
    source = spec if isinstance(spec, Deployment | Spec) else load_spec(spec)
    if target is not None:
        names = [target]
    else:
        names = [source.target_name] if isinstance(source, Deployment) else list(source.targets)
    deployments = [resolve(source, name) for name in names]
    load_checks(
        deployments[0]
    )  # the verify section's files, python checks and output names; no endpoint call
    checks = {
        deployment.target_name: _target_checks(deployment, adapter, options) for deployment in deployments
    }
    return ValidationReport(deployments[0].name, MappingProxyType(checks))


def _target_checks(deployment: Deployment, adapter: Adapter | None, options: Mapping[str, Any]) -> str | None:
    """Run the target's checks that make no call; a note instead when the target's extra is not installed."""
    try:
        with _adapter_for(deployment, adapter, options) as active:
            check_capabilities(deployment, active)
            active.desired(deployment)
    except MissingDependencyError as missing:
        return f"{deployment.kind} checks skipped: {missing}"
    return None


# ------------------------------------------------------------------------------------------------ reap


class ReapProgress(Protocol):
    """What ``reap`` reports about each expired endpoint while it deletes them (the CLI shows a line each)."""

    def started(self, state: EndpointState) -> Progress | None:
        """The deletion of ``state``'s endpoint starts; returns the callback for its waits' progress, if any."""
        ...

    def finished(self, state: EndpointState, error: Exception | None) -> None:
        """The deletion of ``state``'s endpoint ended: ``error`` is why it failed, None when it succeeded."""
        ...


def reap(
    spec: SpecLike | None = None,
    target: str | None = None,
    *,
    region: str | None = None,
    dry_run: bool = False,
    progress: ReapProgress | None = None,
    adapter: Adapter | None = None,
    now: datetime | None = None,
    **options: Any,
) -> ReapReport:
    """Destroy every endpointkit-managed endpoint on a target whose ``endpointkit-expires-at`` has passed.

    The target is one of ``spec``'s (``target`` names it when the spec has several), or, without a spec, a bare
    target kind in ``target`` (``local``, or ``sagemaker`` with ``region``, default ``$AWS_REGION``). Whichever
    spec an expired endpoint came from, it goes. With ``dry_run`` only the listing call is made. One failed
    deletion does not stop the others: it is in ``ReapReport.failed``. Closes this process's pooled invoke
    connections to each endpoint before deleting it. Blocks until every deletion ended.

    ``progress`` hears of each deletion as it starts and ends (:class:`ReapProgress`); ``adapter`` replaces the
    target's own; ``now`` (default: the current UTC time) decides what has expired; other keywords go to the
    adapter's constructor.

    Raises:
        UsageError: the target is not named, or a bare kind cannot say where its endpoints are (AKS).
        UnsupportedCapabilityError: the target cannot list its endpoints.
        ProviderError: listing failed.
    """
    with _reap_adapter(spec, target, region, adapter, options) as active:
        reaped: object = active
        if isinstance(active, ReapableAdapter):
            reaped = _Reaping(active, progress)
        return reap_expired(reaped, now=now, dry_run=dry_run)


class _Reaping:
    """A target's adapter as reap uses it: each deletion closes the endpoint's pooled connections first, and is
    reported to the caller's :class:`ReapProgress`."""

    def __init__(self, adapter: ReapableAdapter, progress: ReapProgress | None) -> None:
        self._adapter = adapter
        self._progress = progress
        # reap names the target in its report from these
        self.kind = str(getattr(adapter, "kind", type(adapter).__name__))
        self.target_name = str(getattr(adapter, "target_name", self.kind))

    def list_endpoints(self) -> list[EndpointState]:
        return self._adapter.list_endpoints()

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        connection_pool.forget(state.name)
        if self._progress is None:
            self._adapter.destroy_by_state(state, progress=progress)
            return
        shown = self._progress.started(state)
        try:
            self._adapter.destroy_by_state(state, progress=_both(shown, progress))
        except Exception as error:
            self._progress.finished(state, error)
            raise
        self._progress.finished(state, None)


def _both(first: Progress | None, second: Progress | None) -> Progress | None:
    if first is None or second is None:
        return first or second

    def report(event: ProgressEvent) -> None:
        first(event)
        second(event)

    return report


_KINDS_NEEDING_A_SPEC = {"aks": "its subscription, resource group and cluster"}


@contextlib.contextmanager
def _reap_adapter(
    spec: SpecLike | None,
    target: str | None,
    region: str | None,
    adapter: Adapter | None,
    options: Mapping[str, Any],
) -> Iterator[Adapter]:
    """The adapter of the target reap was pointed at (a target of ``spec``, or a bare kind), closed after."""
    if adapter is not None:
        yield adapter
        return
    if spec is not None:
        if region is not None:
            raise UsageError(
                "a region goes with a bare sagemaker target (--region); a spec's target says its own"
            )
        created = adapters.create_adapter(resolve(spec, target, check_repository=False), **options)
    else:
        created = _bare_kind_adapter(target, region, options)
    try:
        yield created
    finally:
        created.close()


def _bare_kind_adapter(kind: str | None, region: str | None, options: Mapping[str, Any]) -> Adapter:
    if not kind:
        raise UsageError(
            "reap needs a target: a bare kind (--target local, sagemaker) or a spec (--spec FILE)"
        )
    if kind in _KINDS_NEEDING_A_SPEC:
        raise UsageError(
            f"a bare {kind} target cannot say {_KINDS_NEEDING_A_SPEC[kind]}: name it through a spec that has "
            f"that {kind} target (--spec FILE --target NAME)"
        )
    if kind not in adapters.registered_kinds():
        bare_kinds = ", ".join(k for k in adapters.registered_kinds() if k not in _KINDS_NEEDING_A_SPEC)
        raise UsageError(f"{kind!r} is not a target kind; without a spec use one of: {bare_kinds}")
    if kind != "sagemaker" and region:
        raise UsageError(f"a region (--region) is for a bare sagemaker target, not {kind}")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if kind == "sagemaker" and not region:
        raise UsageError(
            "a bare sagemaker target needs a region (--region, or AWS_REGION in the environment)"
        )
    bare = EndpointState("", kind, kind, EndpointStatus.UNKNOWN, region=region)
    try:
        return adapters.adapter_for_state(bare, **options)
    except (KeyError, TypeError, ValueError) as exc:  # an adapter whose from_state needs more than a kind
        raise UsageError(
            f"the {kind} adapter needs its target's settings: name it through a spec (--spec FILE --target NAME) "
            f"({exc!r})"
        ) from None
