"""The asyncio twin of :class:`~endpointkit.adapters._http.HttpTransport`, for ``ainvoke_endpoint``.

Same ``request`` arguments, same :class:`~endpointkit.adapters.base.RawResponse`, same error codes, as a
coroutine. A lean HTTP/1.1 client of its own on asyncio's protocol layer (one ``BufferedProtocol`` per
connection, :mod:`~endpointkit.adapters._http_async_connection`) rather than streams or aiohttp, for the
properties of the sync transport: the request head and the arrays' buffers leave in one ``sendmsg`` without
being joined, and a response body is received straight into its own ``bytearray``.

Why not asyncio's own writes: Python 3.11's ``writelines`` joins its buffers (``b"".join``; the selector transport
got a ``sendmsg`` path only in 3.12, https://github.com/python/cpython/issues/91166), and ``write`` copies what
the kernel does not take at once. Measured with a 16 MiB FP32 tensor through a local Triton identity model
(binary in and out, median of 15 calls, with the peak of memory the call allocated beyond the response body):
``sendmsg`` with the bounded slices of :mod:`~endpointkit.adapters._http_async_connection` 55 ms and 0.02 MiB,
one ``transport.write`` per buffer 60 ms and 1.2 MiB (the tail the kernel did not take at once: on loopback
most of the tensor fits in the socket buffers, on a slower link more of it would be copied), ``writelines``
87 ms and 24 MiB (the join, then its tail).

- Pooling: one pool of idle keep-alive connections per origin, and at most ``max_concurrency`` requests in
  flight per origin, so at most that many connections; more calls wait their turn (first come, first served)
  within their own time-out. A connection serves one request at a time.
- Cancellation: a request that fails, times out or whose task is cancelled closes its connection instead of
  returning it to the pool, so a late answer never reaches the next request; the pool stays usable.
- A request on a pooled connection that the server had closed while it sat idle (reset, broken pipe, or the
  connection ends before any response byte) is retried once on a fresh connection; every other failure
  becomes a :class:`~endpointkit.errors.ProviderError`, ``retryable=True`` for connection errors.
- ``connect_to`` as in the sync transport (curl's ``--connect-to``): the TCP connection goes to the mapped
  address, while TLS (SNI, the certificate's host-name check) and the ``Host`` header keep the origin's host.
- ``Accept-Encoding: identity`` unless the caller asks otherwise; a gzip or deflate response is inflated, and a
  body may hold at most ``max_response_bytes``, inflated or not, as in the sync transport.

Not thread-safe: use a transport from one event loop at a time, and ``aclose()`` it (or ``async with``) before
that loop ends. Its pools belong to the loop that made them; a request from another loop (a second
``asyncio.run``) closes the connections left on the first and starts new ones (asyncio may then warn about
their transports: they were not closed while their loop ran).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from endpointkit.adapters._http import Address, Body, Origin, _as_buffers, connect_address, parse_connect_to
from endpointkit.adapters._http_async_connection import BodyTooLarge, Connection, IncompleteBody, running_loop
from endpointkit.adapters._http_errors import transport_error
from endpointkit.adapters._http_response import inflate_response
from endpointkit.adapters.base import RawResponse
from endpointkit.errors import PayloadError, ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES

__all__ = ["DEFAULT_MAX_CONCURRENCY", "AsyncHttpTransport"]

DEFAULT_MAX_CONCURRENCY = 64
"""Requests in flight (hence connections) per origin by default.

Measured with 64 calls in flight on one loop against the quickstart ensemble on a local Triton (2 cores, median
of 9 rounds of 1000 calls, requests per second): 8 connections 1938, 16 2388, 24 2637, 32 2688, 64 3109, and
tritonclient.http.aio with its 64 connections 2385. Triton's dynamic batcher fills its batches from the requests
it holds, so throughput grows with the requests in flight at the server; a bound below the caller's concurrency
only makes calls wait in the client. 64 lets that many calls in flight proceed unqueued while still bounding the
sockets per origin (aiohttp's default is 100 connections in all)."""

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_STALE_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00\r\n]")
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x20\x7f]")
_RAISE_BOUND = "AsyncHttpTransport(max_response_bytes=...)"


class _Deadline:
    """Cancel the current task at loop time ``when`` and turn that cancellation into ``TimeoutError``.

    What ``asyncio.timeout_at`` does from Python 3.11; this package still supports 3.10. A cancellation that
    comes from elsewhere as well stays a cancellation (``Task.uncancel`` counts them, from 3.11).
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_when")

    def __init__(self, when: float | None) -> None:
        self._when = when
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False
        self._cancelling = 0

    def __enter__(self) -> _Deadline:
        if self._when is not None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a request deadline needs a running task")
            self._task = task
            cancelling = getattr(task, "cancelling", None)
            self._cancelling = cancelling() if cancelling is not None else 0
            self._handle = task.get_loop().call_at(self._when, self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and exc_type is asyncio.CancelledError and self._task is not None:
            uncancel = getattr(self._task, "uncancel", None)
            if uncancel is None or uncancel() <= self._cancelling:
                raise TimeoutError("request deadline passed") from exc


@dataclass(eq=False)
class _OriginPool:
    """The idle connections to one origin and the slots that bound its requests in flight, on one loop."""

    loop: asyncio.AbstractEventLoop
    slots: asyncio.Semaphore
    idle: list[Connection] = field(default_factory=list)


class AsyncHttpTransport:
    """Pooled keep-alive HTTP/1.1 connections per origin for asyncio (see the module docstring).

    Args:
        provider: the ``provider`` that errors carry (``"local"``, ``"aks"``).
        timeout: default seconds for a whole request, waiting for a free connection included; None waits
            forever.
        connect_timeout: upper bound on connecting (and the TLS handshake of) a new connection.
        max_concurrency: requests in flight per origin, hence open connections per origin; more calls wait
            their turn (:data:`DEFAULT_MAX_CONCURRENCY` says how the default was chosen).
        ssl_context: for ``https`` origins (the system's default trust when None); keep verification on.
        max_response_bytes: the largest response body accepted, after inflating a gzip or deflate one;
            :data:`~endpointkit.payloads.DEFAULT_MAX_INFLATED_BYTES` (256 MiB) by default.
        connect_to: ``{"HOST:PORT": "ADDRESS:PORT"}``, like curl's ``--connect-to``: connections to that origin
            go to the address, while TLS and the ``Host`` header still use ``HOST``.

    Raises:
        ValueError: a bound is out of range, or ``connect_to`` holds something other than ``HOST:PORT``.
    """

    def __init__(
        self,
        *,
        provider: str = "http",
        timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
        connect_to: Mapping[str, str] | None = None,
    ) -> None:
        if type(max_concurrency) is not int or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        if type(max_response_bytes) is not int or max_response_bytes < 0:
            raise ValueError(f"max_response_bytes must be an integer >= 0, got {max_response_bytes!r}")
        self._connect_to = parse_connect_to(connect_to)
        self.provider = provider
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_concurrency = max_concurrency
        self.ssl_context = ssl_context
        self.max_response_bytes = max_response_bytes
        self._pools: dict[Origin, _OriginPool] = {}
        self._generation = 0
        #: connections opened so far (tests and benchmarks read it to check reuse)
        self.connections_opened = 0
        self._open: set[Connection] = set()

    @property
    def open_connections(self) -> int:
        """Connections whose socket is open right now: idle, busy, or closing."""
        return len(self._open)

    async def request(
        self,
        method: str,
        origin: Origin,
        path: str,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send one request and read the whole response. A coroutine; cancelling its task cancels the request.

        Args:
            body: bytes, or a sequence of buffers sent in order without being joined.
            headers: request headers; ``Content-Length`` is computed here and ``Accept-Encoding`` defaults to
                ``identity``.
            timeout: seconds for the whole request, waiting for a free connection included (default: the
                transport's).

        Returns:
            ``RawResponse(status, headers with lower-case names, body)``; any HTTP status is returned, not raised.
            A gzip or deflate body comes inflated, without its ``content-encoding`` header.

        Raises:
            ProviderError: connection refused or reset (``retryable=True``), time-out (``code="Timeout"``),
                TLS failure (``code="TLSVerificationFailed"`` or ``"TLSError"``), or a malformed response.
            PayloadError: the body, inflated or not, is over ``max_response_bytes``, or its compressed stream
                is corrupt.
            ValueError: the method, the path or a header holds characters HTTP forbids there.
        """
        buffers, length = _as_buffers(body)
        head = _request_head(method, origin, path, length, headers or {})
        loop = asyncio.get_running_loop()
        limit = self.timeout if timeout is None else timeout
        deadline = None if limit is None else loop.time() + limit
        pool = self._pool(origin, loop)
        try:
            with _Deadline(deadline):
                async with pool.slots:
                    received = await self._exchange(pool, origin, method, head, buffers, deadline)
        except BaseException as error:
            mapped = self._map(error, origin)
            if mapped is error:
                raise
            raise mapped from error
        # Outside the slot: the connection serves the next request while this body is inflated.
        return inflate_response(received, limit=self.max_response_bytes, setting=_RAISE_BOUND)

    async def aclose(self) -> None:
        """Close every idle connection now, and each busy one when its request ends. Idempotent.

        Returns when the sockets of every connection not busy with a request are closed. The transport stays
        usable: later requests open new connections. Close it before stopping a Triton server, which otherwise
        waits for open keep-alive connections on SIGTERM.
        """
        self._generation += 1
        loop = asyncio.get_running_loop()
        for origin, pool in list(self._pools.items()):
            self._discard_idle(pool)
            if pool.loop is not loop:
                del self._pools[origin]
        closing = [connection.lost for connection in self._open if connection.closing_on(loop)]
        if closing:
            await asyncio.gather(*closing)

    def close(self) -> None:
        """Close every idle connection, from blocking code (an adapter's ``close``). Idempotent.

        A connection whose event loop runs in another thread is closed by that loop, handed over thread-safely;
        busy connections close when their request ends. The transport stays usable.
        """
        self._generation += 1
        here = running_loop()
        for origin, pool in list(self._pools.items()):
            del self._pools[origin]
            if pool.loop.is_running() and pool.loop is not here:
                pool.loop.call_soon_threadsafe(self._discard_idle, pool)
            else:
                self._discard_idle(pool)

    async def __aenter__(self) -> AsyncHttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- pool ----------------------------------------------------------------------------------------------
    def _pool(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> _OriginPool:
        pool = self._pools.get(origin)
        if pool is not None and pool.loop is loop:
            return pool
        if pool is not None:  # made on another loop, now stopped or closed: its sockets cannot serve this one
            self._discard_idle(pool)
        pool = self._pools[origin] = _OriginPool(loop, asyncio.Semaphore(self.max_concurrency))
        return pool

    async def _exchange(
        self,
        pool: _OriginPool,
        origin: Origin,
        method: str,
        head: bytes,
        buffers: list[memoryview],
        deadline: float | None,
    ) -> RawResponse:
        for attempt in (1, 2):
            connection, reused = await self._checkout(pool, origin, deadline, fresh=attempt == 2)
            try:
                response = await connection.exchange(method, head, buffers, max_body=self.max_response_bytes)
            except _STALE_ERRORS:
                connection.abort()
                if reused and attempt == 1 and not connection.response_started:
                    # The server closed this idle connection (and likely its siblings: it may have restarted).
                    self._discard_idle(pool)
                    continue
                raise
            except BaseException:
                connection.abort()
                raise
            self._checkin(pool, origin, connection)
            return response
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _checkout(
        self, pool: _OriginPool, origin: Origin, deadline: float | None, *, fresh: bool
    ) -> tuple[Connection, bool]:
        while pool.idle and not fresh:
            connection = pool.idle.pop()
            if connection.usable():
                return connection, True
            connection.abort()
        connect_by = pool.loop.time() + self.connect_timeout
        # When the request's own deadline comes first, its time-out is the one to report.
        try:
            with _Deadline(connect_by if deadline is None or connect_by < deadline else None):
                return await self._connect(pool.loop, origin), False
        except BaseException as error:
            mapped = self._map(error, origin, connecting=True)
            if mapped is error:
                raise
            raise mapped from error

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> Connection:
        address = connect_address(self._connect_to, origin.host, origin.port) or (origin.host, origin.port)
        sock = await _open_socket(loop, address)
        connection = Connection(loop, sock, self._generation, self._track_open)
        self.connections_opened += 1
        context = None
        if origin.scheme == "https":
            if self.ssl_context is None:  # the system's trust, loaded once per transport (milliseconds)
                self.ssl_context = ssl.create_default_context()
            context = self.ssl_context
        try:
            await loop.create_connection(
                lambda: connection,
                sock=sock,
                ssl=context,
                server_hostname=origin.host if context is not None else None,
            )
        except BaseException:
            sock.close()
            raise
        return connection

    def _track_open(self, connection: Connection, is_open: bool) -> None:
        if is_open:
            self._open.add(connection)
        else:
            self._open.discard(connection)

    def _checkin(self, pool: _OriginPool, origin: Origin, connection: Connection) -> None:
        if (
            connection.usable()
            and connection.generation == self._generation
            and self._pools.get(origin) is pool
        ):
            pool.idle.append(connection)
        else:
            connection.abort()

    def _discard_idle(self, pool: _OriginPool) -> None:
        idle, pool.idle = pool.idle, []
        for connection in idle:
            connection.abort()

    # ---- errors --------------------------------------------------------------------------------------------
    def _error(self, message: str, code: str, retryable: bool) -> ProviderError:
        return ProviderError(
            message, provider=self.provider, operation="invoke", code=code, retryable=retryable
        )

    def _map(self, error: BaseException, origin: Origin, *, connecting: bool = False) -> BaseException:
        """The error to raise for ``error``: the asyncio body errors here, the rest as the blocking transport."""
        if isinstance(error, BodyTooLarge):
            return PayloadError(
                f"{error.what}; if the endpoint legitimately answers this much, raise the bound with "
                f"{_RAISE_BOUND}",
                field=error.field,
                offset=error.offset,
            )
        if isinstance(error, IncompleteBody):
            return self._error(f"{origin} closed the {error}", "IncompleteRead", True)
        return transport_error(error, origin, provider=self.provider, connecting=connecting)


async def _open_socket(loop: asyncio.AbstractEventLoop, address: Address) -> socket.socket:
    """A non-blocking socket connected to ``address`` (the origin's, or where ``connect_to`` sends it), kept by
    the connection so it can close it even after its loop closed."""
    host, port = address
    candidates: list[tuple[int, Any]]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        resolved = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        candidates = [(family, resolved_address) for family, _, _, _, resolved_address in resolved]
    else:  # a literal address needs no resolver thread
        candidates = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, (host, port))]
    failure: OSError = OSError(f"{host} resolved to no address")
    for address_family, target in candidates:
        sock = socket.socket(address_family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, target)
        except OSError as error:
            sock.close()
            failure = error
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure


def _request_head(method: str, origin: Origin, path: str, length: int, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, as ``http.client`` would write them for :class:`HttpTransport`."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    if not path or _FORBIDDEN_IN_PATH.search(path):
        raise ValueError(f"invalid request path {path!r}: empty, or holds spaces or control characters")
    names = {name.lower() for name in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {_host_header(origin)}")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    if length or method not in _BODYLESS_METHODS:
        lines.append(f"Content-Length: {length}")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"invalid HTTP header {name!r}: {value!r}")
        if name.lower() != "content-length":
            lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _host_header(origin: Origin) -> str:
    host = origin.host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    elif not host.isascii():
        host = host.encode("idna").decode("ascii")
    default_port = 443 if origin.scheme == "https" else 80
    return host if origin.port == default_port else f"{host}:{origin.port}"
