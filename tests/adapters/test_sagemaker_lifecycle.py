"""The SageMaker adapter's whole lifecycle against moto in server mode: apply, plan, update, destroy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit._endpoint_state import encode_expiry
from endpointkit.adapters.base import EXPIRES_AT_TAG, MANAGED_BY_TAG, SPEC_HASH_TAG
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.provisioners import apply_plan
from tests.adapters.sagemaker_fixtures import BUCKET, REGION, ROLE_ARN, SageMakerWorld, write_echo_repository

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

MUTATING_PREFIXES = ("Create", "Update", "Delete", "Add", "Put", "Register", "Deregister", "Upload")


def _sagemaker(sagemaker_world: SageMakerWorld) -> Any:
    return sagemaker_world.client("sagemaker")


def test_lifecycle_apply_plan_update_destroy(sagemaker_world: SageMakerWorld, tmp_path: Path) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)

    # apply: model, config and endpoint exist, tagged, with the repository packaged in S3
    state = ek.apply(spec, adapter=adapter)
    assert state.status is ek.EndpointStatus.IN_SERVICE
    assert [(v.name, v.instance_type, v.instance_count) for v in state.variants] == [
        ("primary", "ml.g4dn.xlarge", 1)
    ]
    (model,) = sagemaker_world.models()
    (config,) = sagemaker_world.configs()
    assert sagemaker_world.endpoints() == ["echo-endpoint"]
    assert model.startswith("echo-endpoint-") and len(model) == len("echo-endpoint-") + 8
    described = _sagemaker(sagemaker_world).describe_model(ModelName=model)
    container = described["PrimaryContainer"]
    assert (
        container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
    )
    assert list(container["Environment"].items()) == [
        ("SAGEMAKER_TRITON_DEFAULT_MODEL_NAME", "echo"),
        ("SAGEMAKER_TRITON_LOG_VERBOSE", "1"),
    ]
    assert described["ExecutionRoleArn"] == ROLE_ARN
    (key,) = sagemaker_world.objects()
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/{key}"
    assert key.startswith("endpointkit/echo-endpoint-") and key.endswith("/model.tar.gz")
    members = sagemaker_world.archive_members(key, tmp_path)
    assert {member.split("/")[0] for member in members} == {"echo"}
    assert "echo/config.pbtxt" in members and "echo/1/model.py" in members
    variant = _sagemaker(sagemaker_world).describe_endpoint_config(EndpointConfigName=config)[
        "ProductionVariants"
    ][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 1200  # timeouts.create: 20m
    for arn in (described["ModelArn"], state.extra["arn"]):
        tags = sagemaker_world.tags(arn)
        assert tags[MANAGED_BY_TAG] == "endpointkit" and tags["team"] == "vision"
        assert tags[SPEC_HASH_TAG] == spec.deployment().spec_hash()
    assert state.spec_hash == spec.deployment().spec_hash()

    # plan with a fresh adapter (as the CLI would): no changes
    assert not ek.plan(spec, adapter=sagemaker_world.adapter(spec)).has_changes

    # update: a new config (and a new model: the environment changed), the old ones deleted after the move
    changed = sagemaker_world.spec(
        model={
            "repository": str(sagemaker_world.repository),
            "environment": {"SAGEMAKER_TRITON_LOG_VERBOSE": "0"},
        },
        variants=[
            {"name": "primary", "accelerator": "gpu", "instance_type": "ml.g4dn.xlarge", "instance_count": 2}
        ],
    )
    updater = sagemaker_world.adapter(changed)
    plan = ek.plan(changed, adapter=updater)
    assert [(c.action, c.resource) for c in plan.changes] == [
        ("create", "model"),
        ("create", "endpoint_config"),
        ("update", "endpoint"),
        ("delete", "endpoint_config"),
        ("delete", "model"),
    ]
    sagemaker_world.hooks.update_polls = 2
    updated = ek.apply(changed, adapter=updater)
    assert updated.status is ek.EndpointStatus.IN_SERVICE
    # blue/green: while SageMaker said Updating, the endpoint still ran on the old config
    assert sagemaker_world.hooks.updating_observations == [config, config]
    assert sagemaker_world.models() == [plan.desired.model.name]
    assert sagemaker_world.configs() == [plan.desired.config.name]
    assert updated.extra["config"] == plan.desired.config.name
    assert [v.instance_count for v in updated.variants] == [2]
    assert updated.spec_hash == changed.deployment().spec_hash()
    assert sagemaker_world.objects() == [key]  # same repository: the archive is reused, not uploaded again
    assert not ek.plan(changed, adapter=sagemaker_world.adapter(changed)).has_changes

    # destroy: nothing left but the archive (kept unless purge_artifacts)
    assert ek.destroy(changed, adapter=updater) is True
    assert (sagemaker_world.models(), sagemaker_world.configs(), sagemaker_world.endpoints()) == ([], [], [])
    assert sagemaker_world.objects() == [key]
    assert ek.status(changed, adapter=updater) is None
    assert ek.destroy(changed, adapter=updater) is False


def test_unchanged_reapply_makes_no_mutating_call_and_at_most_three_describes(
    sagemaker_world: SageMakerWorld,
) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    sagemaker_world.hooks.calls.clear()

    again = ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert again.status is ek.EndpointStatus.IN_SERVICE
    operations = sagemaker_world.hooks.operations()
    assert [op for op in operations if op.startswith(MUTATING_PREFIXES)] == []
    assert len([op for op in operations if op.startswith("Describe")]) <= 3
    assert operations == ["DescribeEndpoint", "ListTags", "DescribeEndpointConfig"]


def test_archive_already_in_s3_is_not_uploaded_again(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    ek.destroy(spec, adapter=sagemaker_world.adapter(spec))
    sagemaker_world.hooks.calls.clear()

    ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    s3_calls = sagemaker_world.hooks.operations("s3")
    assert s3_calls == ["HeadObject"]


def test_purge_artifacts_deletes_the_archive_on_destroy(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    assert len(sagemaker_world.objects()) == 1

    ek.destroy(spec, adapter=sagemaker_world.adapter(spec, purge_artifacts=True))

    assert sagemaker_world.objects() == []


def test_large_archive_is_uploaded_in_parts(sagemaker_world: SageMakerWorld) -> None:
    boto3_transfer = pytest.importorskip("boto3.s3.transfer")
    (sagemaker_world.repository / "echo" / "1" / "weights.bin").write_bytes(_incompressible(6 * 1024 * 1024))
    spec = sagemaker_world.spec()
    config = boto3_transfer.TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )

    ek.apply(spec, adapter=sagemaker_world.adapter(spec, transfer_config=config))

    s3_calls = sagemaker_world.hooks.operations("s3")
    assert "CreateMultipartUpload" in s3_calls and s3_calls.count("UploadPart") == 2
    head = sagemaker_world.client("s3").head_object(Bucket=BUCKET, Key=sagemaker_world.objects()[0])
    assert (
        head["Metadata"]["sha256"]
        == sagemaker_world.adapter(spec).desired(spec.deployment()).model.properties["content_hash"]
    )


def _incompressible(size: int) -> bytes:
    import random

    return random.Random(7).randbytes(size)


def test_given_archive_is_used_after_a_head_check(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.client("s3").put_object(Bucket=BUCKET, Key="given/model.tar.gz", Body=b"archive")
    url = f"s3://{BUCKET}/given/model.tar.gz"
    spec = sagemaker_world.spec(model={"repository": url, "default_model": "echo"})

    ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    (model,) = sagemaker_world.models()
    container = _sagemaker(sagemaker_world).describe_model(ModelName=model)["PrimaryContainer"]
    assert container["ModelDataUrl"] == url
    assert container["Environment"] == {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "echo"}
    assert "PutObject" not in sagemaker_world.hooks.operations("s3")
    ek.destroy(spec, adapter=sagemaker_world.adapter(spec, purge_artifacts=True))
    assert sagemaker_world.objects() == ["given/model.tar.gz"]  # a user's archive is never purged


def test_missing_given_archive_is_not_found_and_nothing_is_left(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec(model={"repository": f"s3://{BUCKET}/missing/model.tar.gz"})

    with pytest.raises(ek.NotFoundError, match="does not exist"):
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert (sagemaker_world.models(), sagemaker_world.configs(), sagemaker_world.endpoints()) == ([], [], [])


def test_vpc_serverless_and_async_settings_reach_sagemaker(sagemaker_world: SageMakerWorld) -> None:
    vpc = {"subnets": ["subnet-1"], "security_group_ids": ["sg-1"]}
    serverless = sagemaker_world.spec(
        variants=[{"name": "primary"}],
        target={"serverless": {"memory_mb": 4096, "max_concurrency": 3}, "vpc": vpc},
    )
    ek.apply(serverless, adapter=sagemaker_world.adapter(serverless))
    (model,) = sagemaker_world.models()
    described = _sagemaker(sagemaker_world).describe_model(ModelName=model)
    assert described["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert described["PrimaryContainer"]["Image"].endswith("sagemaker-tritonserver:24.09-py3-cpu")
    (config,) = sagemaker_world.configs()
    variant = _sagemaker(sagemaker_world).describe_endpoint_config(EndpointConfigName=config)[
        "ProductionVariants"
    ][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 3}
    ek.destroy(serverless, adapter=sagemaker_world.adapter(serverless))

    asynchronous = sagemaker_world.spec(
        variants=[{"name": "primary", "instance_type": "ml.m5.large"}],
        target={"async": {"output_path": f"s3://{BUCKET}/async-out"}},
    )
    ek.apply(asynchronous, adapter=sagemaker_world.adapter(asynchronous))
    (config,) = sagemaker_world.configs()
    described_config = _sagemaker(sagemaker_world).describe_endpoint_config(EndpointConfigName=config)
    assert described_config["AsyncInferenceConfig"]["OutputConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/async-out"
    }
    assert ek.status(asynchronous, adapter=sagemaker_world.adapter(asynchronous)).extra["mode"] == "async"  # type: ignore[union-attr]


def test_autoscaling_is_registered_moved_around_instance_type_changes_and_removed(
    sagemaker_world: SageMakerWorld,
) -> None:
    autoscaling = {"min_instances": 1, "max_instances": 3, "target_invocations_per_instance": 50}
    spec = sagemaker_world.spec(autoscaling=autoscaling)
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    (target,) = sagemaker_world.scalable_targets()
    assert target["ResourceId"] == "endpoint/echo-endpoint/variant/primary"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    (policy,) = sagemaker_world.scaling_policies()
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 50.0
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )

    bigger = sagemaker_world.spec(
        autoscaling=autoscaling,
        variants=[{"name": "primary", "accelerator": "gpu", "instance_type": "ml.p3.2xlarge"}],
    )
    sagemaker_world.hooks.calls.clear()
    ek.apply(bigger, adapter=sagemaker_world.adapter(bigger))
    operations = sagemaker_world.hooks.operations()
    assert operations.index("DeregisterScalableTarget") < operations.index("UpdateEndpoint")
    assert operations.index("UpdateEndpoint") < operations.index("RegisterScalableTarget")
    assert len(sagemaker_world.scalable_targets()) == 1 and len(sagemaker_world.scaling_policies()) == 1

    ek.destroy(bigger, adapter=sagemaker_world.adapter(bigger))
    assert sagemaker_world.scalable_targets() == [] and sagemaker_world.scaling_policies() == []


def test_default_clients_follow_aws_endpoint_url(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    deployment = spec.deployment()
    adapter = SageMakerAdapter(deployment.target, target_name="aws")  # type: ignore[arg-type]
    try:
        assert adapter.status(deployment).status is ek.EndpointStatus.NOT_FOUND
        assert adapter._api.client("sagemaker").meta.endpoint_url == sagemaker_world.url
        assert adapter._api.client("sagemaker").meta.region_name == REGION
    finally:
        adapter.close()


def test_multi_model_repository_needs_and_uses_a_default_model(
    sagemaker_world: SageMakerWorld, tmp_path: Path
) -> None:
    repository = write_echo_repository(tmp_path / "two", models=("first", "second"))
    with pytest.raises(ek.SpecError, match="default_model"):
        spec = sagemaker_world.spec(model={"repository": str(repository)})
        sagemaker_world.adapter(spec).desired(spec.deployment())

    spec = sagemaker_world.spec(model={"repository": str(repository), "default_model": "second"})
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    (model,) = sagemaker_world.models()
    environment = _sagemaker(sagemaker_world).describe_model(ModelName=model)["PrimaryContainer"][
        "Environment"
    ]
    assert environment["SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"] == "second"
    (key,) = sagemaker_world.objects()
    members = sagemaker_world.archive_members(key, tmp_path)
    assert {member.split("/")[0] for member in members} == {"first", "second"}


def test_missing_bucket_says_to_create_it_and_nothing_is_left(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec(target={"bucket": "no-such-bucket-here"})

    with pytest.raises(ek.NotFoundError, match="create the bucket no-such-bucket-here"):
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert (sagemaker_world.models(), sagemaker_world.configs(), sagemaker_world.endpoints()) == ([], [], [])


def test_ttl_change_retags_the_endpoint_without_an_update(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    with_ttl = sagemaker_world.spec(ttl="2h", tags={"team": "vision", "owner": "ml-platform"})
    sagemaker_world.hooks.calls.clear()

    state = ek.apply(with_ttl, adapter=sagemaker_world.adapter(with_ttl))

    assert sagemaker_world.hooks.mutating() == [("sagemaker", "AddTags")]
    tags = sagemaker_world.tags(state.extra["arn"])
    assert tags["owner"] == "ml-platform"
    assert tags[SPEC_HASH_TAG] == state.spec_hash != spec.deployment("aws").spec_hash()
    assert state.expires_at is not None and tags[EXPIRES_AT_TAG] == encode_expiry(state.expires_at)

    sagemaker_world.hooks.calls.clear()
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))  # the ttl is gone again: so is the expiry tag

    assert sagemaker_world.hooks.mutating() == [("sagemaker", "AddTags"), ("sagemaker", "DeleteTags")]
    assert EXPIRES_AT_TAG not in sagemaker_world.tags(state.extra["arn"])


def test_a_plan_made_before_another_run_created_the_endpoint_leaves_that_endpoint_alone(
    sagemaker_world: SageMakerWorld,
) -> None:
    first = sagemaker_world.spec()
    second = sagemaker_world.spec(
        model={"repository": str(sagemaker_world.repository), "environment": {"V": "2"}}
    )
    adapter = sagemaker_world.adapter(second)
    stale = ek.plan(second, adapter=adapter)  # planned while the endpoint did not exist yet
    ek.apply(first, adapter=sagemaker_world.adapter(first))
    running = sagemaker_world.configs()
    # moto lets CreateEndpoint take a name in use; SageMaker refuses it in these words.
    arn = sagemaker_world.client("sagemaker").describe_endpoint(EndpointName="echo-endpoint")["EndpointArn"]
    sagemaker_world.hooks.fail(
        "sagemaker",
        "CreateEndpoint",
        "ValidationException",
        f'Cannot create already existing endpoint "{arn}".',
    )

    with pytest.raises(ek.ConflictError, match="run apply again") as raised:
        apply_plan(second.deployment(), adapter, stale)

    assert raised.value.code == "ChangedSincePlan"
    assert sagemaker_world.endpoints() == ["echo-endpoint"]
    assert sagemaker_world.configs() == running  # the second run's config was rolled back, the first's kept
    assert not ek.plan(first, adapter=sagemaker_world.adapter(first)).has_changes
