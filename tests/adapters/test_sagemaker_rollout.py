"""Canary and linear rollouts on SageMaker: its own DeploymentConfig, the alarms it rolls back on, verify hooks.

moto runs in server mode (``sagemaker_fixtures``); UpdateEndpoint, which moto lacks, is answered by the fixtures'
botocore hook after botocore has validated the request against its service model, so a DeploymentConfig
SageMaker would refuse fails here too. CloudWatch alarms are moto's own.
"""

from __future__ import annotations

from typing import Any

import pytest

import endpointkit as ek
from endpointkit.adapters.base import MANAGED_BY_TAG, EndpointState
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.errors import SpecError, UnsupportedCapabilityError, VerificationError
from endpointkit.spec import Spec
from tests.adapters.sagemaker_fixtures import REGION, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

ENDPOINT = "echo-endpoint"
CANARY = {"canary": {"step": "10%", "wait": "5m", "max_error_rate": "1%", "max_p99": "250ms"}}
ALARMS_TAG = "endpointkit-rollout-alarms"


def _variants(count: int = 1, *, names: tuple[str, ...] = ("primary",)) -> list[dict[str, Any]]:
    return [
        {"name": name, "accelerator": "gpu", "instance_type": "ml.g4dn.xlarge", "instance_count": count}
        for name in names
    ]


def _applied(world: SageMakerWorld, **overrides: Any) -> Spec:
    """Apply a first version (every spec field but the variants as given), return the spec."""
    spec = world.spec(**overrides)
    ek.apply(spec, adapter=world.adapter(spec))
    return spec


def _update(world: SageMakerWorld, rollout: Any, **overrides: Any) -> tuple[Spec, SageMakerAdapter]:
    """Apply a second version (two instances instead of one) with ``rollout``."""
    overrides.setdefault("variants", _variants(2))
    spec = world.spec(rollout=rollout, **overrides)
    adapter = world.adapter(spec)
    ek.apply(spec, adapter=adapter)
    return spec, adapter


def _endpoint(world: SageMakerWorld) -> dict[str, Any]:
    return dict(world.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT))


def test_a_canary_update_sends_sagemakers_own_deployment_config(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world, rollout=CANARY)
    assert sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint") == []  # a create moves no traffic

    spec, adapter = _update(sagemaker_world, CANARY)

    (update,) = sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")
    assert update["EndpointConfigName"] == adapter.desired(spec.deployment()).config.name
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 1200,  # timeouts.update: 20m
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": f"endpointkit-{ENDPOINT}-primary-errors"},
                {"AlarmName": f"endpointkit-{ENDPOINT}-primary-p99"},
            ]
        },
    }


def test_a_linear_update_moves_equal_steps_and_without_bounds_makes_no_alarm(
    sagemaker_world: SageMakerWorld,
) -> None:
    _applied(sagemaker_world)
    sagemaker_world.hooks.calls.clear()

    _update(sagemaker_world, {"linear": {"step": 25, "wait": "2m"}})

    (update,) = sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 120,
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 1200,
        }
    }
    assert sagemaker_world.hooks.operations("cloudwatch") == []
    assert sagemaker_world.alarms() == []


def test_all_at_once_keeps_sagemakers_default_update(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    sagemaker_world.hooks.calls.clear()

    _update(sagemaker_world, "all_at_once")

    (update,) = sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")
    assert "DeploymentConfig" not in update
    assert sagemaker_world.hooks.operations("cloudwatch") == []


def test_alarms_watch_each_variant_of_the_new_fleet_and_exist_before_the_update(
    sagemaker_world: SageMakerWorld,
) -> None:
    _applied(sagemaker_world, variants=_variants(1, names=("blue", "green")))
    sagemaker_world.hooks.calls.clear()

    spec, adapter = _update(sagemaker_world, CANARY, variants=_variants(2, names=("blue", "green")))

    new_config = adapter.desired(spec.deployment()).config.name
    alarms = {alarm["AlarmName"]: alarm for alarm in sagemaker_world.alarms()}
    assert sorted(alarms) == [
        f"endpointkit-{ENDPOINT}-blue-errors",
        f"endpointkit-{ENDPOINT}-blue-p99",
        f"endpointkit-{ENDPOINT}-green-errors",
        f"endpointkit-{ENDPOINT}-green-p99",
    ]
    errors, latency = (
        alarms[f"endpointkit-{ENDPOINT}-green-errors"],
        alarms[f"endpointkit-{ENDPOINT}-green-p99"],
    )
    # the share of requests answered 5xx: SageMaker sends 1 per 5xx and 0 otherwise, so the Average is the rate
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Average",
    )
    assert errors["Threshold"] == pytest.approx(0.01)
    # ModelLatency is in microseconds: 250 ms
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == (
        "ModelLatency",
        "p99",
        250_000.0,
    )
    for alarm in (errors, latency):
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 2, 2)
        assert alarm["TreatMissingData"] == "notBreaching"
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": ENDPOINT,
            "VariantName": "green",
            "EndpointConfigName": new_config,
        }
        tags = sagemaker_world.alarm_tags(alarm["AlarmArn"])
        assert tags[MANAGED_BY_TAG] == "endpointkit" and tags["endpointkit-endpoint"] == ENDPOINT
        assert tags["team"] == "vision"
    operations = sagemaker_world.hooks.operations()
    last_alarm = max(i for i, op in enumerate(operations) if op == "PutMetricAlarm")
    assert last_alarm < operations.index("UpdateEndpoint")
    assert sagemaker_world.tags(_endpoint(sagemaker_world)["EndpointArn"])[ALARMS_TAG] == "true"


def test_re_applying_the_same_rollout_keeps_one_alarm_per_bound(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    _update(sagemaker_world, CANARY)
    _update(sagemaker_world, CANARY, variants=_variants(3))

    assert [alarm["AlarmName"] for alarm in sagemaker_world.alarms()] == [
        f"endpointkit-{ENDPOINT}-primary-errors",
        f"endpointkit-{ENDPOINT}-primary-p99",
    ]
    assert len(sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")) == 2


def test_destroy_deletes_the_endpoints_alarms_and_no_others(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    spec, adapter = _update(sagemaker_world, CANARY)
    # another endpoint whose name starts like this one's: its alarm is not this endpoint's
    sagemaker_world.client("cloudwatch").put_metric_alarm(
        AlarmName=f"endpointkit-{ENDPOINT}-2-primary-errors",
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Average",
        Dimensions=[{"Name": "EndpointName", "Value": f"{ENDPOINT}-2"}],
        Period=60,
        EvaluationPeriods=1,
        Threshold=0.5,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": MANAGED_BY_TAG, "Value": "endpointkit"}, {"Key": "endpointkit-endpoint", "Value": "x"}],
    )

    assert ek.destroy(spec, adapter=adapter) is True

    assert [alarm["AlarmName"] for alarm in sagemaker_world.alarms()] == [
        f"endpointkit-{ENDPOINT}-2-primary-errors"
    ]
    assert sagemaker_world.endpoints() == []


def test_reaping_the_endpoint_deletes_its_alarms(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    _update(sagemaker_world, CANARY)
    reaper = SageMakerAdapter.from_state(
        EndpointState("", "sagemaker", "sagemaker", ek.EndpointStatus.UNKNOWN, region=REGION),
        client_factory=sagemaker_world.hooks.factory,
        sleep=sagemaker_world.clock.sleep,
        clock=sagemaker_world.clock,
    )
    sagemaker_world.adapters.append(reaper)

    (listed,) = reaper.list_endpoints()
    reaper.destroy_by_state(listed)

    assert sagemaker_world.alarms() == [] and sagemaker_world.endpoints() == []


def test_an_update_whose_rollout_no_longer_asks_for_alarms_deletes_them(
    sagemaker_world: SageMakerWorld,
) -> None:
    _applied(sagemaker_world)
    _update(sagemaker_world, CANARY)
    assert len(sagemaker_world.alarms()) == 2

    _update(
        sagemaker_world, {"canary": {"step": 10, "wait": "5m", "max_p99": "250ms"}}, variants=_variants(3)
    )
    assert [alarm["AlarmName"] for alarm in sagemaker_world.alarms()] == [
        f"endpointkit-{ENDPOINT}-primary-p99"
    ]

    _update(sagemaker_world, "all_at_once", variants=_variants(1))
    assert sagemaker_world.alarms() == []
    assert ALARMS_TAG not in sagemaker_world.tags(_endpoint(sagemaker_world)["EndpointArn"])


def test_an_alarm_that_rolls_the_update_back_is_a_verification_error(sagemaker_world: SageMakerWorld) -> None:
    first = _applied(sagemaker_world)
    old_config = _endpoint(sagemaker_world)["EndpointConfigName"]
    alarm = f"endpointkit-{ENDPOINT}-primary-errors"
    cloudwatch = sagemaker_world.client("cloudwatch")
    sagemaker_world.hooks.before(
        "sagemaker",
        "UpdateEndpoint",
        lambda _: cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5XX at 7%"),
    )
    sagemaker_world.hooks.update_outcomes = ["Rolled back: alarm endpointkit-echo-endpoint-primary-errors"]
    spec = sagemaker_world.spec(rollout=CANARY, variants=_variants(2))

    with pytest.raises(VerificationError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert raised.value.check == alarm and "5XX at 7%" in str(raised.value)
    assert _endpoint(sagemaker_world)["EndpointConfigName"] == old_config
    assert not ek.plan(first, adapter=sagemaker_world.adapter(first)).has_changes


def test_a_failing_verify_hook_puts_the_previous_config_back(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    old_config = _endpoint(sagemaker_world)["EndpointConfigName"]
    spec = sagemaker_world.spec(rollout=CANARY, variants=_variants(2))
    deployment = spec.deployment()
    adapter = sagemaker_world.adapter(spec)
    desired = adapter.desired(deployment)
    adapter.create(deployment, desired.model)
    adapter.create(deployment, desired.config)
    checked: list[EndpointState] = []

    def hook(state: EndpointState) -> None:
        checked.append(state)
        raise VerificationError("OUTPUT0 differs", check="golden", detail="max abs diff 3.0 at [0]")

    with pytest.raises(VerificationError, match="OUTPUT0 differs"):
        adapter.update_endpoint(deployment, desired, verify=hook)

    (state,) = checked
    assert state.extra["config"] == desired.config.name  # the check saw the new version
    assert _endpoint(sagemaker_world)["EndpointConfigName"] == old_config  # and the old one serves again
    forward, back = sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")
    assert forward["EndpointConfigName"] == desired.config.name and "DeploymentConfig" in forward
    assert back == {"EndpointName": ENDPOINT, "EndpointConfigName": old_config}


def test_a_passing_verify_hook_leaves_the_new_version_serving(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    spec = sagemaker_world.spec(variants=_variants(2))
    deployment = spec.deployment()
    adapter = sagemaker_world.adapter(spec)
    desired = adapter.desired(deployment)
    adapter.create(deployment, desired.model)
    adapter.create(deployment, desired.config)

    adapter.update_endpoint(deployment, desired, verify=lambda state: None)

    assert _endpoint(sagemaker_world)["EndpointConfigName"] == desired.config.name
    assert len(sagemaker_world.hooks.sent("sagemaker", "UpdateEndpoint")) == 1


def test_a_canary_across_renamed_variants_is_refused_at_plan(sagemaker_world: SageMakerWorld) -> None:
    _applied(sagemaker_world)
    spec = sagemaker_world.spec(rollout=CANARY, variants=_variants(1, names=("renamed",)))
    sagemaker_world.hooks.calls.clear()

    with pytest.raises(UnsupportedCapabilityError, match="all_at_once"):
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    assert sagemaker_world.hooks.mutating() == []


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ({"canary": {"step": 60, "wait": "5m"}}, "rollout.canary.step"),
        ({"linear": {"step": 5, "wait": "5m"}}, "rollout.linear.step"),
        ({"linear": {"step": 12.5, "wait": "5m"}}, "rollout.linear.step"),
        ({"canary": {"step": 10, "wait": "2h"}}, "rollout.canary.wait"),
        ({"linear": {"step": 10, "wait": "5m"}}, "timeouts.update"),
    ],
)
def test_a_rollout_sagemaker_cannot_run_is_refused_without_a_call(
    sagemaker_world: SageMakerWorld, rollout: dict[str, Any], field: str
) -> None:
    spec = sagemaker_world.spec(rollout=rollout)
    adapter = sagemaker_world.adapter(spec)

    with pytest.raises(SpecError) as raised:
        adapter.rollout_lines(spec.deployment())

    assert raised.value.field == field
    assert sagemaker_world.hooks.calls == []


def test_rollout_lines_name_the_steps_and_the_alarms(sagemaker_world: SageMakerWorld) -> None:
    canary = sagemaker_world.spec(rollout=CANARY, variants=_variants(10))
    linear = sagemaker_world.spec(rollout={"linear": {"step": 25, "wait": "90s"}}, variants=_variants(4))
    single = sagemaker_world.spec(rollout=CANARY)

    assert sagemaker_world.adapter(canary).rollout_lines(canary.deployment()) == [
        f"canary 10% for 5m, then 100%; auto-rollback on alarms endpointkit-{ENDPOINT}-primary-errors (5XX > 1%), "
        f"endpointkit-{ENDPOINT}-primary-p99 (p99 > 250 ms)",
        "SageMaker shifts the traffic and rolls back by itself; it retires the old fleet 5m after the last step",
    ]
    assert sagemaker_world.adapter(linear).rollout_lines(linear.deployment())[0] == (
        "linear 25% every 90s (25%, 50%, 75%, 100%); no auto-rollback: give the rollout max_error_rate or "
        "max_p99 for SageMaker to watch"
    )
    assert "1 instance(s)" in sagemaker_world.adapter(single).rollout_lines(single.deployment())[-1]
    assert sagemaker_world.adapter(single).rollout_lines(sagemaker_world.spec().deployment()) == [
        "all at once (blue/green: the new fleet takes all traffic once it is InService)"
    ]
