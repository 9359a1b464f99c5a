"""Live metrics of a SageMaker endpoint from CloudWatch: one ``GetMetricData`` call for every metric and variant.

Namespace ``AWS/SageMaker``, dimensions ``EndpointName`` and ``VariantName`` (SageMaker developer guide,
"Monitor Amazon SageMaker with Amazon CloudWatch", endpoint invocation metrics):

- ``requests``: the Sum of ``Invocations`` over the window; ``failures``: Sum of ``Invocation4XXErrors`` plus
  ``Invocation5XXErrors``;
- ``p50_ms`` / ``p99_ms``: the ``p50`` / ``p99`` statistics of ``ModelLatency`` (reported in microseconds);
- ``queue_ms``: the Average of ``OverheadLatency`` (microseconds), the time SageMaker adds before and after the
  container, which is what waits in front of the model on this target.

The period is the window rounded up to a whole minute (CloudWatch's smallest period for these metrics), so each
query returns one datapoint covering the window; should CloudWatch split it, sums add and the highest
percentile is kept. A variant without traffic in the window has no datapoint: ``requests`` 0, latencies None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from endpointkit._observations import EndpointMetrics, VariantMetrics
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.errors import NotFoundError

__all__ = ["NAMESPACE", "read_metrics"]

NAMESPACE = "AWS/SageMaker"
_MINUTE = 60
# (query id suffix, metric name, statistic)
_QUERIES: tuple[tuple[str, str, str], ...] = (
    ("invocations", "Invocations", "Sum"),
    ("errors4xx", "Invocation4XXErrors", "Sum"),
    ("errors5xx", "Invocation5XXErrors", "Sum"),
    ("latencyp50", "ModelLatency", "p50"),
    ("latencyp99", "ModelLatency", "p99"),
    ("overhead", "OverheadLatency", "Average"),
)


def read_metrics(
    api: SageMakerApi,
    *,
    name: str,
    target_name: str,
    spec_variants: Sequence[str],
    window: float,
    now: datetime | None = None,
) -> EndpointMetrics:
    """The endpoint's figures per variant over the last ``window`` seconds.

    The variants are those the endpoint runs (DescribeEndpoint), else the spec's.

    Raises:
        NotFoundError: the endpoint does not exist.
        ProviderError: CloudWatch refused (mapped by the adapter's one error mapping).
    """
    description = api.describe("endpoint", name)
    if description is None:
        raise NotFoundError(
            f"SageMaker endpoint {name} does not exist in {api.region}",
            provider="sagemaker",
            operation="metrics",
        )
    live = [str(variant["VariantName"]) for variant in description.get("ProductionVariants") or ()]
    variants = live or list(spec_variants)
    end = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    period = max(_MINUTE, math.ceil(window / _MINUTE) * _MINUTE)
    queries = _queries(name, variants, period)
    values = _get_metric_data(api, queries, start=end - timedelta(seconds=period), end=end, subject=name)
    return EndpointMetrics(
        name=name,
        target=target_name,
        window_seconds=window,
        variants=tuple(_variant(index, variant, values) for index, variant in enumerate(variants)),
        source="cloudwatch",
        note=None
        if period == window
        else f"CloudWatch periods are whole minutes: the figures cover {period} s",
    )


def _queries(endpoint: str, variants: Sequence[str], period: int) -> list[dict[str, Any]]:
    queries = []
    for index, variant in enumerate(variants):
        dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        for suffix, metric, statistic in _QUERIES:
            queries.append(
                {
                    # ids must start with a lowercase letter; the variant goes by its index (names may have '-')
                    "Id": f"v{index}{suffix}",
                    "MetricStat": {
                        "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                        "Period": period,
                        "Stat": statistic,
                    },
                    "ReturnData": True,
                }
            )
    return queries


def _get_metric_data(
    api: SageMakerApi, queries: list[dict[str, Any]], *, start: datetime, end: datetime, subject: str
) -> dict[str, list[float]]:
    """Every query's values by id: one call, and more only if CloudWatch pages its answer."""
    client = api.client("cloudwatch")
    values: dict[str, list[float]] = {}
    params: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    while True:
        response = api.caller.call(client, "get_metric_data", f"metrics of endpoint {subject}", **params)
        for result in response.get("MetricDataResults") or ():
            values.setdefault(str(result["Id"]), []).extend(float(v) for v in result.get("Values") or ())
        token = response.get("NextToken")
        if not token:
            return values
        params["NextToken"] = token


def _variant(index: int, variant: str, values: Mapping[str, list[float]]) -> VariantMetrics:
    def total(suffix: str) -> int:
        return int(sum(values.get(f"v{index}{suffix}", ())))

    def highest_ms(suffix: str) -> float | None:
        found = values.get(f"v{index}{suffix}")
        return max(found) / 1000.0 if found else None  # ModelLatency and OverheadLatency are in microseconds

    return VariantMetrics(
        variant=variant,
        requests=total("invocations"),
        failures=total("errors4xx") + total("errors5xx"),
        p50_ms=highest_ms("latencyp50"),
        p99_ms=highest_ms("latencyp99"),
        queue_ms=highest_ms("overhead"),
    )
