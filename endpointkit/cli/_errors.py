"""Exit codes, and how an error becomes a message, a JSON document and an exit code."""

from __future__ import annotations

from typing import Any

from endpointkit import fleet
from endpointkit.errors import (
    EndpointKitError,
    InvalidRequestError,
    PayloadError,
    ProviderError,
    ProvisionTimeout,
    SpecError,
    UnsupportedCapabilityError,
)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """Bad command-line usage: exit 2 with the message."""


class CostLimitExceeded(_UsageError):
    """``apply --max-hourly-cost`` refused a plan: its estimate is above the limit, or unknown."""

    def __init__(self, message: str, *, estimate: float | None, limit: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


def _exit_code(error: BaseException) -> int:
    if isinstance(
        error, (SpecError, PayloadError, InvalidRequestError, UnsupportedCapabilityError, _UsageError)
    ):
        return EXIT_BAD_INPUT
    if isinstance(error, ProvisionTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, (KeyboardInterrupt, fleet.FleetCancelled)):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def _error_document(error: BaseException) -> dict[str, Any]:
    # the private usage error class is "UsageError" to scripts
    document: dict[str, Any] = {"error": type(error).__name__.lstrip("_"), "message": str(error)}
    for attribute in (
        "field",
        "line",
        "offset",
        "provider",
        "operation",
        "code",
        "retryable",
        "missing",
        "estimate",
        "limit",
    ):
        value = getattr(error, attribute, None)
        if value not in (None, "", {}):
            document[attribute] = value
    return document


def _message(error: BaseException) -> str:
    if isinstance(error, ProviderError) and error.code:
        return f"{error} [{error.provider} {error.operation}: {error.code}]"
    if isinstance(error, (EndpointKitError, _UsageError, fleet.FleetCancelled)):
        return str(error)
    # An unexpected error inside one fleet job: name its type, since there is no traceback to read.
    return f"{type(error).__name__}: {error}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in _message(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
