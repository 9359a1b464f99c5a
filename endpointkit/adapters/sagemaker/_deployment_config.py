"""A spec's ``rollout`` as SageMaker's own UpdateEndpoint ``DeploymentConfig``, checked before any call.

``canary`` and ``linear`` become a ``BlueGreenUpdatePolicy`` whose ``TrafficRoutingConfiguration`` moves
``step`` percent of each variant's new fleet capacity (``CAPACITY_PERCENT``) at a time, ``wait`` seconds apart,
and an ``AutoRollbackConfiguration`` naming the alarms of ``_alarms``; ``all_at_once`` sends no DeploymentConfig
at all (SageMaker's default blue/green, today's behaviour). Bounds, from botocore's sagemaker service-2.json
(shapes TrafficRoutingConfig, CapacitySize, BlueGreenUpdatePolicy, AlarmList) and the developer guide's
"Use canary traffic shifting" / "Use linear traffic shifting" pages
(https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-canary.html,
https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-linear.html):

- ``CapacitySize.Value`` is a whole number; a canary may be at most 50% of the fleet, a linear step 10-50%;
- ``WaitIntervalInSeconds`` and ``TerminationWaitInSeconds`` are 0-3600;
- ``MaximumExecutionTimeoutInSeconds`` is 600-28800 and must exceed the waits; endpointkit sets it to
  ``timeouts.update`` (so SageMaker gives up no later than apply does), which must therefore be at least 10
  minutes and longer than every wait of the rollout together;
- at most 10 alarms;
- no traffic shifting on Inf1 instances: SageMaker would silently move all traffic at once ("Exclusions",
  https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html), and the new config
  must keep the old one's variant names (same page).

``TerminationWaitInSeconds`` is the step's ``wait`` again: a last bake with all the traffic on the new fleet,
during which an alarm still rolls back to the old one, before SageMaker retires it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from endpointkit.adapters.sagemaker._alarms import MAX_ALARMS, AlarmSpec, alarm_specs
from endpointkit.errors import EndpointKitError, SpecError, UnsupportedCapabilityError
from endpointkit.spec import Deployment, format_duration

__all__ = ["RolloutPolicy", "rollout_lines", "rollout_policy", "rollout_refusal", "variant_change_refusal"]

_MAX_WAIT = 3600
_MIN_EXECUTION = 600
_MAX_EXECUTION = 28800
_CANARY_MAX_PERCENT = 50
_LINEAR_PERCENT = (10, 50)


@dataclass(frozen=True)
class RolloutPolicy:
    """How SageMaker moves traffic to a new config: the steps, the waits and the alarms that roll it back."""

    kind: Literal["canary", "linear"]
    step: int
    wait: int
    percentages: tuple[float, ...]
    termination_wait: int
    max_execution: int
    alarms: tuple[AlarmSpec, ...]

    def deployment_config(self) -> dict[str, Any]:
        """UpdateEndpoint's ``DeploymentConfig`` (botocore sagemaker service-2.json, shape DeploymentConfig)."""
        size_key = "CanarySize" if self.kind == "canary" else "LinearStepSize"
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": self.kind.upper(),
                    size_key: {"Type": "CAPACITY_PERCENT", "Value": self.step},
                    "WaitIntervalInSeconds": self.wait,
                },
                "TerminationWaitInSeconds": self.termination_wait,
                "MaximumExecutionTimeoutInSeconds": self.max_execution,
            }
        }
        if self.alarms:  # AlarmList has at least one item: no alarms, no AutoRollbackConfiguration
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a.name} for a in self.alarms]}
        return config


def rollout_policy(deployment: Deployment) -> RolloutPolicy | None:
    """The policy of the spec's ``rollout`` (None for ``all_at_once``). No call.

    Raises:
        SpecError: SageMaker cannot run the rollout as written; the message names the field and the fix.
    """
    rollout = deployment.spec.rollout
    if isinstance(rollout, str):  # all_at_once
        return None
    kind, steps = rollout.kind, rollout.steps
    field = f"rollout.{kind}"
    step = _whole_percent(steps.step, f"{field}.step")
    if kind == "canary" and step > _CANARY_MAX_PERCENT:
        raise SpecError(
            f"{field}.step: SageMaker's canary is at most {_CANARY_MAX_PERCENT}% of the new fleet (CanarySize), not "
            f"{step}%; use a smaller canary, or rollout: all_at_once",
            field=f"{field}.step",
        )
    low, high = _LINEAR_PERCENT
    if kind == "linear" and not low <= step <= high:
        raise SpecError(
            f"{field}.step: SageMaker's linear steps are {low}-{high}% of the new fleet (LinearStepSize), not {step}%",
            field=f"{field}.step",
        )
    wait = round(steps.wait)
    if wait > _MAX_WAIT:
        raise SpecError(
            f"{field}.wait: SageMaker waits at most {_MAX_WAIT // 60}m between steps (WaitIntervalInSeconds), not "
            f"{format_duration(wait)}",
            field=f"{field}.wait",
        )
    percentages = rollout.percentages()
    total_wait = wait * len(percentages)  # a bake after each step but the last, then the termination wait
    update = int(deployment.spec.timeouts.update)
    if update < _MIN_EXECUTION or update <= total_wait:
        needed = max(total_wait + 60, _MIN_EXECUTION)
        raise SpecError(
            f"timeouts.update ({format_duration(update)}) also bounds SageMaker's deployment "
            f"(MaximumExecutionTimeoutInSeconds, at least 10m), and a {kind} rollout waits {len(percentages)} x "
            f"{format_duration(wait)} = {format_duration(total_wait)} besides starting the new fleet: raise timeouts.update "
            f"to at least {format_duration(needed)} plus that start, or shorten the wait",
            field="timeouts.update",
        )
    inf1 = [v.name for v in deployment.variants if (v.instance_type or "").startswith("ml.inf1.")]
    if inf1:
        raise SpecError(
            f"rollout: SageMaker shifts no traffic step by step on Inf1 instances (variants {', '.join(inf1)}): it "
            "would move all of it at once; use rollout: all_at_once, or ml.inf2 instances",
            field="rollout",
        )
    alarms = alarm_specs(deployment.name, [v.name for v in deployment.variants], steps)
    if len(alarms) > MAX_ALARMS:
        raise SpecError(
            f"{field}: {len(alarms)} rollout alarms ({len(deployment.variants)} variants x max_error_rate and "
            f"max_p99) and SageMaker takes at most {MAX_ALARMS}; keep one bound, or fewer variants",
            field=field,
        )
    return RolloutPolicy(
        kind=kind,
        step=step,
        wait=wait,
        percentages=percentages,
        termination_wait=wait,
        max_execution=min(update, _MAX_EXECUTION),
        alarms=alarms,
    )


def _whole_percent(value: float, field: str) -> int:
    if not float(value).is_integer():
        raise SpecError(
            f"{field}: SageMaker moves whole percentages of a fleet (CapacitySize.Value is an integer), not {value:g}%",
            field=field,
        )
    return int(value)


def variant_change_refusal(
    deployment: Deployment, live_variants: Collection[str]
) -> UnsupportedCapabilityError | None:
    """The error for a canary or linear update whose variants are not those the endpoint runs, else None.

    Raises:
        SpecError: the rollout itself cannot run on SageMaker (see :func:`rollout_policy`).
    """
    policy = rollout_policy(deployment)
    wanted = {variant.name for variant in deployment.variants}
    if policy is None or not live_variants or set(live_variants) == wanted:
        return None
    return UnsupportedCapabilityError(
        f"rollout: SageMaker shifts traffic step by step only between fleets of the same variants; endpoint "
        f"{deployment.name} runs {', '.join(sorted(live_variants))} and the spec asks for {', '.join(sorted(wanted))}: "
        "apply this change once with rollout: all_at_once, then go back to the "
        f"{policy.kind} rollout",
        missing={"rollout": f"{policy.kind} across a change of variant names"},
    )


def rollout_refusal(deployment: Deployment, live_variants: Collection[str]) -> EndpointKitError | None:
    """Why the spec's rollout cannot update an endpoint running ``live_variants`` (a SpecError included: plan
    raises it, destroy ignores it), or None."""
    try:
        return variant_change_refusal(deployment, live_variants)
    except SpecError as exc:
        return exc


def rollout_lines(deployment: Deployment) -> list[str]:
    """What plan shows of the rollout (after ``rollout:``): the steps and alarms, then what to know. No call.

    Raises:
        SpecError: SageMaker cannot run the rollout as written (see :func:`rollout_policy`).
    """
    policy = rollout_policy(deployment)
    checked = bool(deployment.spec.verify)
    if policy is None:
        lines = ["all at once (blue/green: the new fleet takes all traffic once it is InService)"]
    else:
        wait = format_duration(policy.wait)
        if policy.kind == "canary":
            steps = f"canary {policy.step}% for {wait}, then 100%"
        else:
            steps = f"linear {policy.step}% every {wait} ({', '.join(f'{s:g}%' for s in policy.percentages)})"
        if policy.alarms:
            named = ", ".join(f"{alarm.name} ({alarm.bound})" for alarm in policy.alarms)
            guard = f"auto-rollback on alarms {named}"
        else:
            guard = "no auto-rollback: give the rollout max_error_rate or max_p99 for SageMaker to watch"
        lines = [
            f"{steps}; {guard}",
            f"SageMaker shifts the traffic and rolls back by itself; it retires the old fleet {wait} after the "
            "last step",
        ]
        serverless = getattr(deployment.target, "serverless", None) is not None
        for variant in () if serverless else deployment.variants:
            if (variant.instance_count * policy.step) % 100:
                lines.append(
                    f"variant {variant.name} has {variant.instance_count} instance(s) and SageMaker turns on whole "
                    f"instances: its steps cannot be exactly {policy.step}% of its capacity"
                )
    if checked:
        lines.append(
            "the verify checks run once the update is complete (SageMaker cannot reach a new fleet before it takes "
            "traffic); a failed check moves the endpoint back to its previous config"
        )
    return lines
