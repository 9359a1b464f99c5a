"""A pooled keep-alive HTTP/1.1 transport on the standard library's ``http.client``.

Used on the invoke hot path by the local adapter (and the AKS adapter): measured against Triton, kept-alive
``http.client`` connections cost less client CPU than httpx or urllib3 (shared/triton-local.md), and the
client shares the cores with the server.

- One pool of idle connections per origin (scheme, host, port), safe to share between threads: a connection
  is used by one request at a time and goes back to the pool when its response has been read in full.
- A body given as a sequence of buffers is sent without joining them: the request head and every buffer go
  out in one ``socket.sendmsg`` call (scatter/gather), looped over partial sends. Measured against a local
  Triton identity model (binary FP32, head + tensor, median per request): 64 KiB took 358 us with sendmsg,
  406 us with one ``sendall`` per buffer and 363 us joined; 4 MiB took 7.0 ms / 7.5 ms / 8.3 ms, and joining
  doubled the client's CPU time (2.4 ms against 5.1 ms).
- The response body is read into one preallocated ``bytearray`` of ``Content-Length`` bytes with ``readinto``.
- ``Accept-Encoding: identity`` is sent unless the caller asks otherwise: Triton gzips every response for a
  client that accepts gzip. A gzip or deflate response (asked for, or sent anyway) is inflated here.
- A response body may hold at most ``max_response_bytes`` (64 MiB by default), inflated or not: a larger
  ``Content-Length`` is refused before any body byte is read, a chunked body as soon as it passes the bound,
  and inflation stops there, so a compression bomb costs about the bound in memory. Past it,
  :class:`~endpointkit.errors.PayloadError` says how to raise the bound.
- ``connect_to`` works as curl's ``--connect-to``: a request to ``HOST:PORT`` opens its TCP connection to the
  address that option maps it to, and keeps ``HOST`` for TLS (SNI and the certificate's host-name check) and the
  ``Host`` header, so an endpoint is reached before its DNS name resolves, through a port-forward, or in tests.
  A key without a host (``":443"``) maps every host on that port, as an empty host does for curl.
- ``https`` origins verify the server's certificate chain and host name with ``ssl_context`` (the system's default
  trust when None); a failed verification is ``ProviderError(code="TLSVerificationFailed")`` naming the host and
  OpenSSL's reason (:func:`~endpointkit.adapters._http_errors.transport_error`). The pooled keep-alive
  connections are kept over TLS as over plain TCP, so the handshake is paid once per connection.
- A request on a pooled connection that the server closed while it sat idle (reset, broken pipe, or the
  connection ends before any response byte) is retried once on a fresh connection; every other failure
  becomes a :class:`~endpointkit.errors.ProviderError`, ``retryable=True`` for connection errors.
"""

from __future__ import annotations

import functools
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from endpointkit.adapters._http_errors import transport_error
from endpointkit.adapters._http_response import FastResponse, inflate_response
from endpointkit.adapters.base import RawResponse
from endpointkit.errors import PayloadError, ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES

__all__ = ["Address", "Body", "HttpTransport", "Origin", "connect_address", "parse_connect_to"]

Body = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]

# Linux refuses sendmsg with more than IOV_MAX (1024) buffers.
_MAX_BUFFERS_PER_SEND = 1024
_STALE_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
# Bytes asked of a response without Content-Length per read: one socket read's worth, not the whole bound.
_UNSIZED_READ_BYTES = 256 * 1024
_RAISE_BOUND = "HttpTransport(max_response_bytes=...)"


class Origin(NamedTuple):
    """Where requests go: scheme (``http`` or ``https``), host and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Origin:
        """The origin of ``url`` (``http://127.0.0.1:8000/anything`` -> ``Origin('http', '127.0.0.1', 8000)``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


Address = tuple[str, int]
"""A TCP address: host (a name or an IP literal, IPv6 without brackets) and port."""


def parse_connect_to(connect_to: Mapping[str, str] | None) -> dict[Address, Address]:
    """``{"HOST:PORT": "ADDRESS:PORT"}`` as ``{(host, port): (address, port)}``; hosts lower-cased, IPv6 literals
    written in brackets (``[::1]:8443``).

    Raises:
        ValueError: a key or value is not ``HOST:PORT`` with a port from 1 to 65535.
    """
    return {_address(key, "key"): _address(value, "value") for key, value in (connect_to or {}).items()}


def connect_address(table: Mapping[Address, Address], host: str, port: int) -> Address | None:
    """Where ``connect_to`` sends connections for ``host:port``: its own entry, else the any-host entry of the
    port (a key written ``":PORT"``), else None."""
    return table.get((host.lower(), port)) or table.get(("", port))


def _address(text: str, role: str) -> Address:
    host, separator, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    any_host = role == "key" and separator and not host  # ":443": every host on that port
    if not separator or not (host or any_host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"connect_to {role} {text!r} is not HOST:PORT (for example 'triton.example.com:443' -> "
            "'127.0.0.1:8443', IPv6 in brackets)"
        )
    return host.lower(), int(port)


class _ScatterSendMixin:
    """Holds the request head back in ``send`` so it leaves in the same ``sendmsg`` call as the body."""

    sock: socket.socket | None
    _held_head: bytes | None = None
    _hold_head: bool = False
    generation: int = 0

    def send(self, data: object) -> None:
        if self._hold_head and isinstance(data, bytes):
            # endheaders() hands the serialized request line and headers to send() exactly once
            self._held_head = data
            self._hold_head = False
            return
        super().send(data)  # type: ignore[misc]

    def send_request_body(self, buffers: Sequence[memoryview]) -> None:
        """Send the held head followed by ``buffers``."""
        head = self._held_head
        self._held_head = None
        sock = self.sock
        if sock is None:
            raise http.client.NotConnected()
        pieces = [memoryview(head)] if head else []
        pieces.extend(buffers)
        if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):  # TLS and Windows: no sendmsg
            for piece in pieces:
                sock.sendall(piece)
            return
        _sendmsg_all(sock, pieces)


class _HTTPConnection(_ScatterSendMixin, http.client.HTTPConnection):
    response_class = FastResponse


class _HTTPSConnection(_ScatterSendMixin, http.client.HTTPSConnection):
    response_class = FastResponse


_Connection = _HTTPConnection | _HTTPSConnection


def _connect_instead(
    address: Address, _origin: Address, timeout: float | None, source_address: Address | None = None
) -> socket.socket:
    """``socket.create_connection`` to ``address`` in place of the origin's own (``connect_to``)."""
    return socket.create_connection(address, timeout, source_address)


def _sendmsg_all(sock: socket.socket, pieces: list[memoryview]) -> None:
    """``sendall`` for a list of buffers: one ``sendmsg`` per round, resumed where a partial send stopped."""
    index = 0
    while index < len(pieces):
        window = pieces[index : index + _MAX_BUFFERS_PER_SEND]
        sent = sock.sendmsg(window)
        for piece in window:
            if sent >= piece.nbytes:
                sent -= piece.nbytes
                index += 1
            else:
                pieces[index] = piece[sent:]
                break


def _as_buffers(body: Body | None) -> tuple[list[memoryview], int]:
    if body is None:
        return [], 0
    parts: Sequence[bytes | bytearray | memoryview] = (
        [body] if isinstance(body, bytes | bytearray | memoryview) else body
    )
    buffers: list[memoryview] = []
    length = 0
    for part in parts:
        view = memoryview(part)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        if view.nbytes:
            buffers.append(view)
            length += view.nbytes
    return buffers, length


def _dropped(connection: _Connection) -> bool:
    """Whether an idle connection was closed by its server (readable while idle means EOF or junk)."""
    sock = connection.sock
    if sock is None:
        return True
    if hasattr(select, "poll"):  # not select.select: it fails for descriptors above FD_SETSIZE
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # Windows has no poll
    return bool(readable)


class HttpTransport:
    """Pooled keep-alive HTTP/1.1 connections, per origin, shared safely between threads.

    Args:
        provider: the ``provider`` that errors carry (``"local"``, ``"aks"``).
        timeout: default seconds for a whole request (connect, send, and read); None waits forever.
        connect_timeout: upper bound on connecting a new socket.
        max_idle_per_origin: idle connections kept per origin; more are closed when released.
        ssl_context: for ``https`` origins (the system's default trust when None); keep verification on.
        max_response_bytes: the largest response body accepted, after inflating a gzip or deflate one;
            :data:`~endpointkit.payloads.DEFAULT_MAX_INFLATED_BYTES` (64 MiB) by default.
        connect_to: ``{"HOST:PORT": "ADDRESS:PORT"}``, like curl's ``--connect-to``: connections to that origin
            go to the address, while TLS and the ``Host`` header still use ``HOST``.

    Raises:
        ValueError: ``max_response_bytes`` is negative, or ``connect_to`` holds something other than
            ``HOST:PORT``.
    """

    def __init__(
        self,
        *,
        provider: str = "http",
        timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        max_idle_per_origin: int = 32,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
        connect_to: Mapping[str, str] | None = None,
    ) -> None:
        if type(max_response_bytes) is not int or max_response_bytes < 0:
            raise ValueError(f"max_response_bytes must be an integer >= 0, got {max_response_bytes!r}")
        self._connect_to = parse_connect_to(connect_to)
        self.provider = provider
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle_per_origin = max_idle_per_origin
        self.ssl_context = ssl_context
        self.max_response_bytes = max_response_bytes
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        #: connections opened so far (tests and benchmarks read it to check reuse)
        self.connections_opened = 0

    def request(
        self,
        method: str,
        origin: Origin,
        path: str,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send one request and read the whole response. Blocks; thread-safe.

        Args:
            body: bytes, or a sequence of buffers sent in order without being joined.
            headers: request headers; ``Content-Length`` is computed here and ``Accept-Encoding`` defaults to
                ``identity``.
            timeout: seconds for the whole request (default: the transport's).

        Returns:
            ``RawResponse(status, headers with lower-case names, body)``; any HTTP status is returned, not raised.
            A gzip or deflate body comes inflated, without its ``content-encoding`` header.

        Raises:
            ProviderError: connection refused or reset (``retryable=True``), time-out (``code="Timeout"``),
                or a malformed response.
            PayloadError: the body, inflated or not, is over ``max_response_bytes``, or its compressed
                stream is corrupt.
        """
        buffers, length = _as_buffers(body)
        limit = self.timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        for attempt in (1, 2):
            connection, reused = self._acquire(origin, deadline, fresh=attempt == 2)
            try:
                response = self._send(connection, method, path, buffers, length, headers or {}, deadline)
            except (*_STALE_ERRORS, http.client.RemoteDisconnected) as error:
                connection.close()
                if reused and attempt == 1:
                    # The server closed this idle connection (and likely its siblings: it may have restarted).
                    self._discard_idle(origin)
                    continue
                raise self._error(
                    f"{origin} closed the connection: {error}", "ConnectionReset", True
                ) from error
            except BaseException as error:
                connection.close()
                raise self._map(error, origin) from error
            try:
                received = self._read(connection, response, deadline, self.max_response_bytes)
            except BaseException as error:
                connection.close()
                raise self._map(error, origin) from error
            self._release(origin, connection)
            # After the release: the body has been read in full, so the connection serves others meanwhile.
            return inflate_response(received, limit=self.max_response_bytes, setting=_RAISE_BOUND)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        """Close every idle connection now, and each busy one when its request ends. Idempotent.

        The transport stays usable: later requests open new connections. Close it before stopping a Triton
        server, which otherwise waits for open keep-alive connections on SIGTERM.
        """
        with self._lock:
            self._generation += 1
            idle = [connection for pool in self._idle.values() for connection in pool]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- pool ------------------------------------------------------------------------------------------
    def _discard_idle(self, origin: Origin) -> None:
        with self._lock:
            idle = self._idle.pop(origin, [])
        for connection in idle:
            connection.close()

    def _acquire(self, origin: Origin, deadline: float | None, *, fresh: bool) -> tuple[_Connection, bool]:
        while not fresh:
            with self._lock:
                pool = self._idle.get(origin)
                connection = pool.pop() if pool else None
            if connection is None:
                break
            if not _dropped(connection):
                return connection, True
            connection.close()
        connect_timeout = self.connect_timeout
        if deadline is not None:
            connect_timeout = max(0.001, min(connect_timeout, deadline - time.monotonic()))
        created: _Connection
        if origin.scheme == "https":
            created = _HTTPSConnection(
                origin.host, origin.port, timeout=connect_timeout, context=self.ssl_context
            )
        else:
            created = _HTTPConnection(origin.host, origin.port, timeout=connect_timeout)
        address = connect_address(self._connect_to, origin.host, origin.port)
        if address is not None:
            # http.client opens its socket through self._create_connection((self.host, self.port), ...) and
            # HTTPSConnection wraps it with server_hostname=self.host (CPython Lib/http/client.py, connect):
            # replacing the first moves the TCP connection only; SNI, host-name check and Host stay the origin's.
            created._create_connection = functools.partial(_connect_instead, address)  # type: ignore[union-attr]
        with self._lock:
            created.generation = self._generation
            self.connections_opened += 1
        try:
            created.connect()
        except BaseException as error:
            created.close()
            raise self._map(error, origin, connecting=True) from error
        return created, False

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if connection.sock is not None:  # None: the server answered Connection: close
            with self._lock:
                pool = self._idle.setdefault(origin, [])
                if connection.generation == self._generation and len(pool) < self.max_idle_per_origin:
                    pool.append(connection)
                    return
        connection.close()

    # ---- one exchange ----------------------------------------------------------------------------------
    @staticmethod
    def _send(
        connection: _Connection,
        method: str,
        path: str,
        buffers: Sequence[memoryview],
        length: int,
        headers: Mapping[str, str],
        deadline: float | None,
    ) -> http.client.HTTPResponse:
        _set_timeout(connection, deadline)
        names = {name.lower() for name in headers}
        connection.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
        if "accept-encoding" not in names:
            connection.putheader("Accept-Encoding", "identity")
        if length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            connection.putheader("Content-Length", str(length))
        for name, value in headers.items():
            if name.lower() != "content-length":
                connection.putheader(name, value)
        connection._hold_head = True
        try:
            connection.endheaders()
        finally:
            connection._hold_head = False
        connection.send_request_body(buffers)
        _set_timeout(connection, deadline)
        return connection.getresponse()

    @staticmethod
    def _read(
        connection: _Connection, response: http.client.HTTPResponse, deadline: float | None, limit: int
    ) -> RawResponse:
        headers = dict(response.headers.items())  # FastResponse: lower-case names, repeats joined
        expected = response.length
        body: bytearray
        if expected is None:  # chunked, or delimited by the end of the connection
            body = _read_unsized(connection, response, deadline, limit)
        elif expected > limit:
            bound = f"the transport's bound of {limit:,} bytes"
            raise _too_large(
                f"the response has Content-Length {expected:,}, over {bound}", field="Content-Length"
            )
        else:
            body = bytearray(expected)
            view = memoryview(body)
            filled = 0
            while filled < expected:
                _set_timeout(connection, deadline)
                count = response.readinto(view[filled:])
                if not count:
                    raise http.client.IncompleteRead(bytes(view[:filled]), expected - filled)
                filled += count
        response.close()
        return RawResponse(response.status, headers, body)

    # ---- errors ----------------------------------------------------------------------------------------
    def _error(self, message: str, code: str, retryable: bool) -> ProviderError:
        return ProviderError(
            message, provider=self.provider, operation="invoke", code=code, retryable=retryable
        )

    def _map(self, error: BaseException, origin: Origin, *, connecting: bool = False) -> BaseException:
        if isinstance(error, http.client.IncompleteRead):
            return self._error(
                f"{origin} closed the connection after {len(error.partial)} of "
                f"{len(error.partial) + (error.expected or 0)} body bytes",
                "IncompleteRead",
                True,
            )
        return transport_error(error, origin, provider=self.provider, connecting=connecting)


def _too_large(what: str, *, field: str | None = None, offset: int | None = None) -> PayloadError:
    return PayloadError(
        f"{what}; if the endpoint legitimately answers this much, raise the bound with {_RAISE_BOUND}",
        field=field,
        offset=offset,
    )


def _read_unsized(
    connection: _Connection, response: http.client.HTTPResponse, deadline: float | None, limit: int
) -> bytearray:
    """The body of a response without ``Content-Length`` (chunked, or up to the end of the connection)."""
    body = bytearray()
    while True:
        _set_timeout(connection, deadline)
        piece = response.read1(_UNSIZED_READ_BYTES)
        if not piece:
            return body
        body += piece
        if len(body) > limit:
            raise _too_large(
                f"the response body passed the transport's bound of {limit:,} bytes (reading stopped there)",
                offset=limit,
            )


def _set_timeout(connection: _Connection, deadline: float | None) -> None:
    # The socket time-out bounds each blocking call; resetting it to what is left before every call bounds the
    # whole request. (A Connection: close response owns its socket; it keeps the last value set here.)
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise TimeoutError("request deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)
