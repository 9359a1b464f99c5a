"""The SageMaker protocol of the local target: served on 127.0.0.1 only, and translated to Triton's v2 HTTP API
as Triton's own SageMaker front end does (src/sagemaker_server.cc).

The first tests run the front against a stand-in for tritonserver's HTTP port, which records what reached it;
the last ones deploy real endpoints and look at the sockets their processes listen on.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.local import KEY_HEADER
from endpointkit.adapters.local._sagemaker_front import BINARY_JSON_PREFIX, spawn
from tests.adapters.conftest import IDENTITY_MODEL
from tests.adapters.test_local import INPUTS, adapter_for, local_spec

MODEL = "ensemble/with slash"


@dataclass
class Upstream:
    """A stand-in for tritonserver's HTTP port: records each request and answers what the test set."""

    ready_status: int = 200
    reply_status: int = 200
    reply_headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    reply_body: bytes = b'{"outputs": []}'
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, int]]:
    record = Upstream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            record.seen.append((self.command, self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(record.ready_status, {}, b"")

        def do_POST(self) -> None:
            self._answer(record.reply_status, record.reply_headers, record.reply_body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def front(upstream: tuple[Upstream, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A front for the stand-in, serving ``MODEL``; yields its port."""
    log_path = tmp_path_factory.mktemp("front") / "front.log"
    process, port = spawn(upstream_port=upstream[1], model=MODEL, log_path=log_path)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def recorded(upstream: tuple[Upstream, int]) -> Iterator[Upstream]:
    """The stand-in's record, emptied, with its default answers restored after the test."""
    record = upstream[0]
    record.seen.clear()
    yield record
    record.ready_status, record.reply_status = 200, 200
    record.reply_headers = {"Content-Type": "application/json"}
    record.reply_body = b'{"outputs": []}'


def call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_binary_invocation_becomes_a_v2_infer_with_the_header_length(front: int, recorded: Upstream) -> None:
    recorded.reply_headers = {
        "Inference-Header-Content-Length": "11",
        "Content-Type": "application/octet-stream",
    }
    recorded.reply_body = b'{"a": "b"} \x00\x01'
    request = b'{"inputs":[]}' + b"\x00" * 8
    content_type = f"{BINARY_JSON_PREFIX}13"

    status, headers, body = call(
        front, "POST", "/invocations", request, {"Content-Type": content_type, KEY_HEADER: "secret"}
    )

    assert (status, headers["content-type"], body) == (200, f"{BINARY_JSON_PREFIX}11", recorded.reply_body)
    ((method, path, sent, received),) = recorded.seen
    assert (method, path, received) == ("POST", "/v2/models/ensemble%2Fwith%20slash/infer", request)
    assert sent["Inference-Header-Content-Length"] == "13"
    assert sent[KEY_HEADER] == "secret"  # Triton's --http-restricted-api checks it there
    assert sent["Accept-Encoding"] == "identity"


def test_json_invocation_passes_through_with_its_status(front: int, recorded: Upstream) -> None:
    recorded.reply_status, recorded.reply_body = 400, b'{"error": "unexpected shape"}'

    status, headers, body = call(
        front, "POST", "/invocations", b'{"inputs": []}', {"Content-Type": "application/json"}
    )

    assert (status, headers["content-type"], body) == (400, "application/json", recorded.reply_body)
    ((_, _, sent, received),) = recorded.seen
    assert "Inference-Header-Content-Length" not in sent and received == b'{"inputs": []}'


def test_chunked_invocation_is_forwarded_whole(front: int, recorded: Upstream) -> None:
    chunked = b'5\r\n{"inp\r\n9\r\nuts": []}\r\n0\r\n\r\n'
    status, _, _ = call(front, "POST", "/invocations", chunked, {"Transfer-Encoding": "chunked"})
    assert status == 200
    assert recorded.seen[0][3] == b'{"inputs": []}'


def test_unreadable_json_header_size_is_refused(front: int, recorded: Upstream) -> None:
    status, _, body = call(
        front, "POST", "/invocations", b"{}", {"Content-Type": f"{BINARY_JSON_PREFIX}twelve"}
    )
    assert status == 400 and "Unable to parse inference header size" in json.loads(body)["error"]
    assert recorded.seen == []


def test_ping_follows_triton_readiness(front: int, recorded: Upstream) -> None:
    assert call(front, "GET", "/ping")[0] == 200
    recorded.ready_status = 400
    assert call(front, "GET", "/ping")[0] == 400
    assert [(method, path) for method, path, _, _ in recorded.seen] == [("GET", "/v2/health/ready")] * 2


def test_other_paths_and_methods_are_refused_as_triton_does(front: int, recorded: Upstream) -> None:
    assert call(front, "GET", "/v2/models/anything/infer")[0] == 400
    assert call(front, "POST", "/models/x/invoke", b"{}")[0] == 400
    assert call(front, "GET", "/invocations")[0] == 405
    assert call(front, "POST", "/ping", b"")[0] == 405
    assert recorded.seen == []


# ---- with a real tritonserver ----------------------------------------------------------------------------
def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """The (address, port) of every TCP socket process ``pid`` listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = descriptor.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                address_hex, port_hex = local.split(":")
                packed = bytes.fromhex(address_hex)
                # /proc prints the address as 32-bit words in host (little-endian) order.
                words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
                found.append((socket.inet_ntop(family, words), int(port_hex, 16)))
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, also written IPv4-mapped (gRPC listens on ``::ffff:127.0.0.1``)."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


@pytest.mark.triton
def test_sagemaker_listener_listens_on_loopback_only(identity_repository: Path, state_root: Path) -> None:
    spec = local_spec(identity_repository, state_root, name="sagemaker-loopback", sagemaker_protocol=True)
    adapter = adapter_for(spec)
    try:
        state = ek.apply(spec, adapter=adapter)
        (server,) = state.extra["servers"]
        port = server["sagemaker_port"]
        listening = listening_addresses(server["pid"]) + listening_addresses(server["sagemaker_pid"])

        assert ("127.0.0.1", port) in listening
        assert all(is_loopback(address) for address, _ in listening), listening
        response = ek.invoke_endpoint(state, INPUTS, adapter=adapter, binary=True)
        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


@pytest.mark.triton
def test_api_key_guards_invocations(identity_repository: Path, state_root: Path) -> None:
    spec = local_spec(
        identity_repository, state_root, name="sagemaker-keyed", sagemaker_protocol=True, api_key=True
    )
    adapter = adapter_for(spec)
    try:
        state = ek.apply(spec, adapter=adapter)
        key = Path(state.extra["key_file"]).read_text().strip()
        port = state.extra["servers"][0]["sagemaker_port"]
        body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})
        statuses = [
            call(
                port, "POST", "/invocations", body.encode(), {"Content-Type": "application/json", **headers}
            )[0]
            for headers in ({}, {KEY_HEADER: "wrong"}, {KEY_HEADER: key})
        ]
        assert statuses == [403, 403, 200]
        response: Any = ek.invoke_endpoint(state, INPUTS, adapter=adapter)
        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])
        assert response.model_name == IDENTITY_MODEL
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()
