"""What a plan says about proving and moving in a new version: the checks that run and the rollout steps."""

from __future__ import annotations

from endpointkit.adapters.base import Adapter, PlanNotesAdapter, RolloutAdapter
from endpointkit.spec import Deployment, RolloutStrategy, VerifyCheck, format_duration

__all__ = ["check_lines", "note_lines", "rollout_lines"]


def _check_line(check: VerifyCheck) -> str:
    parts: list[str] = []
    if check.inputs:
        parts.append(f"inputs {', '.join(check.inputs)}")
    if check.expect:
        parts.append(f"expect {', '.join(check.expect)} (rtol {check.rtol:g}, atol {check.atol:g})")
    if check.max_p99 is not None:
        parts.append(
            f"{check.repeat} call{'s' if check.repeat != 1 else ''}, p99 <= {format_duration(check.max_p99)}"
        )
    elif check.repeat > 1:
        parts.append(f"{check.repeat} calls")
    if check.python:
        parts.append(f"python {check.python}")
    model = f" on model {check.model}" if check.model else ""
    return f"{check.name}{model}: {'; '.join(parts)}"


def check_lines(deployment: Deployment) -> tuple[str, ...]:
    """One line per ``verify`` check, in the order they run."""
    return tuple(_check_line(check) for check in deployment.spec.verify)


def _generic_rollout(rollout: RolloutStrategy | str, checked: bool) -> str:
    after = " once its checks pass" if checked else ""
    if not isinstance(rollout, RolloutStrategy):
        return f"all at once: the new version takes all traffic{after}"
    steps = rollout.steps
    alarm_text = f"; rolls back on {' or '.join(steps.alarms)}" if steps.alarms else ""
    return (
        f"{rollout.kind} {rollout.describe_shares()}, {format_duration(steps.wait)} between steps{alarm_text}"
    )


def rollout_lines(deployment: Deployment, adapter: Adapter) -> tuple[str, ...]:
    """How traffic moves to the new version: the adapter's own account when it has one, else the spec's."""
    if isinstance(adapter, RolloutAdapter):
        return tuple(adapter.rollout_lines(deployment))
    return (_generic_rollout(deployment.spec.rollout, bool(deployment.spec.verify)),)


def note_lines(deployment: Deployment, adapter: Adapter) -> tuple[str, ...]:
    """The adapter's warnings and facts for the plan (none when it has nothing to add)."""
    if isinstance(adapter, PlanNotesAdapter):
        return tuple(adapter.plan_notes(deployment))
    return ()
