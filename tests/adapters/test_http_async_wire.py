"""The asyncio transport's HTTP/1.1 handling against a scripted asyncio server on loopback.

Each test gives the server an ``answer`` coroutine that writes raw response bytes for a request it parsed, and
returns whether to keep the connection open: framings (Content-Length, chunked, up to the end of the
connection), interim answers, compression, bounds, servers that hang up, and the request bytes themselves.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest

from endpointkit.adapters._http import Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters.local._tritonserver import free_port
from endpointkit.errors import PayloadError, ProviderError


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    head: bytes
    headers: dict[str, str]
    body: bytes
    connection: int
    index: int  # 1 for a connection's first request


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class ScriptedServer:
    answer: Answer
    keep_bodies: bool = True  # False: bodies are read in small pieces and dropped (``Request.body`` is empty)
    connections: int = 0
    requests: list[Request] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, index = self.connections, 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:-2])}
                body = await self.read_body(reader, int(headers.get("content-length", "0")))
                index += 1
                request = Request(method, path, head, headers, body, number, index)
                self.requests.append(request)
                keep_open = await self.answer(request, writer)
                await writer.drain()
                if not keep_open:
                    return
        finally:
            writer.close()

    async def read_body(self, reader: asyncio.StreamReader, length: int) -> bytes:
        if self.keep_bodies:
            return await reader.readexactly(length)
        while length:
            length -= len(await reader.readexactly(min(length, 64 * 1024)))
        return b""


@asynccontextmanager
async def scripted(
    answer: Answer, *, keep_bodies: bool = True
) -> AsyncIterator[tuple[ScriptedServer, Origin]]:
    script = ScriptedServer(answer, keep_bodies)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    try:
        yield script, Origin("http", "127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def echo(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(request.body) + request.body)
    return True


def transport(**options: object) -> AsyncHttpTransport:
    return AsyncHttpTransport(provider="test", timeout=10.0, **options)  # type: ignore[arg-type]


# ---- requests -----------------------------------------------------------------------------------------------
def test_buffers_arrive_in_order_with_the_head_http_client_would_send() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    parts: list[bytes | bytearray | memoryview] = [
        b'{"inputs":[]}',
        bytearray(b"\x00\x01"),
        array.data,  # 2-D float32: sent as its raw bytes
        b"",
    ]

    async def scenario() -> None:
        async with scripted(echo) as (server, origin), transport() as client:
            response = await client.request("POST", origin, "/v2/x", parts, {"Content-Type": "x/y"})
            assert bytes(response.body) == b'{"inputs":[]}\x00\x01' + array.tobytes()
            assert isinstance(response.body, bytearray)
            seen = server.requests[-1]
            assert seen.head.startswith(b"POST /v2/x HTTP/1.1\r\n")
            assert seen.headers["host"] == f"127.0.0.1:{origin.port}"
            assert seen.headers["accept-encoding"] == "identity"
            assert seen.headers["content-length"] == str(len(seen.body))
            assert seen.headers["content-type"] == "x/y"
            assert response.headers["content-length"] == str(len(seen.body))

    asyncio.run(scenario())


def test_a_large_body_in_more_buffers_than_one_sendmsg_takes_arrives_intact() -> None:
    rng = np.random.default_rng(7)
    parts = [rng.bytes(size) for size in (3, 4 << 20, 1, 3 << 20)] + [b"x"] * 1500  # over IOV_MAX buffers

    async def scenario() -> None:
        async with scripted(echo) as (_, origin), transport() as client:
            response = await client.request("POST", origin, "/echo", parts)
            assert bytes(response.body) == b"".join(parts)

    asyncio.run(scenario())


def test_a_16_mib_body_is_sent_without_being_copied() -> None:
    tensor = np.random.default_rng(11).standard_normal(4 * 1024 * 1024).astype(np.float32)

    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    async def scenario() -> int:
        async with scripted(answer, keep_bodies=False) as (_, origin), transport() as client:
            tracemalloc.start()
            try:
                response = await client.request("POST", origin, "/", [b'{"inputs":[]}', tensor.data])
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert response.status == 204
            return peak

    # Joining, or letting asyncio buffer what the socket does not take at once, would cost megabytes here.
    assert asyncio.run(scenario()) < 2 * 1024 * 1024


def test_forbidden_characters_in_a_header_are_refused_before_sending() -> None:
    async def scenario() -> None:
        async with scripted(echo) as (server, origin), transport() as client:
            with pytest.raises(ValueError, match="invalid HTTP header"):
                await client.request("GET", origin, "/", headers={"X-Evil": "a\r\nInjected: yes"})
            with pytest.raises(ValueError, match="invalid request path"):
                await client.request("GET", origin, "/a b")
            assert server.requests == [] and client.connections_opened == 0

    asyncio.run(scenario())


# ---- response framings --------------------------------------------------------------------------------------
def test_a_gzip_chunked_response_is_inflated_and_keeps_the_connection() -> None:
    payload = b"scores " * 5000
    packed = gzip.compress(payload)

    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n")
        for start in range(0, len(packed), 1000):
            chunk = packed[start : start + 1000]
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
        writer.write(b"0\r\nX-Trailer: done\r\n\r\n")
        return True

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport() as client:
            for _ in range(2):
                response = await client.request("GET", origin, "/", headers={"Accept-Encoding": "gzip"})
                assert bytes(response.body) == payload
                assert "content-encoding" not in response.headers
            assert client.connections_opened == 1

    asyncio.run(scenario())


def test_a_response_written_byte_by_byte_after_an_interim_answer_is_parsed() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        message = (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
        )
        for index in range(len(message)):
            writer.write(message[index : index + 1])
            await writer.drain()
        return True

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport() as client:
            response = await client.request("GET", origin, "/")
            assert (response.status, bytes(response.body), response.headers["x-a"]) == (201, b"hello", "1")

    asyncio.run(scenario())


def test_a_body_ended_by_closing_the_connection_is_read_whole_and_the_connection_dropped() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + request.path.encode() * 1000)
        return False

    async def scenario() -> None:
        async with scripted(answer) as (server, origin), transport() as client:
            for path in ("/a", "/b"):
                assert bytes((await client.request("GET", origin, path)).body) == path.encode() * 1000
            assert server.connections == 2 and client.connections_opened == 2

    asyncio.run(scenario())


def test_connection_close_in_the_answer_is_honoured() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        return True  # the server would keep it open; the client must not reuse it anyway

    async def scenario() -> None:
        async with scripted(answer) as (server, origin), transport() as client:
            for _ in range(2):
                assert bytes((await client.request("GET", origin, "/")).body) == b"ok"
            assert client.connections_opened == 2 and server.connections == 2

    asyncio.run(scenario())


# ---- servers that hang up or misbehave ----------------------------------------------------------------------
def test_a_pooled_connection_the_server_hung_up_on_is_retried_once_on_a_new_one() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.connection == 1 and request.index == 2:
            return False  # hang up without answering, as a server that restarted would
        return await echo(request, writer)

    async def scenario() -> None:
        async with scripted(answer) as (server, origin), transport() as client:
            await client.request("POST", origin, "/", b"one")
            assert bytes((await client.request("POST", origin, "/", b"two")).body) == b"two"
            assert client.connections_opened == 2 and server.connections == 2

    asyncio.run(scenario())


def test_a_fresh_connection_closed_without_answer_is_a_retryable_error() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        return False

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport() as client:
            with pytest.raises(ProviderError) as raised:
                await client.request("POST", origin, "/", b"x")
            assert raised.value.retryable and raised.value.code == "ConnectionReset"
            assert raised.value.provider == "test"

    asyncio.run(scenario())


def test_a_connection_closed_inside_the_body_is_a_retryable_incomplete_read() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        return False

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport() as client:
            with pytest.raises(ProviderError, match="after 40 of 100 body bytes") as raised:
                await client.request("GET", origin, "/")
            assert raised.value.retryable and raised.value.code == "IncompleteRead"

    asyncio.run(scenario())


def test_a_malformed_status_line_is_a_bad_response() -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport() as client:
            with pytest.raises(ProviderError) as raised:
                await client.request("GET", origin, "/")
            assert raised.value.code == "BadResponse" and not raised.value.retryable

    asyncio.run(scenario())


def test_a_refused_connection_is_a_retryable_error() -> None:
    async def scenario() -> None:
        async with transport() as client:
            with pytest.raises(ProviderError) as raised:
                await client.request("GET", Origin("http", "127.0.0.1", free_port()), "/")
            assert raised.value.retryable and raised.value.code == "ConnectionRefused"

    asyncio.run(scenario())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_max_response_bytes_is_refused_with_the_setting_to_raise(framing: str) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.path == "/small":
            return await echo(request, writer)
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"
                + b"x" * 2000
                + b"\r\n0\r\n\r\n"
            )
        return True

    async def scenario() -> None:
        async with scripted(answer) as (_, origin), transport(max_response_bytes=1000) as client:
            with pytest.raises(PayloadError, match=r"AsyncHttpTransport\(max_response_bytes=\.\.\.\)"):
                await client.request("GET", origin, "/")
            # the rest of that body is never read, so its connection cannot serve the next request
            assert bytes((await client.request("POST", origin, "/small", b"ok")).body) == b"ok"
            assert client.connections_opened == 2

    asyncio.run(scenario())


# ---- event loops --------------------------------------------------------------------------------------------
class _ThreadedEcho(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def threaded_echo() -> Iterator[Origin]:
    """An echo server outside any event loop, so that several loops can talk to it in turn."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ThreadedEcho)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Origin("http", "127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_transport_serves_a_second_event_loop_after_the_first_closed(threaded_echo: Origin) -> None:
    client = transport()

    async def call_once() -> None:
        assert bytes((await client.request("POST", threaded_echo, "/", b"hi")).body) == b"hi"

    asyncio.run(call_once())  # leaves its pooled connection behind, on a loop that then closes
    asyncio.run(call_once())  # drops that connection: its loop can no longer serve it
    assert client.connections_opened == 2 and client.open_connections == 1
    asyncio.run(client.aclose())
    assert client.open_connections == 0
