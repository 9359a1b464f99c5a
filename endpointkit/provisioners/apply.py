"""Apply, destroy and status: plans carried out against an adapter, with rollback of what a run created."""

from __future__ import annotations

import logging

from endpointkit._wait import Progress
from endpointkit.adapters.base import (
    Adapter,
    EndpointState,
    EndpointStatus,
    ReapableAdapter,
    ResourceKind,
    VerifyHook,
)
from endpointkit.errors import ConflictError, SpecError
from endpointkit.pricing import estimate_cost
from endpointkit.provisioners.plan import Change, Plan, check_capabilities, diff
from endpointkit.provisioners.rollout import check_lines, note_lines, rollout_lines
from endpointkit.spec import Deployment

__all__ = ["apply_plan", "destroy_endpoint", "make_plan", "read_status"]

logger = logging.getLogger("endpointkit")


def make_plan(deployment: Deployment, adapter: Adapter) -> Plan:
    """Check capabilities, read what exists, and diff. Makes no mutating call."""
    check_capabilities(deployment, adapter)
    desired = adapter.desired(deployment)
    observed = adapter.read(deployment, desired)
    if observed.refusal is not None:
        raise observed.refusal
    return Plan(
        endpoint=deployment.name,
        target=deployment.target_name,
        kind=deployment.kind,
        changes=diff(desired, observed),
        desired=desired,
        observed=observed,
        costs=estimate_cost(deployment),
        drift=observed.drift,
        checks=check_lines(deployment),
        rollout=rollout_lines(deployment, adapter),
        notes=note_lines(deployment, adapter),
    )


def apply_plan(
    deployment: Deployment,
    adapter: Adapter,
    plan: Plan,
    *,
    progress: Progress | None = None,
    verify: VerifyHook | None = None,
) -> EndpointState:
    """Carry out ``plan``. On failure, delete what this run created (newest first) and re-raise.

    What existed before the run is never touched by the rollback: a failed update leaves the old endpoint serving.
    A plan without changes makes no call at all: the state it observed is the answer.

    ``verify`` runs the spec's checks: an update hands it to the adapter, which calls it against the new version
    before that version takes traffic; a new endpoint (which has no traffic yet) is checked once it serves, and
    removed with everything else this run made when a check fails.
    """
    if not plan.has_changes:
        return plan.observed.state
    created: list[tuple[ResourceKind, str]] = []
    try:
        for change in plan.changes:
            _execute(deployment, adapter, plan, change, created, progress, verify)
    except BaseException as error:
        _rollback(deployment, adapter, created, error)
        raise
    return adapter.status(deployment)


def _execute(
    deployment: Deployment,
    adapter: Adapter,
    plan: Plan,
    change: Change,
    created: list[tuple[ResourceKind, str]],
    progress: Progress | None,
    verify: VerifyHook | None,
) -> None:
    desired = plan.desired
    resources = {"model": desired.model, "endpoint_config": desired.config, "endpoint": desired.endpoint}
    if change.action == "noop":
        return
    if change.action == "create":
        resource = resources[change.resource]
        # Record before the call: a create that fails half-way (an endpoint that went Failed) is still ours to
        # remove; but a name taken by a resource that is not ours (ConflictError) must never be rolled back.
        created.append((change.resource, change.name))
        try:
            adapter.create(deployment, resource, progress=progress)
        except ConflictError:
            created.pop()
            raise
        if change.resource == "endpoint" and verify is not None:
            verify(adapter.status(deployment))
    elif change.action == "update":
        adapter.update_endpoint(deployment, desired, progress=progress, verify=verify)
    elif change.action == "replace":
        adapter.delete(deployment, change.resource, change.name, progress=progress)
        created.append((change.resource, change.name))
        adapter.create(deployment, resources[change.resource], progress=progress)
        if change.resource == "endpoint" and verify is not None:
            verify(adapter.status(deployment))
    elif change.action == "delete":
        adapter.delete(deployment, change.resource, change.name, progress=progress)


def _rollback(
    deployment: Deployment, adapter: Adapter, created: list[tuple[ResourceKind, str]], error: BaseException
) -> None:
    for kind, name in reversed(created):
        try:
            adapter.delete(deployment, kind, name)
        except Exception as cleanup_error:  # keep rolling back; the original error is what the user needs
            logger.error("rollback could not delete %s %s: %s (after: %s)", kind, name, cleanup_error, error)


def destroy_endpoint(deployment: Deployment, adapter: Adapter, *, progress: Progress | None = None) -> bool:
    """Delete the endpoint, then its config, then its model. Idempotent; returns whether anything existed.

    When the spec's names cannot be computed any more (the local model repository is gone), an adapter that
    can destroy from the endpoint's own description (:class:`ReapableAdapter`) does so.
    """
    try:
        desired = adapter.desired(deployment)
    except SpecError:
        if not isinstance(adapter, ReapableAdapter):
            raise
        state = adapter.status(deployment)
        if state.status is EndpointStatus.NOT_FOUND:
            return False
        adapter.destroy_by_state(state, progress=progress)
        return True
    observed = adapter.read(deployment, desired)
    targets: list[tuple[ResourceKind, str]] = []
    if observed.exists:
        targets.append(("endpoint", desired.endpoint.name))
    for kind, resource in (("endpoint_config", observed.config), ("model", observed.model)):
        if resource is not None:
            targets.append((kind, resource.name))  # type: ignore[arg-type]
    for kind, name in sorted(
        observed.existing, key=lambda item: ("endpoint", "endpoint_config", "model").index(item[0])
    ):
        if (kind, name) not in targets and kind != "endpoint":
            targets.append((kind, name))
    for kind, name in targets:
        adapter.delete(deployment, kind, name, progress=progress)
    return bool(targets)


def read_status(deployment: Deployment, adapter: Adapter) -> EndpointState | None:
    """The endpoint's state, or None when it does not exist. Read-only."""
    state = adapter.status(deployment)
    return None if state.status is EndpointStatus.NOT_FOUND else state
