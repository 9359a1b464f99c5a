"""SageMaker live metrics on moto: one GetMetricData call for every metric and variant, read per variant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.errors import NotFoundError
from tests.adapters.sagemaker_fixtures import REGION, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

METRICS = {"Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency"}


class RecordedParams:
    """A client factory over the world's hooks that also keeps the parameters of every GetMetricData call."""

    def __init__(self, world: SageMakerWorld) -> None:
        self.world = world
        self.calls: list[dict[str, Any]] = []

    def factory(self, service: str) -> Any:
        client = self.world.hooks.factory(service)
        client.meta.events.register("provide-client-params.cloudwatch.GetMetricData", self._record)
        return client

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(params)


def _applied(world: SageMakerWorld, recorder: RecordedParams) -> tuple[Any, Any]:
    spec = world.spec()
    adapter = world.adapter(spec, client_factory=recorder.factory)
    ek.apply(spec, adapter=adapter)
    return spec, adapter


def _put(world: SageMakerWorld, metric: str, value: float, *, variant: str = "primary") -> None:
    world.client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "echo-endpoint"},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": datetime.now(timezone.utc) - timedelta(seconds=30),
                "Value": value,
            }
        ],
    )


def test_one_get_metric_data_call_asks_every_metric_of_every_variant(sagemaker_world: SageMakerWorld) -> None:
    recorder = RecordedParams(sagemaker_world)
    spec, adapter = _applied(sagemaker_world, recorder)
    sagemaker_world.hooks.calls.clear()

    ek.metrics(spec, window=300.0, adapter=adapter)

    assert sagemaker_world.hooks.operations("cloudwatch") == ["GetMetricData"]
    [params] = recorder.calls
    assert params["EndTime"] - params["StartTime"] == timedelta(seconds=300)
    stats = {query["MetricStat"]["Metric"]["MetricName"]: set() for query in params["MetricDataQueries"]}
    for query in params["MetricDataQueries"]:
        stat = query["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/SageMaker"
        assert stat["Metric"]["Dimensions"] == [
            {"Name": "EndpointName", "Value": "echo-endpoint"},
            {"Name": "VariantName", "Value": "primary"},
        ]
        assert stat["Period"] == 300
        stats[stat["Metric"]["MetricName"]].add(stat["Stat"])
    assert set(stats) == METRICS
    assert stats["ModelLatency"] == {"p50", "p99"}
    assert stats["Invocations"] == {"Sum"}


def test_the_figures_come_from_cloudwatch_per_variant(sagemaker_world: SageMakerWorld) -> None:
    recorder = RecordedParams(sagemaker_world)
    spec, adapter = _applied(sagemaker_world, recorder)
    _put(sagemaker_world, "Invocations", 40)
    _put(sagemaker_world, "Invocation4XXErrors", 2)
    _put(sagemaker_world, "Invocation5XXErrors", 1)
    _put(sagemaker_world, "OverheadLatency", 1500)

    metrics = ek.metrics(spec, window=600.0, adapter=adapter)

    assert (metrics.source, metrics.window_seconds, metrics.target) == ("cloudwatch", 600.0, "aws")
    [primary] = metrics.variants
    assert (primary.variant, primary.requests, primary.failures) == ("primary", 40, 3)
    assert primary.queue_ms == 1.5  # OverheadLatency is reported in microseconds


def test_latency_percentiles_are_read_in_microseconds(sagemaker_world: SageMakerWorld) -> None:
    recorder = RecordedParams(sagemaker_world)
    spec, adapter = _applied(sagemaker_world, recorder)

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        ids = {"v0latencyp50": [2500.0], "v0latencyp99": [9000.0], "v0invocations": [7.0, 5.0]}
        return {
            "MetricDataResults": [
                {
                    "Id": key,
                    "Label": key,
                    "Timestamps": [datetime.now(timezone.utc)] * len(values),
                    "Values": values,
                }
                for key, values in ids.items()
            ]
        }

    sagemaker_world.hooks.respond("cloudwatch", "GetMetricData", answer)
    [primary] = ek.metrics(spec, window=90.0, adapter=adapter).variants

    assert (primary.p50_ms, primary.p99_ms, primary.requests) == (2.5, 9.0, 12)
    assert recorder.calls[-1]["MetricDataQueries"][0]["MetricStat"]["Period"] == 120  # whole minutes


def test_an_endpoint_that_does_not_exist_is_not_found(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec(name="never-applied")
    adapter = sagemaker_world.adapter(spec)
    with pytest.raises(NotFoundError, match=f"never-applied does not exist in {REGION}"):
        ek.metrics(spec, adapter=adapter)
    assert "GetMetricData" not in sagemaker_world.hooks.operations()
