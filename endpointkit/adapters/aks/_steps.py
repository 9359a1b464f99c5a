"""Creating and updating an AKS endpoint's objects: the waits, and the blue/green update through the routes.

An update starts the new versions (Deployments named after their pod template) beside the old ones and moves
traffic with the routes' weights; nothing the old version runs is touched until the new one holds all traffic:

1. apply the new versions and wait until they roll out (the pods' own reasons end the wait);
2. apply the TLS Secrets and the Gateway when they changed;
3. with a ``verify`` hook: add the preview rule (header ``endpointkit-version: <new config>`` -> new versions) to
   the routes, wait until the Gateway accepts them, and run the hook against a state whose requests carry the
   header (``extra["headers"]``), so only the new version answers;
4. ``rollout: canary | linear``: for each share but the last, weight the routes (old x (100 - share), new x
   share), hold ``wait`` seconds, run the hook again, and read the alarm: Triton's counters of the new pods
   (failures / requests since the step began) against ``max_error_rate``, their p99 against ``max_p99``;
5. route everything to the new versions (no preview rule) and re-stamp the anchor Service with the new config;
6. delete the old versions.

Any failure or interrupt (``BaseException``) before step 5 completes re-applies the previous routes (from the
previous config's record, all traffic on the old versions, no preview rule) and deletes the versions this update
made; then the error propagates. The previous version serves all along.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from endpointkit._wait import Progress, ProgressEvent, wait_for
from endpointkit.adapters._triton_metrics import TritonSample
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ClusterInfo
from endpointkit.adapters.aks._desired import EndpointPlan, config_objects
from endpointkit.adapters.aks._drift import live_deployments
from endpointkit.adapters.aks._errors import PollPolicy
from endpointkit.adapters.aks._gateway import VERSION_HEADER, Backend
from endpointkit.adapters.aks._kube import KubeClient, Observation, ScaleUpGrace
from endpointkit.adapters.aks._metrics import scrape_versions
from endpointkit.adapters.aks._rollout import (
    apply_versions,
    rendered_hash,
    restamp,
    stamper,
)
from endpointkit.adapters.aks._routes import blend
from endpointkit.adapters.aks._secrets import TlsOutcome, ensure_tls
from endpointkit.adapters.base import EXPIRES_AT_TAG, SPEC_HASH_TAG, EndpointState, VerifyHook
from endpointkit.errors import ProviderError, ProvisionTimeout, VerificationError
from endpointkit.spec import Deployment, RolloutSteps, RolloutStrategy, format_duration

__all__ = [
    "Session",
    "await_ready",
    "create_endpoint",
    "restamp_endpoint",
    "rollout_lines",
    "update_endpoint",
]

logger = logging.getLogger("endpointkit.aks")

#: longest sleep while a rollout step holds, so progress is reported and an interrupt is seen promptly
_HOLD_SLICE = 1.0


@dataclass
class Session:
    """One create or update of an endpoint: the plan, the clients, and the bounds of its waits.

    ``observe`` reads the endpoint once (Deployments, pods and front); ``state`` turns a reading into the
    endpoint's state.
    """

    deployment: Deployment
    plan: EndpointPlan
    kube: KubeClient
    cluster: ClusterInfo
    deadline: float
    progress: Progress | None
    polling: PollPolicy
    observe: Callable[[ScaleUpGrace | None], Observation]
    state: Callable[[Observation], EndpointState]
    subject: str
    scale_up_grace: float = 90.0
    stamp: Callable[[dict[str, Any]], dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.stamp = stamper(self.deployment, self.plan)

    @property
    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    @property
    def namespace(self) -> str:
        return self.plan.render.namespace


# ---- waits ---------------------------------------------------------------------------------------------------------
def await_ready(session: Session, *, versions: set[str], front: bool = True) -> Observation:
    """Wait until ``versions`` (Deployment names) rolled out and, with ``front``, the Gateway is programmed and both
    routes are attached. Pods that cannot run, or a Gateway that refuses, end the wait at once with their reason.

    Raises:
        ProvisionTimeout: the deadline passed (carries the endpoint's last state).
        ProviderError: the pods' or the Gateway's own reason.
    """

    def done(observation: Observation) -> bool:
        current = [d for d in observation.deployments if d.name in versions]
        ready_front = not front or (observation.front is not None and observation.front.ready)
        return len(current) == len(versions) and all(d.rolled_out for d in current) and ready_front

    def failure(observation: Observation) -> ProviderError | None:
        return observation.problem if front else observation.pod_problem

    grace = ScaleUpGrace.starting_now(min(session.scale_up_grace, session.remaining))
    observation: Observation = wait_for(
        lambda: session.observe(grace),
        done=done,
        failure=failure,
        describe=lambda observation: observation.describe(),
        subject=session.subject,
        timeout=session.remaining,
        progress=session.progress,
        first_delay=session.polling.first,
        max_delay=session.polling.most,
        last_state=session.state,
    )
    return observation


def _hold(session: Session, seconds: float, subject: str) -> None:
    """Sleep ``seconds`` in short slices, reporting progress before each slice and at the end.

    Raises:
        ProvisionTimeout: the hold would pass the session's deadline (``timeouts.update`` plus the steps'
            waits, so only when the waits before it ran long).
    """
    start = time.monotonic()
    end = start + seconds
    if end > session.deadline:
        raise ProvisionTimeout(
            f"{subject}: holding {seconds:g} s would pass the update's deadline (timeouts.update plus the "
            "rollout's waits); raise timeouts.update",
        )
    while True:  # reports at least once, however short the hold (and once more when it ends)
        left = max(0.0, end - time.monotonic())
        if session.progress is not None:
            elapsed = time.monotonic() - start
            session.progress(ProgressEvent(subject, f"{left:.0f} s left in this step", elapsed, seconds))
        if left <= 0:
            return
        time.sleep(min(left, _HOLD_SLICE))


# ---- pieces --------------------------------------------------------------------------------------------------------
def apply_front(session: Session) -> TlsOutcome:
    """Make or renew the listener's TLS Secrets for the host, then apply the endpoint's own Gateway when its
    rendering or labels changed."""
    plan, kube = session.plan, session.kube
    front = plan.front
    existing = None if front.owns_gateway else kube.get("Gateway", front.gateway[1], front.gateway[0])
    outcome = ensure_tls(kube, session.deployment, front, front.host_of(session.cluster.location, existing))
    gateway = front.gateway_object()
    if gateway is not None:
        stamped = session.stamp(gateway)
        live = kube.get("Gateway", front.gateway[1], front.gateway[0])
        live_labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        if rendered_hash(live) != rendered_hash(stamped) or live_labels != stamped["metadata"]["labels"]:
            kube.apply(stamped)
    return outcome


def _backends(shares: Mapping[str, float]) -> list[Backend]:
    return blend({}, shares, 100.0)


def _route(
    session: Session, backends: Sequence[Backend], preview: tuple[str, Sequence[Backend]] | None
) -> Observation:
    """Apply the routes with these backends (and preview rule), then wait until the Gateway attaches them."""
    for route in session.plan.front.routes(backends, preview=preview):
        session.kube.apply(session.stamp(route))
    return await_ready(session, versions=set(session.plan.versions.values()))


def _candidate(session: Session, observation: Observation) -> EndpointState:
    """The endpoint's state whose requests carry the preview header: only the new version answers them."""
    state = session.state(observation)
    return replace(
        state, extra={**state.extra, "headers": {VERSION_HEADER: session.plan.desired.config.name}}
    )


def create_endpoint(session: Session) -> None:
    """Apply the versions, the anchor Service, the TLS Secrets and Gateway, then the routes; wait until it serves."""
    plan, kube = session.plan, session.kube
    apply_versions(kube, plan, session.stamp, live_deployments(kube, session.namespace, plan.render.endpoint))
    kube.apply(session.stamp(_render.service(plan.render)))
    apply_front(session)
    _route(session, _backends(_version_shares(plan)), None)


def restamp_endpoint(session: Session, before: Observation) -> None:
    """An endpoint already on the plan's config: re-stamp it, put back what was changed by hand (versions,
    routes), renew its certificate when due; wait only when something that serves was written."""
    plan, kube = session.plan, session.kube
    written = apply_versions(
        kube, plan, session.stamp, live_deployments(kube, session.namespace, plan.render.endpoint)
    )
    front = before.front
    wanted = {b.service: b.weight for b in _backends(_version_shares(plan))}
    routes = front is None or front.preview or front.weights != wanted
    restamp(session.deployment, plan, kube, session.stamp, routes=routes)
    outcome = apply_front(session)
    if written or outcome.written or routes or not before.ready:
        await_ready(session, versions=set(plan.versions.values()))


def _version_shares(plan: EndpointPlan) -> dict[str, float]:
    return {name: plan.weights[variant] for variant, name in plan.versions.items()}


# ---- update --------------------------------------------------------------------------------------------------------
def update_endpoint(session: Session, before: Observation, verify: VerifyHook | None) -> None:
    """Move the endpoint to the plan's config blue/green (module docstring). Blocks until done or rolled back.

    Raises:
        VerificationError: a check of ``verify`` or a rollout alarm failed; the previous version serves.
        ProviderError, ProvisionTimeout: the new version could not start or attach; the previous version serves.
    """
    plan, kube = session.plan, session.kube
    new = _version_shares(plan)
    old = dict(before.front.weights) if before.front is not None else {}
    created = sorted(set(new) - {d.name for d in before.deployments})
    previous = _previous(session, before)
    rewritten: list[str] = []
    config = plan.desired.config.name
    preview = (config, _backends(new)) if verify is not None else None
    rollout = session.deployment.spec.rollout
    steps: RolloutSteps | None = None
    shares: tuple[float, ...] = ()
    if isinstance(rollout, RolloutStrategy) and created:  # steps move traffic only to something new
        steps, shares = rollout.steps, rollout.percentages()[:-1]
    try:
        rewritten = apply_versions(
            kube, plan, session.stamp, live_deployments(kube, session.namespace, plan.render.endpoint)
        )
        await_ready(session, versions=set(new), front=False)
        apply_front(session)
        if verify is not None:
            observation = _route(session, _backends(old or new), preview)
            verify(_candidate(session, observation))
        alarm = _Alarm(session, steps, [d for d in plan.deployments if d["metadata"]["name"] in created])
        for number, share in enumerate(shares, start=1):
            _route(session, blend(old, new, share), preview)
            alarm.arm()
            assert steps is not None
            subject = (
                f"rollout of {plan.render.endpoint}: step {number}/{len(shares) + 1}, {share:g}% to {config}"
            )
            _hold(session, steps.wait, subject)
            if verify is not None:
                verify(_candidate(session, session.observe(None)))
            alarm.check()
        for route in plan.front.routes(_backends(new)):
            kube.apply(session.stamp(route))
        kube.apply(session.stamp(_render.service(plan.render)))
        await_ready(session, versions=set(new))
    except BaseException:
        _rollback(session, previous, created, [name for name in rewritten if name not in created])
        raise
    _remove_stale(session, before, set(new))


@dataclass(frozen=True)
class _Previous:
    """What an update puts back when it fails: the front as the previous config recorded it (routes, own Gateway,
    anchor Service, stamped as they were) and that config's Deployments (renders, by name)."""

    front: list[dict[str, Any]]
    versions: dict[str, dict[str, Any]]


def _previous(session: Session, before: Observation) -> _Previous:
    """The previous config's record; without one, the live routes and anchor as read before the update."""
    kube, namespace = session.kube, session.namespace
    endpoint = session.plan.render.endpoint
    config = _render.applied_config(before.service)
    record = kube.get("ConfigMap", config, namespace) if config else None
    recorded = config_objects((record or {}).get("data") or {})
    anchor = _render.service_name(endpoint)
    front = [
        o
        for o in recorded
        if o.get("kind") in ("HTTPRoute", "GRPCRoute", "Gateway")
        or (o.get("kind") == "Service" and o["metadata"]["name"] == anchor)
    ]
    if not any(o["kind"] == "HTTPRoute" for o in front):
        live = [kube.get(kind, endpoint, namespace) for kind in ("HTTPRoute", "GRPCRoute")]
        front = [_plain(found) for found in (*live, before.service) if found]
    metadata = (before.service or {}).get("metadata") or {}
    volatile = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k in (SPEC_HASH_TAG, EXPIRES_AT_TAG)
    }
    kept = (_render.ANNOTATION_CONFIG, _render.ANNOTATION_API_KEY)
    anchor_annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k in kept}
    stamped = []
    for obj in front:
        if obj["kind"] == "Service":
            annotations = anchor_annotations
        else:
            annotations = {_render.ANNOTATION_CONFIG: config} if config and obj["kind"] != "Gateway" else {}
        stamped.append(_render.stamp(obj, labels=volatile, annotations=annotations))
    versions = {str(o["metadata"]["name"]): o for o in recorded if o.get("kind") == "Deployment"}
    return _Previous(stamped, versions)


def _plain(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A live object as something to apply again: kind, name, namespace, labels, annotations and spec."""
    metadata = obj.get("metadata") or {}
    kept = {k: metadata[k] for k in ("name", "namespace", "labels", "annotations") if k in metadata}
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": kept,
        "spec": obj.get("spec") or {},
    }


def _rollback(
    session: Session, previous: _Previous, created: Sequence[str], rewritten: Sequence[str]
) -> None:
    """Best effort: the previous front back, the previous versions this update rewrote (replicas) back, then the
    versions it made deleted. The update's own error is what the caller raises, so a failure here is logged;
    the new versions stay when the previous routes could not go back."""
    kube, namespace = session.kube, session.namespace
    try:
        for obj in previous.front:
            kube.apply(obj)
        for name in rewritten:
            if name in previous.versions:
                kube.apply(session.stamp(previous.versions[name]))
    except ProviderError as error:
        logger.error(
            "rollback of %s: the previous routes could not be applied again: %s", session.subject, error
        )
        return
    for name in created:
        try:
            kube.delete("Deployment", name, namespace)
            kube.delete("Service", name, namespace)
        except ProviderError as error:
            logger.error("rollback of %s: version %s could not be deleted: %s", session.subject, name, error)


def _remove_stale(session: Session, before: Observation, versions: set[str]) -> None:
    """Delete the versions the endpoint no longer routes to, and the key Secret when the spec dropped the key."""
    kube, namespace = session.kube, session.namespace
    for stale in sorted({d.name for d in before.deployments} - versions):
        kube.delete("Deployment", stale, namespace)
        kube.delete("Service", stale, namespace)
    if session.plan.render.api_key_secret is None:
        kube.delete("Secret", session.plan.key_secret, namespace)


# ---- alarm ---------------------------------------------------------------------------------------------------------
class _Alarm:
    """A rollout step's alarm: Triton's counters and p99 of the new versions' pods, read at the start and the end
    of the step. Inactive without a bound (``max_error_rate``, ``max_p99``) or without a new version."""

    def __init__(
        self, session: Session, steps: RolloutSteps | None, versions: Sequence[Mapping[str, Any]]
    ) -> None:
        self._session = session
        self._steps = steps
        templates = {
            str(v["spec"]["template"]["metadata"]["labels"][_render.LABEL_TEMPLATE]) for v in versions
        }
        self._templates = templates
        self._baseline: dict[str, TritonSample] = {}

    @property
    def active(self) -> bool:
        steps = self._steps
        return (
            steps is not None
            and bool(self._templates)
            and (steps.max_error_rate is not None or steps.max_p99 is not None)
        )

    def _read(self) -> dict[str, TritonSample]:
        session = self._session
        try:
            return scrape_versions(
                session.kube,
                namespace=session.namespace,
                endpoint=session.plan.render.endpoint,
                templates=self._templates,
                model=session.plan.render.default_model,
            )
        except ProviderError as error:
            raise self._error(
                "alarm: metrics", f"the new pods' metrics could not be read: {error}"
            ) from error

    def arm(self) -> None:
        self._baseline = self._read() if self.active else {}

    def check(self) -> None:
        """Raise VerificationError when the step's error rate or p99 passed its bound."""
        if not self.active:
            return
        assert self._steps is not None
        current = self._read()
        successes = failures = 0
        for pod, sample in current.items():
            base = self._baseline.get(pod)
            successes += _since(sample.successes, base.successes if base else 0)
            failures += _since(sample.failures, base.failures if base else 0)
        total = successes + failures
        bound = self._steps.max_error_rate
        if bound is not None and total and 100.0 * failures / total > bound:
            rate = 100.0 * failures / total
            detail = f"{rate:.3g}% of {total} requests failed during the step; the bound is {bound:g}%"
            raise self._error("alarm: max_error_rate", detail)
        worst = max((s.p99_us for s in current.values() if s.p99_us is not None), default=None)
        if self._steps.max_p99 is not None and worst is not None and worst / 1e6 > self._steps.max_p99:
            detail = f"p99 {worst / 1e6:.3g} s on the new pods; the bound is {self._steps.max_p99:g} s"
            raise self._error("alarm: max_p99", detail)

    def _error(self, check: str, detail: str) -> VerificationError:
        endpoint = self._session.plan.render.endpoint
        return VerificationError(
            f"rollout of endpoint {endpoint} stopped: {check}: {detail}; the previous version serves again",
            check=check,
            detail=detail,
            subject=f"candidate of endpoint {endpoint} on aks",
        )


def _since(now: int, then: int) -> int:
    """A cumulative counter's growth; a pod that restarted counts from zero."""
    return now - then if now >= then else now


# ---- plan ----------------------------------------------------------------------------------------------------------
def rollout_lines(deployment: Deployment, *, verify: bool) -> list[str]:
    """How an update moves traffic, one line each (what plan shows)."""
    rollout = deployment.spec.rollout
    checks = (
        "; the checks run first through a preview route (requests with header endpointkit-version reach only "
        "the new version)"
        if verify
        else ""
    )
    if not isinstance(rollout, RolloutStrategy):
        return [f"all at once: the routes move all traffic to the new version once it is ready{checks}"]
    steps = rollout.steps
    alarm = (
        f"; rolls back on {' or '.join(steps.alarms)} of the new pods (Triton's counters)"
        if steps.alarms
        else ""
    )
    return [
        f"{rollout.kind} {rollout.describe_shares()} by the routes' weights, {format_duration(steps.wait)} between "
        f"steps{alarm}{checks}",
        "blue/green: the new pods run beside the old ones until all traffic has moved (the pool needs room for "
        "both)",
    ]
