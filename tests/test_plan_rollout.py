"""What a plan and the Terraform hook say about proving and moving in a new version: checks and rollout steps."""

from __future__ import annotations

import json

import pytest

import endpointkit as ek
from endpointkit.adapters.memory import MemoryAdapter
from endpointkit.spec import Spec, format_duration, parse_duration, spec_from_dict
from endpointkit.terraform import state_result


def make_spec(**extra: object) -> Spec:
    data: dict[str, object] = {
        "name": "demo",
        "model": {"repository": "s3://models/demo/model.tar.gz"},
        "variants": [{"name": "primary"}],
        "targets": {"mem": {"kind": "local"}},
        "verify": [
            {"name": "cat", "inputs": {"IMAGE": "cat.jpg"}, "expect": {"SCORES": "cat.npy"}},
            {"name": "latency", "inputs": {"IMAGE": "cat.jpg"}, "repeat": 50, "max_p99": "250ms"},
        ],
    }
    data.update(extra)
    return spec_from_dict(data)


def test_a_plan_that_starts_a_version_lists_the_checks_and_the_steps() -> None:
    spec = make_spec(rollout={"canary": {"step": "10%", "wait": "5m", "max_error_rate": "1%"}})
    plan = ek.plan(spec, adapter=MemoryAdapter())
    assert plan.checks == (
        "cat: inputs IMAGE; expect SCORES (rtol 0.001, atol 1e-05)",
        "latency: inputs IMAGE; 50 calls, p99 <= 250ms",
    )
    assert plan.rollout == ("canary 10% -> 100%, 5m between steps; rolls back on error rate > 1%",)
    text = plan.render()
    assert "  verify: cat: inputs IMAGE" in text
    assert "  rollout: canary 10% -> 100%" in text
    document = plan.to_dict()
    assert document["checks"] == list(plan.checks) and document["rollout"] == list(plan.rollout)


def test_linear_steps_end_at_all_traffic() -> None:
    plan = ek.plan(make_spec(rollout={"linear": {"step": 30, "wait": "2m"}}), adapter=MemoryAdapter())
    assert plan.rollout == ("linear 30% -> 60% -> 90% -> 100%, 2m between steps",)


def test_an_unchanged_endpoint_runs_no_checks_so_the_plan_lists_none() -> None:
    adapter = MemoryAdapter()
    spec = make_spec(verify=[])
    ek.apply(spec, adapter=adapter)
    plan = ek.plan(make_spec(), adapter=adapter)  # only verify differs: it is not part of what is deployed
    assert not plan.has_changes
    assert plan.to_dict()["checks"] == [] and "verify:" not in plan.render()


def test_all_at_once_says_the_checks_come_first() -> None:
    plan = ek.plan(make_spec(), adapter=MemoryAdapter())
    assert plan.rollout == ("all at once: the new version takes all traffic once its checks pass",)


def test_the_terraform_result_reports_checks_and_steps() -> None:
    spec = make_spec(rollout={"linear": {"step": 50}})
    result = state_result(spec.deployment("mem"), None)
    assert json.loads(result["checks"]) == ["cat", "latency"]
    assert result["rollout"] == "linear"
    assert json.loads(result["rollout_steps"]) == [50.0, 100.0]
    assert all(isinstance(value, str) for value in result.values())


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (90, "90s"), (300, "5m"), (7200, "2h"), (150, "150s")]
)
def test_durations_read_as_written(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"canary": {"step": "0%"}}, "rollout.canary.step"),
        ({"linear": {"step": "101%"}}, "rollout.linear.step"),
        ({"canary": {"step": 10}, "linear": {"step": 10}}, "one of canary"),
        ("fast", "'fast' is not one of the valid choices: 'all_at_once'"),
        ({"canary": {"step": "ten"}}, "'ten' is not a percentage"),
    ],
)
def test_a_bad_rollout_names_the_field(rollout: object, message: str) -> None:
    with pytest.raises(ek.SpecError, match=message):
        make_spec(rollout=rollout)
