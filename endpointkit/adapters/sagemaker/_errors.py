"""The one place where botocore errors become endpointkit errors, and the retry policy around every AWS call.

Retries are ours, not botocore's: the clients are built with botocore retries off (see ``_clients.py``) so that
a call's attempts are counted and bounded here, and so that tests injecting faults at the botocore layer see
exactly one attempt per call. Only throttling, 5xx and connection faults are retried.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import tenacity

from endpointkit._lazy import require
from endpointkit.errors import (
    AuthError,
    CapacityError,
    ConflictError,
    EndpointKitError,
    NotFoundError,
    ProviderError,
    QuotaError,
)

__all__ = ["ALREADY_EXISTS", "Caller", "error_from_failure_reason", "quota_help"]

logger = logging.getLogger("endpointkit.sagemaker")

PROVIDER = "sagemaker"
ALREADY_EXISTS = "AlreadyExists"
"""``ProviderError.code`` of a ConflictError raised for "Cannot create already existing ..."."""

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "ConcurrentUpdateException",  # Application Auto Scaling: another change to the same target is running
        "ModelNotReadyException",  # sagemaker-runtime: the container is still starting
    }
)
_SERVER_CODES = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "InternalError",
    }
)
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "NotAuthorized",
        "403",
    }
)
_QUOTA_CODES = frozenset({"ResourceLimitExceeded", "LimitExceededException", "ServiceQuotaExceededException"})
_CAPACITY_CODES = frozenset(
    {"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientCapacityException"}
)
_NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFound",
        "ResourceNotFoundException",  # CloudWatch Logs: a log group or stream that does not exist
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "404",
        "ObjectNotFoundException",
    }
)
# SageMaker answers ValidationException for almost everything; these words mean "it does not exist".
_NOT_FOUND_WORDS = re.compile(
    r"could not find|does not exist|not found|no scalable target found", re.IGNORECASE
)
_CAPACITY_WORDS = re.compile(
    r"unable to provision requested ML compute capacity|insufficient\s*(instance)?\s*capacity", re.IGNORECASE
)
_QUOTA_WORDS = re.compile(r"ResourceLimitExceeded|service limit|quota", re.IGNORECASE)
# "The account-level service limit 'ml.g5.xlarge for endpoint usage' is 0 Instances, ..."
_QUOTA_NAME = re.compile(r"limit '([^']+)'")
_ALREADY_EXISTS_WORDS = "cannot create already existing"


def quota_help(quota: str | None) -> str:
    """How to raise a SageMaker quota: the Service Quotas console and the AWS CLI."""
    name = quota or "the quota named in the message"
    return (
        f"raise '{name}' in the Service Quotas console "
        "(https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas) or with "
        f"`aws service-quotas list-service-quotas --service-code sagemaker --query \"Quotas[?QuotaName=='{name}']\"` "
        "to find its code, then `aws service-quotas request-service-quota-increase --service-code sagemaker "
        "--quota-code CODE --desired-value N`"
    )


def _quota_error(message: str, operation: str, code: str, instance_type: str | None) -> QuotaError:
    match = _QUOTA_NAME.search(message)
    quota = match.group(1) if match else (f"{instance_type} for endpoint usage" if instance_type else None)
    return QuotaError(
        f"SageMaker quota {quota or '(unnamed)'} is exhausted: {message}; {quota_help(quota)}",
        provider=PROVIDER,
        operation=operation,
        code=code,
        details={"quota": quota},
    )


def error_from_failure_reason(
    reason: str | None,
    *,
    endpoint: str,
    operation: str,
    instance_types: tuple[str, ...] = (),
    log_lines: Sequence[str] = (),
) -> ProviderError:
    """The error for an endpoint that went Failed, chosen from SageMaker's FailureReason text.

    ``log_lines`` (the container's last lines, from CloudWatch) follow the reason in the message and are in
    ``details["log_lines"]``.
    """
    text = reason or "SageMaker gave no FailureReason"
    types = ", ".join(instance_types)
    lines = "".join(f"\n  {line}" for line in log_lines)
    shown = f"{text}\nlast log lines:{lines}" if log_lines else text
    logged = {"log_lines": list(log_lines)} if log_lines else {}
    if _CAPACITY_WORDS.search(text):
        return CapacityError(
            f"endpoint {endpoint} failed: no capacity for {types or 'the instance type'}: {shown}",
            provider=PROVIDER,
            operation=operation,
            code="InsufficientCapacity",
            details={"reason": text, "instance_types": list(instance_types), **logged},
        )
    if _QUOTA_WORDS.search(text):
        quota = _quota_error(f"endpoint {endpoint} failed: {text}", operation, "ResourceLimitExceeded", None)
        quota.details.update(logged)
        return quota
    return ProviderError(
        f"endpoint {endpoint} failed: {shown}",
        provider=PROVIDER,
        operation=operation,
        code="EndpointFailed",
        details={"reason": text, **logged},
    )


def _model_error(response: dict[str, Any], message: str, operation: str, subject: str) -> ProviderError:
    # sagemaker-runtime wraps the container's answer in ModelError (HTTP 424); the container's own status and
    # body are modeled members of the error (botocore sagemaker-runtime service-2.json, shape ModelError).
    status = response.get("OriginalStatusCode")
    original = response.get("OriginalMessage") or ""
    log_stream = response.get("LogStreamArn")
    triton_message = original
    with contextlib.suppress(ValueError, TypeError):
        parsed = orjson.loads(original)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            triton_message = parsed["error"]
    error_class = NotFoundError if status == 404 else ProviderError
    where = f"; container logs: {log_stream}" if log_stream else ""
    return error_class(
        f"{subject} answered {status}: {triton_message or message}{where}",
        provider=PROVIDER,
        operation=operation,
        code=str(status) if status is not None else "ModelError",
        retryable=status in (429, 503),
        details={
            "original_status_code": status,
            "original_message": original,
            "log_stream_arn": log_stream,
            "message": message,
        },
    )


def _from_client_error(exc: Any, operation: str, subject: str, instance_type: str | None) -> ProviderError:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or exc)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    text = f"{operation} {subject}: {message} ({code or status})"
    if code == "ModelError":
        return _model_error(response, message, operation, subject)
    if code in _QUOTA_CODES:
        return _quota_error(message, operation, code, instance_type)
    if code in _CAPACITY_CODES or _CAPACITY_WORDS.search(message):
        return CapacityError(
            f"no SageMaker capacity: {text}", provider=PROVIDER, operation=operation, code=code
        )
    if code in _THROTTLING_CODES or status == 429:
        return ProviderError(
            f"throttled: {text}", provider=PROVIDER, operation=operation, code=code, retryable=True
        )
    if code in _AUTH_CODES or status == 403:
        return AuthError(
            f"AWS refused the credentials or permission: {text}; check AWS_PROFILE / AWS_ACCESS_KEY_ID, that the "
            "session has not expired, and that the identity may call this action",
            provider=PROVIDER,
            operation=operation,
            code=code,
        )
    if _ALREADY_EXISTS_WORDS in message.lower():
        return ConflictError(text, provider=PROVIDER, operation=operation, code=ALREADY_EXISTS)
    if (
        code in _NOT_FOUND_CODES
        or status == 404
        or (code.startswith("Validation") and _NOT_FOUND_WORDS.search(message))
    ):
        return NotFoundError(text, provider=PROVIDER, operation=operation, code=code or "404")
    if code in _SERVER_CODES or (isinstance(status, int) and status >= 500):
        return ProviderError(
            f"AWS server error: {text}", provider=PROVIDER, operation=operation, code=code, retryable=True
        )
    return ProviderError(text, provider=PROVIDER, operation=operation, code=code or None)


def _map_exception(
    exc: BaseException, operation: str, subject: str, instance_type: str | None
) -> ProviderError | None:
    exceptions = require("botocore.exceptions", extra="sagemaker")
    if isinstance(exc, exceptions.ClientError):
        return _from_client_error(exc, operation, subject, instance_type)
    if isinstance(exc, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
        return AuthError(
            f"{operation} {subject}: no AWS credentials found ({exc}); set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run `aws sso login`",
            provider=PROVIDER,
            operation=operation,
            code=type(exc).__name__,
        )
    if isinstance(exc, exceptions.NoRegionError):
        return ProviderError(
            f"{operation} {subject}: {exc}", provider=PROVIDER, operation=operation, code="NoRegion"
        )
    if isinstance(exc, (exceptions.ConnectionError, exceptions.HTTPClientError)):
        return ProviderError(
            f"{operation} {subject}: connection failed: {exc}",
            provider=PROVIDER,
            operation=operation,
            code=type(exc).__name__,
            retryable=True,
        )
    if isinstance(exc, exceptions.ParamValidationError):
        return ProviderError(
            f"{operation} {subject}: {exc}", provider=PROVIDER, operation=operation, code="ParamValidation"
        )
    # boto3's transfer manager wraps the ClientError of a failed upload in S3UploadFailedError.
    cause = exc.__cause__ or exc.__context__
    if type(exc).__name__ == "S3UploadFailedError" and cause is not None:
        return _map_exception(cause, operation, subject, instance_type)
    return None


@contextlib.contextmanager
def _map_errors(operation: str, subject: str = "", *, instance_type: str | None = None) -> Iterator[None]:
    """Turn botocore errors raised inside the block into the endpointkit error tree.

    Args:
        operation: the API operation, for the message and ``ProviderError.operation``.
        subject: what the call was about (``endpoint my-endpoint``), for the message.
        instance_type: the instance type involved, to name the quota when SageMaker does not.
    """
    try:
        yield
    except EndpointKitError:
        raise
    except Exception as exc:
        mapped = _map_exception(exc, operation, subject, instance_type)
        if mapped is None:
            raise
        raise mapped from exc


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


class Caller:
    """Calls AWS operations with mapped errors and bounded retries (exponential backoff with full jitter).

    ``max_attempts`` counts every attempt of one call (8 survives 7 consecutive throttles); ``max_seconds``
    bounds the time one call may spend retrying.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 8,
        max_seconds: float = 120.0,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_attempts = max_attempts
        self.max_seconds = max_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    def run(
        self,
        function: Callable[[], Any],
        operation: str,
        subject: str = "",
        *,
        instance_type: str | None = None,
    ) -> Any:
        """Run ``function`` (one AWS call) under :func:`_map_errors` and the retry policy."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_after_delay(self.max_seconds),
            wait=tenacity.wait_random_exponential(multiplier=self.base_delay, max=self.max_delay),
            retry=tenacity.retry_if_exception(_retryable),
            sleep=self.sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        for attempt in retrying:
            with attempt, _map_errors(operation, subject, instance_type=instance_type):
                return function()
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    def call(
        self,
        client: Any,
        operation: str,
        subject: str = "",
        *,
        instance_type: str | None = None,
        **params: Any,
    ) -> Any:
        """``client.<operation>(**params)`` with mapped errors and retries; returns the parsed response."""
        method = getattr(client, operation)
        return self.run(lambda: method(**params), operation, subject, instance_type=instance_type)


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    logger.info("retrying in %.1fs after attempt %d: %s", delay, state.attempt_number, error)
