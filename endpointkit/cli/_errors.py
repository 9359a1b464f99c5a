"""How an error reads: one message line for stderr, a JSON document for ``--json``. Exit codes: ``errors``."""

from __future__ import annotations

from typing import Any

from endpointkit.errors import EndpointKitError, ProviderError

_DOCUMENTED_ATTRIBUTES = (
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
    "check",
    "output",
    "detail",
    "subject",
)


def _error_document(error: BaseException) -> dict[str, Any]:
    document: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for attribute in _DOCUMENTED_ATTRIBUTES:
        value = getattr(error, attribute, None)
        if value not in (None, "", {}):
            document[attribute] = value
    return document


def _message(error: BaseException) -> str:
    if isinstance(error, ProviderError) and error.code:
        return f"{error} [{error.provider} {error.operation}: {error.code}]"
    if isinstance(error, EndpointKitError):
        return str(error)
    # An unexpected error inside one fleet job: name its type, since there is no traceback to read.
    return f"{type(error).__name__}: {error}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in _message(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
