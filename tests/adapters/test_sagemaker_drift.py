"""Drift on SageMaker (moto): counts, weights, config and tags changed by hand show in plan, and apply repairs."""

from __future__ import annotations

from typing import Any

import endpointkit as ek
from endpointkit.adapters.base import SPEC_HASH_TAG
from tests.adapters.sagemaker_fixtures import SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]


def _hand(sagemaker_world: SageMakerWorld) -> Any:
    """A client of "another tool": its UpdateEndpoint goes through the fixture's emulation, as the adapter's do."""
    return sagemaker_world.hooks.factory("sagemaker")


def _fields(plan: ek.Plan) -> list[str]:
    return [item.field for item in plan.drift]


def test_an_instance_count_changed_by_hand_is_drift_and_apply_puts_it_back(
    sagemaker_world: SageMakerWorld,
) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    _hand(sagemaker_world).update_endpoint_weights_and_capacities(
        EndpointName="echo-endpoint",
        DesiredWeightsAndCapacities=[
            {"VariantName": "primary", "DesiredWeight": 1.0, "DesiredInstanceCount": 3}
        ],
    )

    plan = ek.plan(spec, adapter=sagemaker_world.adapter(spec))

    assert _fields(plan) == ["variants.primary.instance_count"]
    assert (plan.drift[0].live, plan.drift[0].wanted) == (3, 1)
    assert "! variants.primary.instance_count: live 3, spec 1" in str(plan)
    (update,) = [change for change in plan.changes if change.action != "noop"]
    assert (update.action, update.resource) == ("update", "endpoint")
    assert "variants.primary.instance_count" in update.reason
    assert plan.to_dict()["drift"] == [{"field": "variants.primary.instance_count", "live": 3, "wanted": 1}]

    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert [(v.name, v.instance_count) for v in state.variants] == [("primary", 1)]
    assert "UpdateEndpointWeightsAndCapacities" in sagemaker_world.hooks.operations()
    assert not ek.plan(spec, adapter=sagemaker_world.adapter(spec)).has_changes


def test_an_endpoint_moved_to_a_config_made_by_hand_is_drift_and_apply_moves_it_back(
    sagemaker_world: SageMakerWorld,
) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    (ours,) = sagemaker_world.configs()
    client = _hand(sagemaker_world)
    variants = client.describe_endpoint_config(EndpointConfigName=ours)["ProductionVariants"]
    client.create_endpoint_config(EndpointConfigName="by-hand", ProductionVariants=variants)
    client.update_endpoint(EndpointName="echo-endpoint", EndpointConfigName="by-hand")
    for _ in range(20):  # the emulated blue/green settles after a few DescribeEndpoint calls
        if client.describe_endpoint(EndpointName="echo-endpoint")["EndpointConfigName"] == "by-hand":
            break
    assert client.describe_endpoint(EndpointName="echo-endpoint")["EndpointConfigName"] == "by-hand"

    plan = ek.plan(spec, adapter=sagemaker_world.adapter(spec))

    assert _fields(plan) == ["endpoint_config"]
    assert (plan.drift[0].live, plan.drift[0].wanted) == ("by-hand", ours)
    # moving it back must not delete the config someone else made
    assert [change.action for change in plan.changes] == ["noop", "noop", "update"]

    ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert client.describe_endpoint(EndpointName="echo-endpoint")["EndpointConfigName"] == ours
    assert "by-hand" in sagemaker_world.configs()
    assert not ek.plan(spec, adapter=sagemaker_world.adapter(spec)).has_changes


def test_tags_removed_by_hand_are_drift_repaired_by_retagging_alone(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    arn = state.extra["arn"]
    _hand(sagemaker_world).delete_tags(ResourceArn=arn, TagKeys=["team", SPEC_HASH_TAG])

    plan = ek.plan(spec, adapter=sagemaker_world.adapter(spec))

    assert _fields(plan) == [f"tags.{SPEC_HASH_TAG}", "tags.team"]
    (update,) = [change for change in plan.changes if change.action != "noop"]
    assert update.reason.startswith("tags only")
    sagemaker_world.hooks.calls.clear()

    ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert [op for _, op in sagemaker_world.hooks.mutating()] == ["AddTags"]
    assert sagemaker_world.tags(arn)["team"] == "vision"
    assert not ek.plan(spec, adapter=sagemaker_world.adapter(spec)).has_changes
