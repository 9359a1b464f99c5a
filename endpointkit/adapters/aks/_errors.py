"""The one place where Azure and Kubernetes errors become ``endpointkit.errors``, and the one retry policy.

Azure (azure-core) errors carry an HTTP status and an ARM error code; Kubernetes (``ApiException``) errors
carry a status and a ``Status`` body. Both map onto the same tree:

- ``QuotaExceeded``, quota-worded ``OperationNotAllowed``, vCPU quota codes, and Kubernetes ResourceQuota
  refusals → :class:`QuotaError`, naming the quota;
- ``AllocationFailed``, ``ZonalAllocationFailed``, ``SkuNotAvailable``, over-constrained allocations →
  :class:`CapacityError`;
- 401/403 → :class:`AuthError`; 404 → :class:`NotFoundError`; 409 → :class:`ConflictError`;
- 429, 5xx and connection failures → :class:`ProviderError` with ``retryable=True``, which :func:`with_retries`
  retries (tenacity, exponential backoff with jitter, bounded in attempts and seconds).

ARM error codes: https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from endpointkit.errors import (
    AuthError,
    CapacityError,
    ConflictError,
    EndpointKitError,
    NotFoundError,
    ProviderError,
    QuotaError,
)

__all__ = ["PollPolicy", "RetryPolicy", "_map_errors", "translate", "with_retries"]

logger = logging.getLogger("endpointkit.aks")
T = TypeVar("T")

_QUOTA_CODES = frozenset(
    {
        "QuotaExceeded",
        "InsufficientVCPUQuota",
        "ErrCode_InsufficientVCPUQuota",
        "OperationNotAllowedQuota",
        "PublicIPCountLimitReached",
        "SubscriptionRequestsThrottled_Quota",
    }
)
_CAPACITY_CODES = frozenset(
    {
        "AllocationFailed",
        "ZonalAllocationFailed",
        "SkuNotAvailable",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "AllocationFailedVMSizeNotAvailable",
    }
)
_AUTH_CODES = frozenset({"AuthorizationFailed", "InvalidAuthenticationToken", "AuthenticationFailed"})

# "…exceeding approved standardNCASv3_T4Family Cores quota. Additional details - … Current Limit: 0, …"
_APPROVED_QUOTA = re.compile(r"approved (?P<name>[\w .-]+?) quota", re.IGNORECASE)
_REGIONAL_QUOTA = re.compile(r"(?P<name>regional vcpu) quota", re.IGNORECASE)
_LIMIT = re.compile(r"Current Limit: (?P<limit>\d+)", re.IGNORECASE)
_REQUIRED = re.compile(r"Additional Required: (?P<required>\d+)", re.IGNORECASE)
_KUBE_QUOTA = re.compile(r"exceeded quota: (?P<name>[\w.-]+)")
_QUOTA_HELP = "request an increase: https://learn.microsoft.com/azure/quotas/per-vm-quota-requests"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retries of retryable errors: at most ``attempts`` calls and ``max_seconds`` in total."""

    attempts: int = 5
    max_seconds: float = 120.0
    initial_wait: float = 1.0
    max_wait: float = 20.0


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Delays between polls of a wait: ``first``, then doubling up to ``most`` (the wait's timeout bounds it)."""

    first: float = 5.0
    most: float = 15.0


@contextlib.contextmanager
def _map_errors(provider: str, operation: str) -> Iterator[None]:
    """Turn any Azure or Kubernetes SDK error raised inside the block into an ``endpointkit.errors`` error."""
    try:
        yield
    except EndpointKitError:
        raise
    except Exception as exc:
        mapped = translate(exc, provider=provider, operation=operation)
        if mapped is None:
            raise
        raise mapped from exc


def with_retries(call: Callable[[], T], *, policy: RetryPolicy, provider: str, operation: str) -> T:
    """Run ``call`` with errors mapped; retry it while it fails with a retryable error, within ``policy``."""

    def attempt() -> T:
        with _map_errors(provider, operation):
            return call()

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.warning("%s: %s; retrying (attempt %d)", operation, error, state.attempt_number)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_after_delay(policy.max_seconds),
        wait=tenacity.wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait)
        + tenacity.wait_random(0, policy.initial_wait),
        retry=tenacity.retry_if_exception(lambda error: isinstance(error, ProviderError) and error.retryable),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(attempt)


def translate(exc: BaseException, *, provider: str, operation: str) -> EndpointKitError | None:
    """The ``endpointkit`` error for an SDK exception, or None when ``exc`` is not an SDK error."""
    module = type(exc).__module__
    if module.startswith("azure."):
        return _from_azure(exc, operation)
    if module.startswith("kubernetes."):
        return _from_kubernetes(exc, operation)
    if module.startswith("urllib3.") or isinstance(exc, ConnectionError | TimeoutError):
        return ProviderError(
            f"{operation}: cannot reach the {provider} API: {exc}",
            provider=provider,
            operation=operation,
            code="ConnectionError",
            retryable=True,
        )
    return None


# --------------------------------------------------------------------------------------------------- Azure


def _from_azure(exc: BaseException, operation: str) -> EndpointKitError:
    status: int | None = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code: str | None = getattr(error, "code", None) or None
    message = str(getattr(error, "message", None) or getattr(exc, "message", None) or exc).strip()
    message = message.splitlines()[0] if code is None and message else message
    kind = type(exc).__name__
    text = f"{operation}: {code + ': ' if code else ''}{message}"
    details: dict[str, Any] = {"status": status}
    options: dict[str, Any] = {"provider": "azure", "operation": operation, "code": code or kind}
    if kind in (
        "ServiceRequestError",
        "ServiceResponseError",
        "ServiceRequestTimeoutError",
        "ServiceResponseTimeoutError",
        "IncompleteReadError",
    ):
        return ProviderError(f"{operation}: cannot reach Azure: {message}", retryable=True, **options)
    if (
        kind in ("ClientAuthenticationError", "CredentialUnavailableError")
        or status in (401, 403)
        or (code in _AUTH_CODES)
    ):
        return AuthError(
            f"{text} (check the credential: az login, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
            "and its role on the subscription)",
            details=details,
            **options,
        )
    if code in _QUOTA_CODES or (code == "OperationNotAllowed" and "quota" in message.lower()):
        quota = _quota_name(message) or code
        details["quota"] = quota
        return QuotaError(
            f"{operation}: Azure quota '{quota}' is exhausted: {_QUOTA_HELP}; Azure said: {message}",
            details=details,
            **options,
        )
    if code in _CAPACITY_CODES:
        return CapacityError(
            f"{text} (Azure has no capacity for this VM size right now: try another region or size, or retry later)",
            details=details,
            **options,
        )
    if kind == "ResourceNotFoundError" or status == 404:
        return NotFoundError(text, details=details, **options)
    if kind == "ResourceExistsError" or status == 409:
        return ConflictError(text, details=details, **options)
    retryable = status is not None and (status == 429 or status >= 500)
    return ProviderError(text, retryable=retryable, details=details, **options)


def _quota_name(message: str) -> str | None:
    match = _APPROVED_QUOTA.search(message) or _REGIONAL_QUOTA.search(message)
    if match is None:
        return None
    name = match.group("name").strip()
    limit, required = _LIMIT.search(message), _REQUIRED.search(message)
    if limit and required:
        name += f" (limit {limit.group('limit')}, {required.group('required')} more needed)"
    return name


# ---------------------------------------------------------------------------------------------- Kubernetes


def _from_kubernetes(exc: BaseException, operation: str) -> EndpointKitError:
    status = int(getattr(exc, "status", 0) or 0)
    reason, message = _kubernetes_status(exc)
    text = f"{operation}: {reason + ': ' if reason else ''}{message}"
    options: dict[str, Any] = {
        "provider": "kubernetes",
        "operation": operation,
        "code": reason or str(status),
        "details": {"status": status},
    }
    if type(exc).__name__ == "ConfigException":
        return AuthError(f"{operation}: the cluster's kubeconfig cannot be used: {exc}", **options)
    if status == 0:
        return ProviderError(
            f"{operation}: cannot reach the Kubernetes API: {message}", retryable=True, **options
        )
    quota = _KUBE_QUOTA.search(message)
    if status == 403 and quota is not None:
        options["details"]["quota"] = quota.group("name")
        return QuotaError(
            f"{operation}: namespace ResourceQuota '{quota.group('name')}' is exhausted: {message}", **options
        )
    if status in (401, 403):
        return AuthError(text, **options)
    if status == 404:
        return NotFoundError(text, **options)
    if status == 409:
        return ConflictError(text, **options)
    return ProviderError(text, retryable=status == 429 or status >= 500, **options)


def _kubernetes_status(exc: BaseException) -> tuple[str, str]:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return str(parsed.get("reason") or ""), str(parsed.get("message") or body)
    reason = str(getattr(exc, "reason", "") or "")
    return "", str(body or reason or exc).strip()
