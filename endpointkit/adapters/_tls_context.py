"""Which CAs an HTTPS client trusts, and the TLS contexts that verify with them.

One reading of the CA bundle variables for every transport (HTTP, asyncio HTTP and gRPC): the endpoint's own CA
when it has one; else the bundle named by ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE``, read in
that order (requests' own order, ``requests/sessions.py`` ``merge_environment_settings``, then OpenSSL's
variable); else the system trust store. A bundle replaces the system store rather than adding to it, as it does
for requests and curl. Verification is always on: certificate chain and host name.

Building a context parses every trusted certificate (milliseconds for a system store), so contexts are cached per
CA; an ``ssl.SSLContext`` is safe to share between threads once configured.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

from endpointkit.errors import ProviderError

__all__ = ["CA_BUNDLE_VARIABLES", "client_context", "environment_bundle", "read_environment_bundle"]

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
"""Environment variables naming a CA bundle, in the order they are read."""

# The HTTP transports speak HTTP/1.1 only: saying so in ALPN keeps a gateway that also serves HTTP/2 (for gRPC)
# from choosing h2 for them (RFC 7301; http.client does the same for the contexts it makes itself).
_ALPN_PROTOCOLS = ["http/1.1"]
_CACHED_CONTEXTS = 16


def environment_bundle() -> tuple[str, str] | None:
    """``(variable, path)`` of the first CA bundle variable that is set and not empty, or None."""
    for variable in CA_BUNDLE_VARIABLES:
        path = os.environ.get(variable)
        if path:
            return variable, path
    return None


def read_environment_bundle(*, provider: str = "tls", operation: str = "connect") -> bytes | None:
    """The PEM bytes of the bundle a CA bundle variable names, or None when none is set.

    Raises:
        ProviderError: the named file cannot be read (``code="CaBundleUnreadable"``); the message names the
            variable and the file.
    """
    named = environment_bundle()
    if named is None:
        return None
    variable, path = named
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise _unreadable(variable, path, error, provider=provider, operation=operation) from None


def client_context(ca_pem: str | None, *, provider: str = "tls") -> ssl.SSLContext:
    """A client TLS context that verifies the server's chain and host name. Cached per CA; thread-safe.

    Args:
        ca_pem: PEM of the CA (or CAs) to trust alone, such as the endpoint's own CA; None: the bundle a CA bundle
            variable names, else the system trust store.
        provider: the ``provider`` an error carries.

    Raises:
        ProviderError: a CA bundle variable names a file that cannot be read or holds no certificate
            (``code="CaBundleUnreadable"``), or ``ca_pem`` is not a PEM certificate
            (``code="CaCertificateInvalid"``).
    """
    if ca_pem:
        return _context_for_pem(ca_pem, provider)
    named = environment_bundle()
    if named is None:
        return _system_context()
    variable, path = named
    try:
        status = os.stat(path)
    except OSError as error:
        raise _unreadable(variable, path, error, provider=provider, operation="connect") from None
    # The file's size and time are in the key: a bundle rewritten in place is read again.
    return _context_for_bundle(variable, path, status.st_mtime_ns, status.st_size, provider)


@functools.lru_cache(maxsize=_CACHED_CONTEXTS)
def _context_for_pem(ca_pem: str, provider: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as error:
        raise ProviderError(
            f"the endpoint's CA certificate is not a PEM certificate ({error}); run `endpointkit apply` again to "
            "record it",
            provider=provider,
            operation="connect",
            code="CaCertificateInvalid",
        ) from None
    return _finished(context)


@functools.lru_cache(maxsize=_CACHED_CONTEXTS)
def _context_for_bundle(variable: str, path: str, mtime_ns: int, size: int, provider: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise _unreadable(variable, path, error, provider=provider, operation="connect") from None
    return _finished(context)


@functools.lru_cache(maxsize=1)
def _system_context() -> ssl.SSLContext:
    return _finished(ssl.create_default_context())


def _finished(context: ssl.SSLContext) -> ssl.SSLContext:
    # create_default_context() sets both already; said again here so no later change can loosen them.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.set_alpn_protocols(_ALPN_PROTOCOLS)
    return context


def _unreadable(
    variable: str, path: str, error: Exception, *, provider: str, operation: str
) -> ProviderError:
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
    return ProviderError(
        f"{variable} names the CA bundle {path}, which cannot be read: {reason}; point {variable} at a PEM file "
        "of CA certificates, or unset it to use the system trust store",
        provider=provider,
        operation=operation,
        code="CaBundleUnreadable",
    )
