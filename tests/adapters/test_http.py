"""The pooled keep-alive transport against a small threaded HTTP/1.1 server on loopback."""

from __future__ import annotations

import gzip
import http.server
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest

from endpointkit.adapters._http import HttpTransport, Origin
from endpointkit.errors import PayloadError, ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES, decode_response, encode_response
from tests.payloads.conftest import gzip_bomb


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/echo`` answers the body it got; ``/drop-second`` hangs up on a connection's second request once;
    ``/drop`` always hangs up; ``/slow`` answers when the test ends (30 s at most); ``/close`` answers then closes silently;
    a path in ``server.canned`` answers that body, with those headers, chunked or with its length."""

    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # the handler writes head and body separately
    server: _Server
    drop_once_done: ClassVar[bool] = False

    def setup(self) -> None:
        super().setup()
        self.requests_here = 0
        with self.server.lock:
            self.server.connections += 1
            self.connection_number = self.server.connections

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        self.requests_here += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append({key.lower(): value for key, value in self.headers.items()})
        if self.path == "/drop" or (
            self.path == "/drop-second" and self.requests_here == 2 and not self.server.dropped
        ):
            self.server.dropped = True
            self.close_connection = True  # no response: the client sees the connection end before any byte
            return
        canned = self.server.canned.get(self.path)
        if canned is not None:
            self._send_canned(canned)
            return
        if self.path == "/slow":
            self.server.release_slow.wait(timeout=30)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Connection", str(self.connection_number))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/close":
            self.close_connection = True  # closes the socket after answering, without saying so

    def _send_canned(self, canned: _Canned) -> None:
        self.send_response(200)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        if not canned.chunked:
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(canned.body), 65536):
            piece = canned.body[start : start + 65536]
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


@dataclass(frozen=True)
class _Canned:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.dropped = False
        self.seen: list[dict[str, str]] = []
        self.canned: dict[str, _Canned] = {}
        self.release_slow = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that timed out and hung up is what some tests do on purpose


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.release_slow.set()
        running.shutdown()
        running.server_close()
        thread.join(timeout=5)


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    with HttpTransport(provider="test", timeout=5.0) as pooled:
        yield pooled


def origin(server: _Server) -> Origin:
    return Origin("http", "127.0.0.1", server.server_address[1])


def test_sequence_of_buffers_arrives_intact_with_its_length(
    server: _Server, transport: HttpTransport
) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    parts: list[bytes | bytearray | memoryview] = [
        b'{"inputs":[]}',
        bytearray(b"\x00\x01"),
        memoryview(array.data),  # 2-D float32: the transport sends it as its raw bytes
        b"",
        memoryview(b"tail"),
    ]
    response = transport.request("POST", origin(server), "/echo", parts, {"Content-Type": "x/y"})
    expected = b'{"inputs":[]}' + b"\x00\x01" + array.tobytes() + b"tail"
    assert response.status == 200
    assert bytes(response.body) == expected
    assert isinstance(response.body, bytearray)
    assert server.seen[-1]["content-length"] == str(len(expected))
    assert server.seen[-1]["accept-encoding"] == "identity"
    assert server.seen[-1]["content-type"] == "x/y"
    assert response.headers["content-length"] == str(len(expected))


def test_large_body_in_many_buffers_survives_partial_sends(server: _Server, transport: HttpTransport) -> None:
    rng = np.random.default_rng(7)
    parts = [rng.bytes(size) for size in (3, 4 << 20, 1, 3 << 20)] + [b"x"] * 1500  # over IOV_MAX buffers
    response = transport.request("POST", origin(server), "/echo", parts)
    assert bytes(response.body) == b"".join(parts)


def test_connection_is_kept_alive_and_reused(server: _Server, transport: HttpTransport) -> None:
    numbers = {
        transport.request("POST", origin(server), "/echo", b"x").headers["x-connection"] for _ in range(5)
    }
    assert len(numbers) == 1
    assert transport.connections_opened == 1 and server.connections == 1


def test_request_on_a_connection_the_server_closed_is_retried_once(
    server: _Server, transport: HttpTransport
) -> None:
    first = transport.request("POST", origin(server), "/drop-second", b"one")
    second = transport.request("POST", origin(server), "/drop-second", b"two")
    assert server.dropped
    assert bytes(second.body) == b"two"
    assert second.headers["x-connection"] != first.headers["x-connection"]
    assert transport.connections_opened == 2


def test_idle_connection_closed_by_the_server_is_replaced(server: _Server, transport: HttpTransport) -> None:
    first = transport.request("POST", origin(server), "/close", b"one")
    time.sleep(0.05)  # let the server's close arrive
    second = transport.request("POST", origin(server), "/echo", b"two")
    assert bytes(second.body) == b"two"
    assert second.headers["x-connection"] != first.headers["x-connection"]


def test_fresh_connection_closed_without_answer_is_a_retryable_error(
    server: _Server, transport: HttpTransport
) -> None:
    with pytest.raises(ProviderError) as raised:
        transport.request("POST", origin(server), "/drop", b"x")
    assert raised.value.retryable and raised.value.code == "ConnectionReset"
    assert raised.value.provider == "test"


def test_timeout_bounds_the_whole_request(server: _Server, transport: HttpTransport) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        transport.request("POST", origin(server), "/slow", b"x", timeout=0.2)
    # /slow holds its answer for 30 s: ending within 10 s, a bound a loaded machine keeps, is the 0.2 s timeout.
    assert time.monotonic() - started < 10
    assert raised.value.code == "Timeout" and not raised.value.retryable
    # the timed-out connection is not reused: its answer would arrive as the next request's response
    assert bytes(transport.request("POST", origin(server), "/echo", b"next").body) == b"next"
    assert transport.connections_opened == 2


def test_refused_connection_is_a_retryable_error(transport: HttpTransport) -> None:
    unused = _Server()
    port = unused.server_address[1]
    unused.server_close()
    with pytest.raises(ProviderError) as raised:
        transport.request("GET", Origin("http", "127.0.0.1", port), "/")
    assert raised.value.retryable and raised.value.code == "ConnectionRefused"


def test_threads_share_the_pool_safely(server: _Server, transport: HttpTransport) -> None:
    failures: list[str] = []

    def work(worker: int) -> None:
        for index in range(25):
            payload = f"{worker}:{index}".encode() * (index + 1)
            body = transport.request("POST", origin(server), "/echo", [payload[:3], payload[3:]]).body
            if bytes(body) != payload:
                failures.append(f"{worker}:{index}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert transport.connections_opened <= 8


def test_close_drops_idle_connections_and_the_transport_stays_usable(
    server: _Server, transport: HttpTransport
) -> None:
    transport.request("POST", origin(server), "/echo", b"x")
    transport.close()
    transport.request("POST", origin(server), "/echo", b"y")
    assert transport.connections_opened == 2


def test_origin_parse() -> None:
    assert Origin.parse("http://127.0.0.1:8000/v2") == Origin("http", "127.0.0.1", 8000)
    assert Origin.parse("https://example.com") == Origin("https", "example.com", 443)
    with pytest.raises(ValueError):
        Origin.parse("ftp://example.com")


# ---- response size bound and inflation ---------------------------------------------------------------------
MiB = 1 << 20


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
def test_gzip_bomb_is_refused_with_memory_near_the_bound(server: _Server, chunked: bool) -> None:
    bomb = gzip_bomb(16 * MiB)  # 16 MiB of zeros in about 16 KB
    server.canned["/bomb"] = _Canned(bomb, {"Content-Encoding": "gzip"}, chunked)
    with HttpTransport(provider="test", timeout=30.0, max_response_bytes=MiB) as bounded:
        tracemalloc.start()
        try:
            with pytest.raises(PayloadError) as raised:
                bounded.request("POST", origin(server), "/bomb", b"x")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # the whole (compressed) body was read: the connection goes on serving
        assert bytes(bounded.request("POST", origin(server), "/echo", b"next").body) == b"next"
        assert bounded.connections_opened == 1
    assert peak < 4 * MiB, f"peak {peak:,} bytes for a 1 MiB bound (the body inflates to 16 MiB)"
    message = str(raised.value)
    assert (
        "gzip" in message and "1,048,576 bytes" in message and "HttpTransport(max_response_bytes=" in message
    )
    assert raised.value.field == "Content-Encoding"


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_response_arrives_inflated_without_its_encoding(
    server: _Server, transport: HttpTransport, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    values = np.arange(10_000, dtype=np.int32)
    encoded = encode_response({"OUT": values}, model_name="m", binary=True)
    server.canned["/compressed"] = _Canned(
        compress(encoded.to_bytes()), {**encoded.headers, "Content-Encoding": encoding}
    )
    response = transport.request("POST", origin(server), "/compressed", b"x", {"Accept-Encoding": encoding})
    assert server.seen[-1]["accept-encoding"] == encoding
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(encoded.nbytes)
    assert np.array_equal(decode_response(response.body, response.headers)["OUT"], values)


def test_response_over_the_bound_is_refused_before_its_body_is_read(server: _Server) -> None:
    server.canned["/big"] = _Canned(bytes(2 * MiB))
    with HttpTransport(provider="test", timeout=5.0, max_response_bytes=MiB) as bounded:
        with pytest.raises(PayloadError, match="Content-Length 2,097,152, over the") as raised:
            bounded.request("POST", origin(server), "/big", b"x")
        assert raised.value.field == "Content-Length"
        exactly_the_bound = bounded.request("POST", origin(server), "/echo", bytes(MiB))
        assert len(exactly_the_bound.body) == MiB


def test_chunked_response_over_the_bound_is_refused(server: _Server) -> None:
    server.canned["/big-chunked"] = _Canned(bytes(2 * MiB), chunked=True)
    bounded = HttpTransport(provider="test", timeout=5.0, max_response_bytes=MiB)
    with bounded, pytest.raises(PayloadError, match="passed the transport's bound of 1,048,576 bytes"):
        bounded.request("POST", origin(server), "/big-chunked", b"x")


def test_chunked_response_within_the_bound_is_read_whole(server: _Server, transport: HttpTransport) -> None:
    body = np.random.default_rng(1).bytes(300_000)
    server.canned["/chunked"] = _Canned(body, chunked=True)
    assert bytes(transport.request("POST", origin(server), "/chunked", b"x").body) == body
    assert bytes(transport.request("POST", origin(server), "/echo", b"again").body) == b"again"
    assert transport.connections_opened == 1


def test_default_bound_and_its_validation() -> None:
    assert HttpTransport().max_response_bytes == DEFAULT_MAX_INFLATED_BYTES
    with pytest.raises(ValueError, match="max_response_bytes"):
        HttpTransport(max_response_bytes=-1)


# ---- TLS -------------------------------------------------------------------------------------------------------
class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_echo() -> Iterator[tuple[Origin, ssl.SSLContext, ssl.SSLContext]]:
    """(an https origin on loopback, a client context trusting its CA, one trusting another CA)."""
    trustme = pytest.importorskip("trustme")
    authority, stranger = trustme.CA(), trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    trusting, distrusting = ssl.create_default_context(), ssl.create_default_context()
    authority.configure_trust(trusting)
    stranger.configure_trust(distrusting)
    try:
        yield Origin("https", "127.0.0.1", server.server_address[1]), trusting, distrusting
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_tls_with_a_trusted_certificate_carries_the_request(
    tls_echo: tuple[Origin, ssl.SSLContext, ssl.SSLContext],
) -> None:
    origin, trusting, _ = tls_echo
    with HttpTransport(provider="aks", ssl_context=trusting) as transport:
        response = transport.request("POST", origin, "/echo", [b"head:", memoryview(b"payload")])

    assert response.status == 200 and bytes(response.body) == b"head:payload"


def test_an_untrusted_certificate_names_host_and_reason_and_is_not_retried(
    tls_echo: tuple[Origin, ssl.SSLContext, ssl.SSLContext],
) -> None:
    origin, _, distrusting = tls_echo
    with (
        HttpTransport(provider="aks", ssl_context=distrusting) as transport,
        pytest.raises(ProviderError) as raised,
    ):
        transport.request("POST", origin, "/echo", b"x")

    assert raised.value.code == "TLSVerificationFailed" and not raised.value.retryable
    assert "127.0.0.1" in str(raised.value) and "certificate" in str(raised.value)
