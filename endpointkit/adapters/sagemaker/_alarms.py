"""The CloudWatch alarms SageMaker watches while it shifts traffic in a canary or linear update.

SageMaker rolls a blue/green update back by itself when one of the alarms named in the update's
``AutoRollbackConfiguration`` goes off during a baking period, so a rollout stays guarded even when the process
that ran ``apply`` dies ("Auto-Rollback Configuration and Monitoring",
https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html). endpointkit makes them
from a rollout's ``max_error_rate`` and ``max_p99``, one of each per variant:

- ``endpointkit-<endpoint>-<variant>-errors``: the ``Average`` of ``Invocation5XXErrors`` above
  ``max_error_rate / 100``. For each request SageMaker sends 1 when the model answered 5xx and 0 otherwise, so
  the average is the share of failed requests (5XX / Invocations, no metric math needed);
- ``endpointkit-<endpoint>-<variant>-p99``: the ``p99`` extended statistic of ``ModelLatency`` above ``max_p99``,
  in microseconds, the metric's unit.

(Metric names, units and statistics: "Amazon SageMaker AI metrics in Amazon CloudWatch", endpoint invocation
metrics, https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html.)

Both are in namespace ``AWS/SageMaker`` with dimensions ``EndpointName``, ``VariantName`` and
``EndpointConfigName`` = the new config: SageMaker publishes that dimension for the new fleet once it takes
traffic, so the alarms judge the new version alone, as the guide's "Monitor model latency on the new fleet"
example does (an old fleet that already fails would otherwise stop every fix). Periods are one minute, the
metrics' resolution; the alarm goes off after 2 breaching minutes in a row (1 when a step waits under 2 minutes);
a minute without traffic is not breaching (``TreatMissingData: notBreaching``, as in the guide's examples).

Bookkeeping: PutMetricAlarm creates or overwrites by name, so re-applying is idempotent. Each alarm is tagged
``managed-by=endpointkit`` and ``endpointkit-endpoint=<endpoint>``; the endpoint is tagged ``ALARMS_TAG`` before
the first alarm is made, so its teardown (a spec's destroy or reap, without the spec) knows to look for alarms
and an endpoint without the tag costs no CloudWatch call. Only alarms named ``endpointkit-<endpoint>-``, on that
endpoint's metrics and tagged as endpointkit's are ever deleted. DeleteAlarms answers ResourceNotFound when a
name is missing (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DeleteAlarms.html), so only
names just found are deleted, and a batch refused for a name deleted meanwhile is retried one name at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.errors import NotFoundError
from endpointkit.spec import RolloutSteps

__all__ = [
    "ALARMS_TAG",
    "ALARM_ENDPOINT_TAG",
    "MAX_ALARMS",
    "NAMESPACE",
    "AlarmSpec",
    "RolloutAlarms",
    "alarm_prefix",
    "alarm_specs",
    "evaluation_periods",
]

NAMESPACE = "AWS/SageMaker"
ALARMS_TAG = "endpointkit-rollout-alarms"
"""Tag on an endpoint for which endpointkit made rollout alarms: its teardown looks for them."""
ALARM_ENDPOINT_TAG = "endpointkit-endpoint"
"""Tag on each alarm naming the endpoint it guards (beside ``managed-by=endpointkit``)."""
MAX_ALARMS = 10
"""AutoRollbackConfig.Alarms holds 1 to 10 alarms (botocore sagemaker service-2.json, shape AlarmList)."""
_PERIOD_SECONDS = 60
_MICROSECONDS = 1_000_000
_DESCRIBE_PAGE = 100  # DescribeAlarms MaxRecords: 1-100
_DELETE_BATCH = 100  # DeleteAlarms AlarmNames: at most 100


def alarm_prefix(endpoint: str) -> str:
    """What every rollout alarm of ``endpoint`` is named with first: ``endpointkit-<endpoint>-``."""
    return f"endpointkit-{endpoint}-"


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One rollout alarm: its name, the variant and metric it watches and its bound, in CloudWatch's units."""

    name: str
    variant: str
    kind: Literal["errors", "p99"]
    threshold: float
    bound: str
    """The bound as plan shows it: ``5XX > 1%``, ``p99 > 250 ms``."""

    def put_params(
        self, *, endpoint: str, config_name: str, evaluation_periods: int, tags: Mapping[str, str]
    ) -> dict[str, Any]:
        """PutMetricAlarm's parameters for this alarm watching the fleet of ``config_name``."""
        metric: dict[str, Any] = (
            {"MetricName": "Invocation5XXErrors", "Statistic": "Average"}
            if self.kind == "errors"
            else {"MetricName": "ModelLatency", "ExtendedStatistic": "p99"}
        )
        what = "answers 5XX to" if self.kind == "errors" else "has a p99 ModelLatency over its bound for"
        return {
            "AlarmName": self.name,
            "AlarmDescription": (
                f"endpointkit: SageMaker rolls an update of endpoint {endpoint} back when variant {self.variant} "
                f"of its new fleet ({config_name}) breaks {self.bound} ({what} its requests)"
            ),
            "Namespace": NAMESPACE,
            **metric,
            "Dimensions": [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": self.variant},
                {"Name": "EndpointConfigName", "Value": config_name},
            ],
            "Period": _PERIOD_SECONDS,
            "EvaluationPeriods": evaluation_periods,
            "DatapointsToAlarm": evaluation_periods,
            "Threshold": self.threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
        }


def alarm_specs(endpoint: str, variants: Sequence[str], steps: RolloutSteps) -> tuple[AlarmSpec, ...]:
    """The alarms ``steps`` asks for on ``endpoint``: per variant, errors then p99. No call."""
    specs: list[AlarmSpec] = []
    for variant in variants:
        if steps.max_error_rate is not None:
            specs.append(
                AlarmSpec(
                    f"{alarm_prefix(endpoint)}{variant}-errors",
                    variant,
                    "errors",
                    steps.max_error_rate / 100.0,
                    f"5XX > {steps.max_error_rate:g}%",
                )
            )
        if steps.max_p99 is not None:
            specs.append(
                AlarmSpec(
                    f"{alarm_prefix(endpoint)}{variant}-p99",
                    variant,
                    "p99",
                    steps.max_p99 * _MICROSECONDS,
                    f"p99 > {steps.max_p99 * 1000:g} ms",
                )
            )
    return tuple(specs)


def evaluation_periods(wait: float) -> int:
    """Breaching minutes in a row that set an alarm off: 2, or 1 when a step waits less than 2 minutes."""
    return 2 if wait >= 2 * _PERIOD_SECONDS else 1


class RolloutAlarms:
    """Creates, finds, reads and deletes an endpoint's rollout alarms through the adapter's CloudWatch client."""

    def __init__(self, api: SageMakerApi) -> None:
        self._api = api

    def _call(self, operation: str, subject: str, **params: Any) -> Any:
        return self._api.caller.call(self._api.client("cloudwatch"), operation, subject, **params)

    def put(
        self,
        specs: Sequence[AlarmSpec],
        *,
        endpoint: str,
        config_name: str,
        wait: float,
        tags: Mapping[str, str],
    ) -> None:
        """Create or overwrite each alarm (PutMetricAlarm, idempotent) to watch the fleet of ``config_name``."""
        alarm_tags = {**tags, MANAGED_BY_TAG: MANAGED_BY_VALUE, ALARM_ENDPOINT_TAG: endpoint}
        for spec in specs:
            params = spec.put_params(
                endpoint=endpoint,
                config_name=config_name,
                evaluation_periods=evaluation_periods(wait),
                tags=alarm_tags,
            )
            self._call("put_metric_alarm", f"alarm {spec.name}", **params)

    def find(self, endpoint: str) -> list[str]:
        """Names of the managed rollout alarms of ``endpoint``, sorted. Read-only.

        An alarm counts when it is named ``endpointkit-<endpoint>-``, watches ``AWS/SageMaker`` metrics of that
        endpoint (so ``endpointkit-a-b-...`` of endpoint ``a-b`` is not endpoint ``a``'s) and is tagged
        ``managed-by=endpointkit`` for that endpoint.
        """
        found: list[str] = []
        params: dict[str, Any] = {
            "AlarmNamePrefix": alarm_prefix(endpoint),
            "AlarmTypes": ["MetricAlarm"],
            "MaxRecords": _DESCRIBE_PAGE,
        }
        while True:
            page = self._call("describe_alarms", f"alarms of endpoint {endpoint}", **params)
            for alarm in page.get("MetricAlarms") or ():
                dimensions = {d.get("Name"): d.get("Value") for d in alarm.get("Dimensions") or ()}
                if (
                    alarm.get("Namespace") == NAMESPACE
                    and dimensions.get("EndpointName") == endpoint
                    and self._is_ours(str(alarm["AlarmArn"]), endpoint)
                ):
                    found.append(str(alarm["AlarmName"]))
            if not page.get("NextToken"):
                return sorted(found)
            params["NextToken"] = page["NextToken"]

    def _is_ours(self, arn: str, endpoint: str) -> bool:
        try:
            response = self._call("list_tags_for_resource", arn, ResourceARN=arn)
        except NotFoundError:
            return False
        tags = {tag["Key"]: tag["Value"] for tag in response.get("Tags") or ()}
        return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE and tags.get(ALARM_ENDPOINT_TAG) == endpoint

    def delete(self, names: Sequence[str]) -> None:
        """Delete the alarms ``names`` (found just before); one already gone meanwhile is fine."""
        for start in range(0, len(names), _DELETE_BATCH):
            batch = list(names[start : start + _DELETE_BATCH])
            try:
                self._call("delete_alarms", f"alarms {', '.join(batch)}", AlarmNames=batch)
            except NotFoundError:
                # DeleteAlarms deletes nothing when one name is missing: delete them one by one.
                for name in batch:
                    try:
                        self._call("delete_alarms", f"alarm {name}", AlarmNames=[name])
                    except NotFoundError:
                        continue

    def delete_all(self, endpoint: str) -> None:
        """Delete every managed rollout alarm of ``endpoint`` (:meth:`find`)."""
        self.delete(self.find(endpoint))

    def firing(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """``(name, state reason)`` of each alarm of ``names`` in the ALARM state, in the order given."""
        if not names:
            return []
        response = self._call(
            "describe_alarms", f"alarms {', '.join(names)}", AlarmNames=list(names), MaxRecords=_DESCRIBE_PAGE
        )
        states = {
            str(alarm["AlarmName"]): str(alarm.get("StateReason") or "")
            for alarm in response.get("MetricAlarms") or ()
            if alarm.get("StateValue") == "ALARM"
        }
        return [(name, states[name]) for name in names if name in states]
