"""SageMaker's endpoint vocabulary mapped into endpointkit's, and the waits on an endpoint's status."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from endpointkit._endpoint_state import decode_expiry
from endpointkit._wait import Progress, wait_for
from endpointkit.adapters.base import (
    EXPIRES_AT_TAG,
    SPEC_HASH_TAG,
    EndpointState,
    EndpointStatus,
    VariantState,
)
from endpointkit.adapters.sagemaker._errors import error_from_failure_reason

__all__ = [
    "FAILED",
    "MOVING",
    "STATUS_MAP",
    "Description",
    "EndpointWaiter",
    "endpoint_state",
    "runtime_url",
    "summary_state",
    "tag_list",
]

Description = dict[str, Any]
"""A DescribeEndpoint / DescribeEndpointConfig / DescribeModel answer."""

# EndpointStatus enum of botocore's sagemaker service-2.json; meanings in API_DescribeEndpoint.
STATUS_MAP: Mapping[str, EndpointStatus] = {
    "Creating": EndpointStatus.CREATING,
    "Updating": EndpointStatus.UPDATING,
    "SystemUpdating": EndpointStatus.UPDATING,
    "RollingBack": EndpointStatus.UPDATING,
    "InService": EndpointStatus.IN_SERVICE,
    "Deleting": EndpointStatus.DELETING,
    "Failed": EndpointStatus.FAILED,
    "OutOfService": EndpointStatus.FAILED,
    "UpdateRollbackFailed": EndpointStatus.FAILED,
}
FAILED = frozenset({"Failed", "OutOfService", "UpdateRollbackFailed"})
MOVING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """SageMaker's ``[{"Key": ..., "Value": ...}]`` form of a tag mapping, sorted by key."""
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def runtime_url(region: str, name: str) -> str:
    """The InvokeEndpoint URL of endpoint ``name`` in ``region``."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://runtime.sagemaker.{region}.{domain}/endpoints/{name}/invocations"


def summary_state(
    summary: Mapping[str, Any], tags: Mapping[str, str], *, target_name: str, region: str
) -> EndpointState:
    """The EndpointState of one ListEndpoints summary and the endpoint's tags (no variants: a summary has none)."""
    name = str(summary["EndpointName"])
    return EndpointState(
        name,
        target_name,
        "sagemaker",
        STATUS_MAP.get(str(summary.get("EndpointStatus")), EndpointStatus.UNKNOWN),
        url=runtime_url(region, name),
        spec_hash=tags.get(SPEC_HASH_TAG),
        region=region,
        expires_at=decode_expiry(tags.get(EXPIRES_AT_TAG), endpoint=name),
        extra={"arn": summary.get("EndpointArn")},
    )


def status_text(description: Description | None) -> str:
    """The status word a progress line shows."""
    return "NotFound" if description is None else str(description.get("EndpointStatus", "Unknown"))


def endpoint_state(
    name: str,
    description: Description | None,
    *,
    target_name: str,
    region: str,
    config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> EndpointState:
    """The EndpointState of a DescribeEndpoint answer, with instance types from its config and hashes from tags."""
    if description is None:
        return EndpointState(name, target_name, "sagemaker", EndpointStatus.NOT_FOUND, region=region)
    config = config or {}
    tags = tags or {}
    declared = {variant["VariantName"]: variant for variant in config.get("ProductionVariants", [])}
    variants = []
    for summary in description.get("ProductionVariants", []):
        statuses = summary.get("VariantStatus") or []
        variants.append(
            VariantState(
                summary["VariantName"],
                declared.get(summary["VariantName"], {}).get("InstanceType"),
                int(summary.get("CurrentInstanceCount", summary.get("DesiredInstanceCount", 0)) or 0),
                float(summary.get("CurrentWeight", summary.get("DesiredWeight", 0.0)) or 0.0),
                statuses[0].get("Status") if statuses else None,
            )
        )
    mode = "serverless" if any("ServerlessConfig" in variant for variant in declared.values()) else "realtime"
    extra: dict[str, Any] = {}
    if config.get("AsyncInferenceConfig"):
        mode = "async"
        # Where InvokeEndpointAsync writes results: the async invoke of an adapter without a spec needs them.
        output = config["AsyncInferenceConfig"].get("OutputConfig") or {}
        extra["async_output_path"] = output.get("S3OutputPath")
        extra["async_failure_path"] = output.get("S3FailurePath")
    models = sorted({variant.get("ModelName", "") for variant in declared.values()} - {""})
    return EndpointState(
        name,
        target_name,
        "sagemaker",
        STATUS_MAP.get(str(description.get("EndpointStatus")), EndpointStatus.UNKNOWN),
        url=runtime_url(region, name),
        variants=tuple(variants),
        reason=description.get("FailureReason"),
        spec_hash=tags.get(SPEC_HASH_TAG),
        region=region,
        expires_at=decode_expiry(tags.get(EXPIRES_AT_TAG), endpoint=name),
        extra={
            "arn": description.get("EndpointArn"),
            "config": description.get("EndpointConfigName"),
            "model": models[0] if len(models) == 1 else models,
            "mode": mode,
            **extra,
        },
    )


class EndpointWaiter:
    """Bounded waits on DescribeEndpoint with backoff and progress (``endpointkit._wait.wait_for``)."""

    def __init__(
        self,
        describe: Callable[[str], Description | None],
        state: Callable[[str, Description | None], EndpointState],
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        failure_logs: Callable[[str], list[str]] = lambda _name: [],
    ) -> None:
        self._describe = describe
        self._state = state
        self._sleep = sleep
        self._clock = clock
        # the last log lines of a Failed endpoint, best effort (CloudWatch): they say why the container died
        self._failure_logs = failure_logs

    def wait(
        self,
        name: str,
        *,
        first_status: str,
        done: Callable[[Description | None], bool],
        failure: Callable[[Description | None], Exception | None] = lambda _: None,
        timeout: float,
        progress: Progress | None,
    ) -> Description | None:
        """Poll until ``done``; ``failure`` ends the wait at once; ProvisionTimeout after ``timeout`` seconds.

        The endpoint has just been told to change, so its first state (``first_status``) is reported without a
        call; the first DescribeEndpoint follows after 1 s, then the delay doubles up to 30 s.
        """
        pending: list[Description] = [
            {"EndpointName": name, "EndpointStatus": first_status, "_synthetic": True}
        ]

        def poll() -> Description | None:
            return pending.pop() if pending else self._describe(name)

        return wait_for(
            poll,
            done=lambda d: not (d or {}).get("_synthetic") and done(d),
            failure=lambda d: None if (d or {}).get("_synthetic") else failure(d),
            describe=status_text,
            subject=f"endpoint {name}",
            timeout=max(timeout, 0.0),
            progress=progress,
            first_delay=1.0,
            max_delay=30.0,
            last_state=lambda d: self._state(name, d),
            sleep=self._sleep,
            clock=self._clock,
        )

    def serving(
        self,
        name: str,
        config_name: str,
        *,
        operation: str,
        instance_types: tuple[str, ...],
        deadline: float,
        progress: Progress | None,
    ) -> None:
        """Wait until the endpoint is InService on ``config_name`` (until the ``deadline`` of ``clock``).

        A Failed endpoint, or an update that SageMaker rolled back (InService again on the old config after
        being seen Updating), raises at once the error its FailureReason describes.
        """
        seen_moving = False

        def failure(description: Description | None) -> Exception | None:
            nonlocal seen_moving
            if description is None:
                return None
            status = description.get("EndpointStatus")
            seen_moving = seen_moving or status in MOVING
            rolled_back = (
                operation == "update"
                and seen_moving
                and status == "InService"
                and description.get("EndpointConfigName") != config_name
            )
            if status in FAILED or rolled_back:
                reason = description.get("FailureReason") or f"the update to {config_name} was rolled back"
                return error_from_failure_reason(
                    reason,
                    endpoint=name,
                    operation=operation,
                    instance_types=instance_types,
                    log_lines=self._failure_logs(name),
                )
            return None

        self.wait(
            name,
            first_status="Creating" if operation == "create" else "Updating",
            done=lambda d: (
                d is not None
                and d.get("EndpointStatus") == "InService"
                and d.get("EndpointConfigName") == config_name
            ),
            failure=failure,
            timeout=deadline - self._clock(),
            progress=progress,
        )
