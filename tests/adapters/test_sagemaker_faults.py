"""Faults injected at the botocore layer over moto: throttling, Failed endpoints, capacity, quotas, timeouts,
resources already gone or already there."""

from __future__ import annotations

from collections import Counter

import pytest

import endpointkit as ek
from endpointkit.adapters.sagemaker._adapter import FALLBACK_TAG
from tests.adapters.sagemaker_fixtures import ROLE_ARN, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

ENDPOINT = "echo-endpoint"
CAPACITY = (
    "Unable to provision requested ML compute capacity. Please retry using a different ML instance type."
)
QUOTA = (
    "The account-level service limit 'ml.g4dn.xlarge for endpoint usage' is 0 Instances, with current utilization "
    "of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request an increase."
)


def _nothing_left(sagemaker_world: SageMakerWorld) -> bool:
    return (sagemaker_world.models(), sagemaker_world.configs(), sagemaker_world.endpoints()) == ([], [], [])


def test_five_consecutive_throttles_on_every_call_are_survived(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.fail("*", "*", "ThrottlingException", "Rate exceeded", times=5, per_operation=True)
    sagemaker_world.set_invoke_results({"Body": '{"outputs": []}', "ContentType": "application/json"})
    spec = sagemaker_world.spec(autoscaling={"max_instances": 2})
    adapter = sagemaker_world.adapter(spec)

    state = ek.apply(spec, adapter=adapter)
    response = adapter.invoke(state, b"{}", {"Content-Type": "application/json"})
    assert ek.destroy(spec, adapter=adapter) is True

    assert state.status is ek.EndpointStatus.IN_SERVICE and response.status == 200
    assert _nothing_left(sagemaker_world)
    counts = Counter(sagemaker_world.hooks.calls)
    assert {"CreateModel", "CreateEndpoint", "PutObject", "RegisterScalableTarget", "InvokeEndpoint"} <= {
        operation for _, operation in counts
    }
    assert min(counts.values()) >= 6  # every operation: 5 throttled attempts, then one that went through
    assert sagemaker_world.clock.sleeps and max(sagemaker_world.clock.sleeps) <= 30.0


def test_throttling_that_never_stops_gives_up_after_the_attempt_bound(
    sagemaker_world: SageMakerWorld,
) -> None:
    sagemaker_world.hooks.fail(
        "sagemaker", "DescribeEndpoint", "ThrottlingException", "Rate exceeded", times=None
    )
    spec = sagemaker_world.spec()

    with pytest.raises(ek.ProviderError) as raised:
        ek.plan(spec, adapter=sagemaker_world.adapter(spec, retry_attempts=8))

    assert raised.value.retryable and raised.value.code == "ThrottlingException"
    assert sagemaker_world.hooks.operations().count("DescribeEndpoint") == 8


def test_server_errors_are_retried(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.fail(
        "sagemaker", "CreateEndpointConfig", "InternalFailure", "oops", status=500, times=2
    )
    spec = sagemaker_world.spec()

    assert ek.apply(spec, adapter=sagemaker_world.adapter(spec)).status is ek.EndpointStatus.IN_SERVICE
    assert sagemaker_world.hooks.operations().count("CreateEndpointConfig") == 3


def test_failed_endpoint_raises_its_reason_and_rollback_leaves_nothing(
    sagemaker_world: SageMakerWorld,
) -> None:
    reason = "The primary container for production variant primary did not pass the ping health check."
    sagemaker_world.hooks.script_status(ENDPOINT, ("Creating", None), ("Failed", reason), sticky=True)
    spec = sagemaker_world.spec()

    with pytest.raises(ek.ProviderError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert type(raised.value) is ek.ProviderError
    assert reason in str(raised.value) and raised.value.details["reason"] == reason
    assert _nothing_left(sagemaker_world)


def test_failed_update_keeps_the_old_endpoint_serving_and_removes_only_the_new(
    sagemaker_world: SageMakerWorld,
) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    before = (sagemaker_world.models(), sagemaker_world.configs())
    changed = sagemaker_world.spec(
        variants=[{"name": "primary", "accelerator": "gpu", "instance_type": "ml.p3.2xlarge"}]
    )
    sagemaker_world.hooks.update_outcomes = ["Model failed to load: out of memory"]

    with pytest.raises(ek.ProviderError, match="out of memory"):
        ek.apply(changed, adapter=sagemaker_world.adapter(changed))

    assert (sagemaker_world.models(), sagemaker_world.configs()) == before
    state = ek.status(spec, adapter=sagemaker_world.adapter(spec))
    assert state is not None and state.status is ek.EndpointStatus.IN_SERVICE
    assert state.extra["config"] == before[1][0]


def test_capacity_failure_moves_to_the_next_fallback(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.script_status(ENDPOINT, ("Failed", CAPACITY))
    spec = sagemaker_world.spec(target={"instance_type_fallbacks": ["ml.g4dn.2xlarge", "ml.p3.2xlarge"]})
    adapter = sagemaker_world.adapter(spec)

    state = ek.apply(spec, adapter=adapter)

    assert state.status is ek.EndpointStatus.IN_SERVICE
    assert [v.instance_type for v in state.variants] == ["ml.g4dn.2xlarge"]
    (config,) = sagemaker_world.configs()
    config_arn = sagemaker_world.client("sagemaker").describe_endpoint_config(EndpointConfigName=config)[
        "EndpointConfigArn"
    ]
    assert sagemaker_world.tags(config_arn)[FALLBACK_TAG] == "ml.g4dn.2xlarge"
    assert not ek.plan(
        spec, adapter=sagemaker_world.adapter(spec)
    ).has_changes  # the fallback config is the desired one


def test_capacity_error_from_create_endpoint_moves_to_the_next_fallback(
    sagemaker_world: SageMakerWorld,
) -> None:
    sagemaker_world.hooks.fail(
        "sagemaker", "CreateEndpoint", "InsufficientInstanceCapacity", "no g4dn left", times=1
    )
    spec = sagemaker_world.spec(target={"instance_type_fallbacks": ["ml.p3.2xlarge"]})

    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert [v.instance_type for v in state.variants] == ["ml.p3.2xlarge"]


def test_capacity_everywhere_names_every_type_tried_and_leaves_nothing(
    sagemaker_world: SageMakerWorld,
) -> None:
    sagemaker_world.hooks.script_status(ENDPOINT, ("Failed", CAPACITY), sticky=True)
    spec = sagemaker_world.spec(target={"instance_type_fallbacks": ["ml.g4dn.2xlarge", "ml.p3.2xlarge"]})

    with pytest.raises(ek.CapacityError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    message = str(raised.value)
    for instance_type in ("ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.p3.2xlarge"):
        assert instance_type in message
    assert raised.value.details["instance_types"] == ["ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.p3.2xlarge"]
    assert _nothing_left(sagemaker_world)


def test_quota_error_names_the_quota_and_how_to_raise_it(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.fail("sagemaker", "CreateEndpoint", "ResourceLimitExceeded", QUOTA, times=1)
    spec = sagemaker_world.spec(target={"instance_type_fallbacks": ["ml.p3.2xlarge"]})

    with pytest.raises(ek.QuotaError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    message = str(raised.value)
    assert "ml.g4dn.xlarge for endpoint usage" in message
    assert "Service Quotas console" in message and "request-service-quota-increase" in message
    assert raised.value.details["quota"] == "ml.g4dn.xlarge for endpoint usage"
    assert _nothing_left(sagemaker_world)


def test_endpoint_stuck_creating_times_out_with_the_last_state(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.script_status(ENDPOINT, ("Creating", None), sticky=True)
    spec = sagemaker_world.spec(timeouts={"create": "5m", "update": "5m", "delete": "5m"})
    seen: list[ek.EndpointStatus] = []

    with pytest.raises(ek.ProvisionTimeout) as raised:
        ek.apply(
            spec, adapter=sagemaker_world.adapter(spec), progress=lambda event: seen.append(event.status)
        )

    assert raised.value.last_state is not None
    assert raised.value.last_state.status is ek.EndpointStatus.CREATING
    # first poll after 1 s, doubling up to 30 s, the last sleep cut so the wait ends at exactly 5 minutes
    assert sagemaker_world.clock.sleeps[:14] == [1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * 8 + [29.0]
    assert "Creating" in seen
    assert _nothing_left(sagemaker_world)


def test_deletes_of_what_is_already_gone_succeed(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)
    deployment = spec.deployment()

    for kind in ("endpoint", "endpoint_config", "model"):
        adapter.delete(deployment, kind, "never-created")  # type: ignore[arg-type]

    assert ek.destroy(spec, adapter=adapter) is False
    assert sagemaker_world.hooks.mutating() == [
        ("sagemaker", "DeleteEndpointConfig"),
        ("sagemaker", "DeleteModel"),
    ]


def test_existing_managed_model_is_adopted(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    name = sagemaker_world.adapter(spec).desired(spec.deployment()).model.name
    sagemaker_world.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "x"},
        Tags=[{"Key": "managed-by", "Value": "endpointkit"}],
    )
    sagemaker_world.hooks.fail(
        "sagemaker", "DescribeModel", "ValidationException", f"Could not find model '{name}'.", times=1
    )
    sagemaker_world.hooks.fail(
        "sagemaker", "CreateModel", "ValidationException", f'Cannot create already existing model "{name}".'
    )

    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert state.status is ek.EndpointStatus.IN_SERVICE
    assert sagemaker_world.models() == [name]


def test_existing_foreign_model_is_a_conflict_and_is_left_alone(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    name = sagemaker_world.adapter(spec).desired(spec.deployment()).model.name
    sagemaker_world.client("sagemaker").create_model(
        ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "x"}
    )
    sagemaker_world.hooks.fail(
        "sagemaker", "DescribeModel", "ValidationException", f"Could not find model '{name}'.", times=1
    )
    sagemaker_world.hooks.fail(
        "sagemaker", "CreateModel", "ValidationException", f'Cannot create already existing model "{name}".'
    )

    with pytest.raises(ek.ConflictError, match="not managed by endpointkit"):
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert sagemaker_world.models() == [name]  # the rollback did not delete someone else's model
    assert ("sagemaker", "DeleteModel") not in sagemaker_world.hooks.calls


def test_foreign_endpoint_with_the_same_name_is_refused_at_plan(sagemaker_world: SageMakerWorld) -> None:
    sagemaker = sagemaker_world.client("sagemaker")
    sagemaker.create_model(ModelName="theirs", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "x"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="theirs",
        ProductionVariants=[
            {
                "VariantName": "a",
                "ModelName": "theirs",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="theirs")
    spec = sagemaker_world.spec()

    with pytest.raises(ek.ConflictError, match="not managed by endpointkit"):
        ek.plan(spec, adapter=sagemaker_world.adapter(spec))
    with pytest.raises(ek.ConflictError):
        ek.destroy(spec, adapter=sagemaker_world.adapter(spec))
    assert sagemaker_world.endpoints() == [ENDPOINT]


def test_auth_errors_are_mapped(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.hooks.fail(
        "sagemaker", "DescribeEndpoint", "ExpiredTokenException", "The security token has expired."
    )
    spec = sagemaker_world.spec()

    with pytest.raises(ek.AuthError, match="security token has expired"):
        ek.status(spec, adapter=sagemaker_world.adapter(spec))
    assert sagemaker_world.hooks.operations().count("DescribeEndpoint") == 1  # not retried
