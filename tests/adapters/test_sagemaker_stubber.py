"""moto's gaps, covered with botocore's own Stubber, call by call: moto has no UpdateEndpoint and makes every endpoint
InService at once. Stubber checks each request's operation and parameters (botocore validates them against the
service model) and each canned response against the output shape; no request leaves the process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

import endpointkit as ek
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.spec import Deployment, spec_from_dict
from tests.adapters.sagemaker_fixtures import BUCKET, REGION, ROLE_ARN, FakeClock, write_echo_repository

NAME = "echo-endpoint"
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{NAME}"
OLD_CONFIG = f"{NAME}-0ld0c0f1"
WHEN = datetime(2026, 12, 1, tzinfo=timezone.utc)


class Stubbed:
    """Stubbed SageMaker and Application Auto Scaling clients, the adapter's client factory, and a fake clock."""

    def __init__(self) -> None:
        self.clients = {
            service: boto3.client(service, region_name=REGION)
            for service in ("sagemaker", "application-autoscaling")
        }
        self.stubbers = {service: Stubber(client) for service, client in self.clients.items()}
        self.clock = FakeClock()

    def factory(self, service: str) -> Any:
        return self.clients[service]

    @property
    def sagemaker(self) -> Stubber:
        return self.stubbers["sagemaker"]

    def describe_endpoint(self, status: str, config: str, reason: str | None = None) -> None:
        response: dict[str, Any] = {
            "EndpointName": NAME,
            "EndpointArn": ARN,
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "CreationTime": WHEN,
            "LastModifiedTime": WHEN,
        }
        if reason is not None:
            response["FailureReason"] = reason
        self.sagemaker.add_response("describe_endpoint", response, {"EndpointName": NAME})


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubbed]:
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    world = Stubbed()
    for stubber in world.stubbers.values():
        stubber.activate()
    yield world
    for stubber in world.stubbers.values():
        stubber.deactivate()


def _deployment(tmp_path: Path, **overrides: Any) -> Deployment:
    spec = spec_from_dict(
        {
            "name": NAME,
            "model": {"repository": str(write_echo_repository(tmp_path / "repository"))},
            "variants": [
                {
                    "name": "primary",
                    "accelerator": "gpu",
                    "instance_type": "ml.g4dn.xlarge",
                    "instance_count": 2,
                }
            ],
            "timeouts": {"create": "10m", "update": "10m", "delete": "5m"},
            "targets": {
                "aws": {"kind": "sagemaker", "region": REGION, "role_arn": ROLE_ARN, "bucket": BUCKET}
            },
            **overrides,
        }
    )
    return spec.deployment("aws")


def _adapter(deployment: Deployment, stubbed: Stubbed) -> SageMakerAdapter:
    return SageMakerAdapter(
        deployment.target,  # type: ignore[arg-type]
        target_name=deployment.target_name,
        client_factory=stubbed.factory,
        sleep=stubbed.clock.sleep,
        clock=stubbed.clock,
    )


def test_blue_green_update_waits_for_the_new_config_then_retags(stubbed: Stubbed, tmp_path: Path) -> None:
    deployment = _deployment(tmp_path)
    adapter = _adapter(deployment, stubbed)
    desired = adapter.desired(deployment)
    sagemaker = stubbed.sagemaker
    stubbed.describe_endpoint("InService", OLD_CONFIG)
    sagemaker.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [
                {
                    "VariantName": "primary",
                    "ModelName": f"{NAME}-0ld0m0de",
                    "InstanceType": "ml.g4dn.xlarge",
                    "InitialInstanceCount": 1,
                }
            ],
            "CreationTime": WHEN,
        },
        {"EndpointConfigName": OLD_CONFIG},
    )
    sagemaker.add_response(
        "update_endpoint",
        {"EndpointArn": ARN},
        {"EndpointName": NAME, "EndpointConfigName": desired.config.name},
    )
    # Blue/green: SageMaker keeps serving the old config while Updating, and names the new one once InService.
    stubbed.describe_endpoint("Updating", OLD_CONFIG)
    stubbed.describe_endpoint("Updating", OLD_CONFIG)
    stubbed.describe_endpoint("InService", desired.config.name)
    sagemaker.add_response(
        "list_tags",
        {"Tags": [{"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}]},
        {"ResourceArn": ARN, "MaxResults": 100},
    )
    sagemaker.add_response("add_tags", {"Tags": []}, {"ResourceArn": ARN, "Tags": ANY})
    stubbed.stubbers["application-autoscaling"].add_response(
        "describe_scalable_targets",
        {"ScalableTargets": []},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceIds": [f"endpoint/{NAME}/variant/primary"],
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        },
    )

    adapter.update_endpoint(deployment, desired)

    for stubber in stubbed.stubbers.values():
        stubber.assert_no_pending_responses()
    # The first DescribeEndpoint comes 1 s after UpdateEndpoint, then the delay doubles.
    assert stubbed.clock.sleeps[-3:] == [1.0, 2.0, 4.0]


def test_an_endpoint_stuck_in_creating_times_out_with_its_last_status(
    stubbed: Stubbed, tmp_path: Path
) -> None:
    deployment = _deployment(tmp_path, timeouts={"create": "2m", "update": "2m", "delete": "1m"})
    adapter = _adapter(deployment, stubbed)
    desired = adapter.desired(deployment)
    stubbed.sagemaker.add_response(
        "create_endpoint",
        {"EndpointArn": ARN},
        {"EndpointName": NAME, "EndpointConfigName": desired.config.name, "Tags": ANY},
    )
    for _ in range(8):  # after 1 + 2 + 4 + 8 + 16 + 30 + 30 + 29 s of backoff the 2 minutes are up
        stubbed.describe_endpoint("Creating", desired.config.name)

    with pytest.raises(ek.ProvisionTimeout) as raised:
        adapter.create(deployment, desired.endpoint)

    stubbed.sagemaker.assert_no_pending_responses()
    assert raised.value.last_state is not None
    assert raised.value.last_state.status is ek.EndpointStatus.CREATING
    assert stubbed.clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 29.0]


def test_a_failed_endpoint_ends_the_wait_at_once_with_the_failure_reason(
    stubbed: Stubbed, tmp_path: Path
) -> None:
    deployment = _deployment(tmp_path)
    adapter = _adapter(deployment, stubbed)
    desired = adapter.desired(deployment)
    reason = "The primary container for production variant primary did not pass the ping health check."
    stubbed.sagemaker.add_response(
        "create_endpoint",
        {"EndpointArn": ARN},
        {"EndpointName": NAME, "EndpointConfigName": desired.config.name, "Tags": ANY},
    )
    stubbed.describe_endpoint("Creating", desired.config.name)
    stubbed.describe_endpoint("Failed", desired.config.name, reason)

    with pytest.raises(ek.ProviderError, match="did not pass the ping health check"):
        adapter.create(deployment, desired.endpoint)

    stubbed.sagemaker.assert_no_pending_responses()
    assert stubbed.clock.sleeps == [1.0, 2.0]
