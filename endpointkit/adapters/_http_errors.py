"""The one mapping of an HTTP transport failure into endpointkit's errors, shared by the blocking and the asyncio
transports (each maps first what only it can raise: http.client's IncompleteRead, the asyncio body errors)."""

from __future__ import annotations

import http.client
import ssl
from typing import TYPE_CHECKING

from endpointkit.errors import EndpointKitError, ProviderError

if TYPE_CHECKING:
    from endpointkit.adapters._http import Origin

__all__ = ["transport_error"]


def transport_error(
    error: BaseException, origin: Origin, *, provider: str, connecting: bool = False
) -> BaseException:
    """The error to raise for ``error``, met talking to ``origin``; ``error`` itself when it needs no mapping.

    Codes: ``ConnectTimeout`` and ``ConnectionRefused`` (retryable), ``Timeout`` (the request's deadline, not
    retried), ``TLSVerificationFailed`` naming the host and the verifier's reason (expired, hostname mismatch,
    unknown CA) and ``TLSError`` (neither retryable: trying again cannot fix a certificate), ``ConnectionReset``
    and ``ConnectionError`` (retryable), ``BadResponse``.
    """
    if isinstance(error, EndpointKitError) or not isinstance(error, Exception):
        return error

    def failure(message: str, code: str, retryable: bool) -> ProviderError:
        return ProviderError(message, provider=provider, operation="invoke", code=code, retryable=retryable)

    if isinstance(error, TimeoutError):
        if connecting:
            return failure(f"connecting to {origin} timed out", "ConnectTimeout", True)
        return failure(f"{origin} did not answer in time", "Timeout", False)
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason
        return failure(
            f"TLS certificate of {origin.host} not trusted: {reason}", "TLSVerificationFailed", False
        )
    if isinstance(error, ssl.SSLError):
        return failure(f"TLS with {origin} failed: {error.reason or error}", "TLSError", False)
    if isinstance(error, ConnectionRefusedError):
        return failure(f"{origin} refused the connection: is the server running?", "ConnectionRefused", True)
    if isinstance(error, ConnectionError):
        return failure(f"connection to {origin} failed: {error}", "ConnectionReset", True)
    if isinstance(error, http.client.HTTPException):
        return failure(f"{origin} sent a malformed response: {error!r}", "BadResponse", False)
    if isinstance(error, OSError):
        return failure(f"connection to {origin} failed: {error}", "ConnectionError", True)
    return error
