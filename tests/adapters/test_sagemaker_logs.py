"""``logs`` on SageMaker over moto: CloudWatch Logs FilterLogEvents on the endpoint's group, every stream,
every page; a missing group; the last lines in the error of an endpoint that went Failed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.adapters.sagemaker._logs import CloudWatchLogs, log_group
from tests.adapters.sagemaker_fixtures import SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

ENDPOINT = "echo-endpoint"
GROUP = "/aws/sagemaker/Endpoints/echo-endpoint"


def _write_events(world: SageMakerWorld, stream: str, lines: list[str], *, start_ms: int) -> None:
    client = world.client("logs")
    groups = client.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]
    if not groups:
        client.create_log_group(logGroupName=GROUP)
    client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    events = [{"timestamp": start_ms + 10 * index, "message": line} for index, line in enumerate(lines)]
    client.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=events)


def _reader(world: SageMakerWorld, **options: Any) -> CloudWatchLogs:
    logs_client = world.hooks.factory("logs")
    return CloudWatchLogs(lambda: logs_client, Caller(sleep=world.clock.sleep), **options)


def test_group_name_is_sagemakers() -> None:
    assert log_group(ENDPOINT) == GROUP


def test_every_page_of_every_stream_is_read_in_time_order(sagemaker_world: SageMakerWorld) -> None:
    now = int(time.time() * 1000) - 60_000
    _write_events(sagemaker_world, "primary/i-0001", ["a0", "a1", "a2"], start_ms=now)
    _write_events(sagemaker_world, "primary/i-0002", ["b0", "b1"], start_ms=now + 5)

    records = list(
        _reader(sagemaker_world, page_size=2).records(
            ENDPOINT, variant=None, since=None, tail=None, follow=False
        )
    )

    assert [record.line for record in records] == ["a0", "b0", "a1", "b1", "a2"]
    assert {record.replica for record in records} == {"i-0001", "i-0002"}
    assert {record.variant for record in records} == {"primary"}
    assert sagemaker_world.hooks.operations("logs").count("FilterLogEvents") == 3
    last_request = json.loads(sagemaker_world.hooks.requests[("logs", "FilterLogEvents")]["body"])
    assert last_request["logGroupName"] == GROUP and last_request["nextToken"]


def test_tail_keeps_the_last_records_after_interleaving(sagemaker_world: SageMakerWorld) -> None:
    now = int(time.time() * 1000) - 60_000
    _write_events(sagemaker_world, "primary/i-0001", ["a0", "a1"], start_ms=now)
    _write_events(sagemaker_world, "primary/i-0002", ["b0", "b1"], start_ms=now + 5)

    records = _reader(sagemaker_world).records(ENDPOINT, variant=None, since=None, tail=2, follow=False)

    assert [record.line for record in records] == ["a1", "b1"]


def test_a_missing_log_group_is_not_found_saying_why(sagemaker_world: SageMakerWorld) -> None:
    with pytest.raises(ek.NotFoundError, match="never started.*cannot write logs"):
        _reader(sagemaker_world).records(ENDPOINT, variant=None, since=None, tail=None, follow=False)


def test_logs_of_an_endpoint_that_does_not_exist_is_not_found(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()

    with pytest.raises(ek.NotFoundError, match="does not exist"):
        ek.logs(spec, adapter=sagemaker_world.adapter(spec))


def test_failed_endpoint_error_carries_the_last_cloudwatch_lines(sagemaker_world: SageMakerWorld) -> None:
    _write_events(
        sagemaker_world,
        "primary/i-0001",
        ["loading model echo", "E model.py:3] failed to load 'echo': No module named 'torch'"],
        start_ms=int(time.time() * 1000) - 60_000,
    )
    reason = "The primary container for production variant primary did not pass the ping health check."
    sagemaker_world.hooks.script_status(ENDPOINT, ("Creating", None), ("Failed", reason), sticky=True)
    spec = sagemaker_world.spec()

    with pytest.raises(ek.ProviderError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert reason in str(raised.value)
    assert "No module named 'torch'" in str(raised.value)
    assert raised.value.details["log_lines"][-1].endswith("No module named 'torch'")


def test_failed_endpoint_without_a_log_group_still_raises_its_reason(sagemaker_world: SageMakerWorld) -> None:
    reason = "The primary container for production variant primary did not pass the ping health check."
    sagemaker_world.hooks.script_status(ENDPOINT, ("Creating", None), ("Failed", reason), sticky=True)
    spec = sagemaker_world.spec()

    with pytest.raises(ek.ProviderError) as raised:
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert raised.value.details["reason"] == reason
    assert "log_lines" not in raised.value.details
