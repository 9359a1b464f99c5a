"""A gRPC transport to Triton's ``inference.GRPCInferenceService``: unary ``ModelInfer`` and streaming
``ModelStreamInfer``, blocking and asyncio, with the one mapping of gRPC status codes into endpointkit's errors.

- One :class:`GrpcConnection` per endpoint address. Its blocking channel is made on first use and shared by every
  thread; its ``grpc.aio`` channel is made on first use in an event loop (an aio channel belongs to the loop that
  made it, so another loop gets its own).
- Messages up to 2 GiB - 1 each way, Triton's own limit (``MAX_GRPC_MESSAGE_SIZE`` = INT32_MAX, server
  ``src/grpc/grpc_server.cc``; tritonclient sets the same on its channels): gRPC's default receive limit of
  4 MiB would refuse a 16 MiB tensor.
- Keep-alive pings every 60 s while calls are in flight, so a peer that vanished without closing the connection
  (a node gone, a load balancer that dropped the flow) fails the call within about 80 s instead of hanging it.
  No pings on an idle connection and at most two without data: Triton keeps gRPC's server defaults
  (``--grpc-keepalive-permit-without-calls=false``, ``--grpc-http2-min-recv-ping-interval-without-data-ms=300000``,
  ``--grpc-http2-max-ping-strikes=2``) and answers a third ping without data inside five minutes with GOAWAY
  ``too_many_pings`` (https://github.com/grpc/grpc/blob/master/doc/keepalive.md). gRPC core re-arms the timer on
  every read (https://github.com/grpc/grpc/pull/17893); against channels without keep-alive (tritonclient's
  default) that cost stayed within the run-to-run noise of ``benchmarks/grpc.py``.
- TLS: the server certificate is checked against the endpoint's own CA when it has one, else the bundle named by
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE``, else the system trust store
  (:func:`trusted_roots`, reading the variables as :mod:`~endpointkit.adapters._tls_context` does for HTTP).
- The endpoint key travels as call metadata (``triton-grpc-protocol-KEY``), which Triton's
  ``--grpc-restricted-protocol=inference:KEY=VALUE`` checks.
- grpcio hands over the bytes it received: the codec in ``endpointkit.payloads._grpc`` serializes requests
  (tensors copied once) and decodes responses (outputs are views of those bytes).

:func:`map_rpc_error` is the one place a ``grpc.RpcError`` becomes an endpointkit error; no gRPC exception leaves
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from endpointkit._lazy import require
from endpointkit.adapters._tls_context import CA_BUNDLE_VARIABLES, read_environment_bundle
from endpointkit.errors import AuthError, InvalidRequestError, ProviderError
from endpointkit.payloads import InferResponse
from endpointkit.payloads._grpc import (
    GrpcInferRequest,
    GrpcStreamMessage,
    decode_grpc_response,
    decode_grpc_stream_message,
)

__all__ = [
    "CA_BUNDLE_VARIABLES",
    "CHANNEL_OPTIONS",
    "RESTRICTED_KEY_PREFIX",
    "GrpcConnection",
    "map_rpc_error",
    "trusted_roots",
]

_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
_STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
_MAX_MESSAGE_BYTES = 2**31 - 1

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 2),
)
"""Options of every channel (see the module docstring for why each value)."""

RESTRICTED_KEY_PREFIX = "triton-grpc-protocol-"
"""Triton reads the key of ``--grpc-restricted-protocol=GROUPS:KEY=VALUE`` from the metadata named with this prefix
and KEY (server docs/customization_guide/inference_protocols.md, "Limit endpoint access")."""

# Triton refuses a call without the key of --grpc-restricted-protocol with UNAVAILABLE and this message
# (server src/grpc/infer_handler.cc and stream_infer_handler.cc, ExecutePrecondition).
_RESTRICTED_PREFIX = "This protocol is restricted"
# gRPC core reports a failed TLS handshake as UNAVAILABLE: only the text tells it from a server that is down.
_TLS_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "Ssl handshake failed", "Handshake failed")
# gRPC core checks the host name itself, after the handshake (seen with grpcio 1.85: "Custom verification check
# failed with error: UNAUTHENTICATED: Hostname Verification Check failed.").
_HOSTNAME_FAILURE = "Hostname Verification Check failed"
# BoringSSL's reason follows the error name: "...:CERTIFICATE_VERIFY_FAILED: certificate has expired: ..."
_VERIFY_REASON = re.compile(r"CERTIFICATE_VERIFY_FAILED: ([^:]+)")


def trusted_roots(ca_certificate: bytes | str | None = None) -> bytes | None:
    """The PEM roots a TLS channel verifies the server against.

    ``ca_certificate`` (the endpoint's own CA) when given; else the file named by a CA bundle variable
    (:data:`CA_BUNDLE_VARIABLES`, read as the HTTP transports read them); else the system trust store OpenSSL is
    configured with; ``None`` when there is none (gRPC then uses the roots it ships).

    Raises:
        ProviderError: a CA bundle variable names a file that cannot be read (``code="CaBundleUnreadable"``).
    """
    if ca_certificate:
        return ca_certificate.encode("ascii") if isinstance(ca_certificate, str) else bytes(ca_certificate)
    bundle = read_environment_bundle(provider="grpc", operation="connect")
    if bundle is not None:
        return bundle
    system = ssl.get_default_verify_paths().cafile
    if system:
        with contextlib.suppress(OSError):
            return Path(system).read_bytes()
    return None


def _server_name_options(server_name: str | None) -> tuple[tuple[str, str], ...]:
    """Channel options that make ``server_name`` the TLS name (SNI and the certificate check) and the calls'
    ``:authority``, for a channel whose address is another (a port-forward, ``connect_to``): a gateway routes by
    that authority. Both are gRPC core channel arguments (``GRPC_SSL_TARGET_NAME_OVERRIDE_ARG`` and
    ``GRPC_ARG_DEFAULT_AUTHORITY``, include/grpc/impl/channel_arg_names.h)."""
    if not server_name:
        return ()
    return (("grpc.ssl_target_name_override", server_name), ("grpc.default_authority", server_name))


def map_rpc_error(
    error: Exception,
    *,
    label: str,
    provider: str,
    operation: str = "invoke",
    model: str | None = None,
    timeout: float | None = None,
) -> ProviderError:
    """The endpointkit error for a failed gRPC call (``grpc.RpcError`` or ``grpc.aio.AioRpcError``).

    ``INVALID_ARGUMENT`` and ``NOT_FOUND`` (Triton's "unknown model") are :class:`InvalidRequestError`, as HTTP
    400 and Triton's 404 are; ``UNAUTHENTICATED``, ``PERMISSION_DENIED`` and Triton's restricted-protocol refusal
    are :class:`AuthError`; ``DEADLINE_EXCEEDED`` is ``ProviderError(code="Timeout")`` like an HTTP time-out;
    ``UNAVAILABLE`` is retryable (``code="ConnectionRefused"`` when nothing listens), except a failed TLS
    handshake (``code="TLSVerificationFailed"`` for a certificate refused, with the verifier's reason: untrusted,
    expired, not for the host; else ``"TLSError"``, as over HTTP). Every other status is a ``ProviderError`` whose
    ``code`` is the status name. The message names ``label`` (the endpoint or its address), the model and Triton's
    own words.
    """
    status = getattr(error, "code", lambda: None)()
    name = str(getattr(status, "name", "UNKNOWN"))
    details_method = getattr(error, "details", None)
    text = str((details_method() if callable(details_method) else None) or error)
    subject = label if model is None else f"{label} (model {model!r})"
    facts: dict[str, Any] = {"grpc_status": name, "model": model}
    options: dict[str, Any] = {"provider": provider, "operation": operation, "details": facts}
    if name == "DEADLINE_EXCEEDED":
        within = "" if timeout is None else f" within {timeout:g} s"
        return ProviderError(f"{subject} did not answer{within}: {text}", code="Timeout", **options)
    if name in ("INVALID_ARGUMENT", "NOT_FOUND"):
        return InvalidRequestError(f"{subject} refused the request: {text}", code=name, **options)
    if text.startswith(_RESTRICTED_PREFIX):
        return AuthError(
            f"{subject} refused the call: the endpoint key is missing or wrong ({text})",
            code="KeyRequired",
            **options,
        )
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return AuthError(f"{subject} refused the credentials: {text}", code=name, **options)
    if name == "UNAVAILABLE":
        if _HOSTNAME_FAILURE in text or any(marker in text for marker in _TLS_FAILURES):
            return _tls_error(text, label=label, options=options)
        refused = "Connection refused" in text
        return ProviderError(
            f"{label} is unavailable{': is the server running?' if refused else ''} ({text})",
            code="ConnectionRefused" if refused else name,
            retryable=True,
            **options,
        )
    return ProviderError(f"{subject} answered {name}: {text}", code=name, **options)


def _tls_error(text: str, *, label: str, options: dict[str, Any]) -> ProviderError:
    """A failed TLS handshake: ``TLSVerificationFailed`` with the verifier's reason when the certificate was not
    accepted (the HTTP transports' code, adapters/_http_errors.py, so callers test one name per cause), else
    ``TLSError``; neither retryable."""
    found = _VERIFY_REASON.search(text)
    if _HOSTNAME_FAILURE in text:
        reason = "Hostname mismatch, the certificate is not valid for the host it was called by"
    elif found:
        reason = found.group(1).strip()
    elif "CERTIFICATE_VERIFY_FAILED" in text:
        reason = "certificate verify failed"
    else:
        return ProviderError(f"TLS handshake with {label} failed: {text}", code="TLSError", **options)
    return ProviderError(
        f"TLS handshake with {label} failed: {reason}. The server's certificate must be valid now, cover the "
        f"host, and be signed by a CA this client trusts: the endpoint's CA, a bundle named by "
        f"{' or '.join(CA_BUNDLE_VARIABLES)}, or the system trust store ({text})",
        code="TLSVerificationFailed",
        **options,
    )


def _stream_error(message: GrpcStreamMessage, *, label: str, provider: str, model: str) -> ProviderError:
    """The error a streamed error message stands for: Triton refusing the request, or the model failing."""
    text = message.error or "unknown error"
    options: dict[str, Any] = {"provider": provider, "operation": "stream", "details": {"model": model}}
    if message.refused:
        return InvalidRequestError(
            f"{label} (model {model!r}) refused the request: {text}", code="Refused", **options
        )
    return ProviderError(f"{label}: model {model!r} failed mid-stream: {text}", code="ModelError", **options)


@dataclass(frozen=True, slots=True)
class _Stubs:
    """A channel and its two callables."""

    channel: Any
    infer: Any
    stream: Any


class _StreamReader:
    """Turns the messages of one stream into responses, and knows when every request has had its final one."""

    def __init__(self, requests: int, *, label: str, provider: str, model: str) -> None:
        self.remaining = requests
        self.label = label
        self.provider = provider
        self.model = model

    def read(self, data: bytes) -> InferResponse | None:
        """The response ``data`` carries; None for a flag-only final response.

        Raises:
            InvalidRequestError, ProviderError: the message is an error (see :func:`_stream_error`).
        """
        message = decode_grpc_stream_message(data)
        if message.error is not None:
            model = message.response.model_name or self.model
            raise _stream_error(message, label=self.label, provider=self.provider, model=model)
        if message.final:
            self.remaining -= 1
        return None if message.is_flag_only else message.response

    @property
    def done(self) -> bool:
        """True once every request sent has had its final response."""
        return self.remaining <= 0


def _serialize(request: GrpcInferRequest) -> bytes:
    return request.serialize()


class GrpcConnection:
    """gRPC calls to one Triton endpoint address, shared safely between threads (and event loops).

    Args:
        address: ``host:port`` of Triton's gRPC listener.
        provider: the ``provider`` errors carry (``"local"``, ``"aks"``).
        label: how errors name the endpoint (default: the address).
        tls: verify and encrypt with TLS (see :func:`trusted_roots` for the trust).
        ca_certificate: PEM of the CA that signed the endpoint's certificate, when the endpoint carries one.
        server_name: the name the certificate must carry, when it differs from the address's host.
        key: ``(KEY, VALUE)`` of Triton's ``--grpc-restricted-protocol=inference:KEY=VALUE``: every call carries
            the metadata ``triton-grpc-protocol-KEY: VALUE`` that Triton checks. Never logged nor in ``repr``.
        timeout: default seconds for a unary call (``None``: no deadline). Streams have no default deadline.

    Raises:
        MissingDependencyError: grpcio is not installed (the ``local`` extra).
    """

    def __init__(
        self,
        address: str,
        *,
        provider: str = "triton",
        label: str | None = None,
        tls: bool = False,
        ca_certificate: bytes | str | None = None,
        server_name: str | None = None,
        key: tuple[str, str] | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        self._grpc: ModuleType = require("grpc", extra="local")
        self._aio: ModuleType = require("grpc.aio", extra="local")
        self.address = address
        self.provider = provider
        self.label = label or address
        self.tls = tls
        self.timeout = timeout
        self._ca_certificate = ca_certificate
        self._options = CHANNEL_OPTIONS + _server_name_options(server_name)
        self._metadata: tuple[tuple[str, str], ...] = (
            () if key is None else ((f"{RESTRICTED_KEY_PREFIX}{key[0].lower()}", key[1]),)
        )
        self._lock = threading.Lock()
        self._sync: _Stubs | None = None
        self._async: dict[asyncio.AbstractEventLoop, _Stubs] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        return f"GrpcConnection({self.address!r}, tls={self.tls})"

    # ---- blocking ---------------------------------------------------------------------------------------------
    def infer(self, request: GrpcInferRequest, timeout: float | None = None) -> InferResponse:
        """Run one ``ModelInfer`` call. Blocks; thread-safe.

        Args:
            request: from :func:`~endpointkit.payloads._grpc.encode_grpc_request`.
            timeout: seconds for the whole call (default: the connection's).

        Raises:
            ProviderError: the call failed; see :func:`map_rpc_error` for the subclasses and codes.
            PayloadError: the response cannot be decoded.
        """
        limit = self.timeout if timeout is None else timeout
        stubs = self._stubs()
        try:
            data = stubs.infer(request, timeout=limit, metadata=self._metadata)
        except self._grpc.RpcError as error:
            raise self._map(error, request.model_name, limit) from error
        except (
            ValueError
        ) as error:  # grpcio: "Cannot invoke RPC on closed channel!" (another thread closed it)
            raise self._closed_error(request.model_name) from error
        return decode_grpc_response(data)

    def stream(
        self, requests: Iterable[GrpcInferRequest], timeout: float | None = None
    ) -> Iterator[InferResponse]:
        """Send ``requests`` on one ``ModelStreamInfer`` stream and yield each response as it arrives.

        Build the requests with ``encode_grpc_request(..., stream=True)`` so that Triton flags the end of each
        one. The stream ends when every request has had its final response (a decoupled model's flag-only final
        response is not yielded) or when Triton closes it. Stopping the iteration early (``break``, an exception,
        ``close()`` on the generator) cancels the call, which Triton passes on to the model. The call starts on
        the first ``next()``. Blocking; use one stream from one thread.

        Args:
            requests: encoded requests, sent in order.
            timeout: seconds for the whole stream (default: none; keep-alive still detects a vanished server).

        Raises:
            InvalidRequestError: Triton refused a request (unknown model, input or output, wrong datatype or
                shape); the message is Triton's.
            ProviderError: the model failed mid-stream (``code="ModelError"``), or the call failed (see
                :func:`map_rpc_error`).
            PayloadError: a response cannot be decoded.
        """
        pending = tuple(requests)
        if not pending:
            return
        reader = self._reader(pending)
        try:
            call = self._stubs().stream(iter(pending), timeout=timeout, metadata=self._metadata)
        except ValueError as error:  # closed by another thread, as in infer()
            raise self._closed_error(reader.model) from error
        try:
            for data in call:
                response = reader.read(data)
                if response is not None:
                    yield response
                if reader.done:
                    return
        except self._grpc.RpcError as error:
            raise self._map(error, reader.model, timeout, "stream") from error
        finally:
            call.cancel()

    # ---- asyncio ----------------------------------------------------------------------------------------------
    async def ainfer(self, request: GrpcInferRequest, timeout: float | None = None) -> InferResponse:
        """:meth:`infer` for asyncio: the call runs on the running loop's channel. Cancelling the task cancels it."""
        limit = self.timeout if timeout is None else timeout
        stubs = self._async_stubs()
        try:
            data = await stubs.infer(request, timeout=limit, metadata=self._metadata)
        except self._grpc.RpcError as error:
            raise self._map(error, request.model_name, limit) from error
        except self._aio.UsageError as error:  # "Channel is closed." (aclose() ran meanwhile)
            raise self._closed_error(request.model_name) from error
        return decode_grpc_response(data)

    async def astream(
        self, requests: Iterable[GrpcInferRequest], timeout: float | None = None
    ) -> AsyncIterator[InferResponse]:
        """:meth:`stream` for asyncio. Close it when leaving early (``contextlib.aclosing``); otherwise the call is
        cancelled when the generator is collected."""
        pending = tuple(requests)
        if not pending:
            return
        reader = self._reader(pending)
        call = self._async_stubs().stream(iter(pending), timeout=timeout, metadata=self._metadata)
        try:
            async for data in call:
                response = reader.read(data)
                if response is not None:
                    yield response
                if reader.done:
                    return
        except self._grpc.RpcError as error:
            raise self._map(error, reader.model, timeout, "stream") from error
        except self._aio.UsageError as error:
            raise self._closed_error(reader.model) from error
        finally:
            call.cancel()

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the channels now: calls in flight fail with ``ProviderError(code="CANCELLED")``. Idempotent.

        The connection stays usable: a later call opens new channels. An asyncio channel is closed on its loop
        (scheduled when that loop is running, run to completion when it is idle, dropped when it is closed).
        """
        with self._lock:
            stubs, self._sync = self._sync, None
            loops, self._async = self._async, {}
        if stubs is not None:
            stubs.channel.close()
        for loop, aio in loops.items():
            self._close_async(loop, aio.channel)

    async def aclose(self) -> None:
        """Close every channel, awaiting the running loop's. Idempotent; the connection stays usable."""
        loop = asyncio.get_running_loop()
        with self._lock:
            own = self._async.pop(loop, None)
        self.close()
        if own is not None:
            await own.channel.close()

    def __enter__(self) -> GrpcConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- internals --------------------------------------------------------------------------------------------
    def _credentials(self) -> Any:
        return self._grpc.ssl_channel_credentials(root_certificates=trusted_roots(self._ca_certificate))

    def _stubs(self) -> _Stubs:
        stubs = self._sync
        if stubs is not None:
            return stubs
        with self._lock:
            if self._sync is None:
                grpc = self._grpc
                if self.tls:
                    channel = grpc.secure_channel(self.address, self._credentials(), options=self._options)
                else:
                    channel = grpc.insecure_channel(self.address, options=self._options)
                self._sync = _Stubs(channel, *self._callables(channel))
            return self._sync

    def _async_stubs(self) -> _Stubs:
        loop = asyncio.get_running_loop()
        with self._lock:
            stubs = self._async.get(loop)
            if stubs is not None:
                return stubs
            stale = [other for other in self._async if other.is_closed()]
            for other in stale:  # their channels went with their loops
                del self._async[other]
            aio = self._aio
            if self.tls:
                channel = aio.secure_channel(self.address, self._credentials(), options=self._options)
            else:
                channel = aio.insecure_channel(self.address, options=self._options)
            stubs = self._async[loop] = _Stubs(channel, *self._callables(channel))
            return stubs

    @staticmethod
    def _callables(channel: Any) -> tuple[Any, Any]:
        # response_deserializer=None: the raw bytes come back, decoded here into views of them.
        infer = channel.unary_unary(
            _INFER_METHOD, request_serializer=_serialize, response_deserializer=None, _registered_method=True
        )
        stream = channel.stream_stream(
            _STREAM_METHOD, request_serializer=_serialize, response_deserializer=None, _registered_method=True
        )
        return infer, stream

    def _close_async(self, loop: asyncio.AbstractEventLoop, channel: Any) -> None:
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(channel.close())
            self._closing.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._closing.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(channel.close(), loop)
        else:
            loop.run_until_complete(channel.close())

    def _reader(self, pending: tuple[GrpcInferRequest, ...]) -> _StreamReader:
        return _StreamReader(
            len(pending), label=self.label, provider=self.provider, model=pending[0].model_name
        )

    def _map(
        self, error: Exception, model: str, timeout: float | None, operation: str = "invoke"
    ) -> ProviderError:
        return map_rpc_error(
            error, label=self.label, provider=self.provider, operation=operation, model=model, timeout=timeout
        )

    def _closed_error(self, model: str) -> ProviderError:
        return ProviderError(
            f"the gRPC channel to {self.label} (model {model!r}) was closed during the call",
            provider=self.provider,
            operation="invoke",
            code="CANCELLED",
            retryable=True,
        )
