"""The asyncio transport against a real tritonserver, and over TLS against a small asyncio HTTPS server.

One server per module serves two Python-backend models: ``identity`` (``INPUT0`` FP32 [-1] back as ``OUTPUT0``)
and ``gate``, the same model held by a gate the test controls: a request carrying the parameter ``gate`` (a
folder) makes the model write ``started`` there, then wait until ``open`` appears (at most a minute), so a test
knows the server is busy with its request and decides when it answers, without racing a sleep.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit.adapters._http import Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.errors import MissingDependencyError, ProviderError
from endpointkit.payloads import decode_response, encode_request
from tests.triton_identity_models import stub_environment

_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

_GATED_IDENTITY_PY = textwrap.dedent(
    '''
    """INPUT0 back as OUTPUT0; with a "gate" request parameter, only once the test opened that gate."""

    import json
    import os
    import time

    import triton_python_backend_utils as pb_utils

    GATE_BOUND_SECONDS = 60.0


    def wait_for_gate(folder):
        with open(os.path.join(folder, "started"), "w"):
            pass
        deadline = time.monotonic() + GATE_BOUND_SECONDS
        while not os.path.exists(os.path.join(folder, "open")) and time.monotonic() < deadline:
            time.sleep(0.01)


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                gate = json.loads(request.parameters() or "{}").get("gate")
                if gate:
                    wait_for_gate(gate)
                tensor = pb_utils.get_input_tensor_by_name(request, "INPUT0")
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", tensor.as_numpy())])
                )
            return responses
    '''
).lstrip()


def _write_models(root: Path) -> Path:
    for name in ("identity", "gate"):
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(_CONFIG.format(name=name))
        (root / name / "1" / "model.py").write_text(_GATED_IDENTITY_PY)
    return root


def _start_tritonserver(repository: Path) -> Any:
    try:
        from endpointkit.adapters.local._tritonserver import TritonServerProcess, find_tritonserver

        find_tritonserver()
    except (ImportError, MissingDependencyError) as exc:
        pytest.fail(f"tritonserver is needed (pip install -e '.[local,dev]'): {exc}", pytrace=False)
    return TritonServerProcess.start(repository, environment=stub_environment(), ready_timeout=120.0)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    server = _start_tritonserver(_write_models(tmp_path_factory.mktemp("async-models")))
    try:
        yield Origin("http", "127.0.0.1", server.http_port)
    finally:
        server.stop()


async def infer(
    transport: AsyncHttpTransport,
    origin: Origin,
    array: np.ndarray[Any, Any],
    *,
    model: str = "identity",
    gate: Path | None = None,
    timeout: float | None = None,
) -> np.ndarray[Any, Any]:
    """One binary call of ``model``; its OUTPUT0."""
    encoded = encode_request(
        {"INPUT0": array}, binary=True, parameters=None if gate is None else {"gate": str(gate)}
    )
    raw = await transport.request(
        "POST", origin, f"/v2/models/{model}/infer", encoded.body, encoded.headers, timeout=timeout
    )
    assert raw.status == 200, bytes(raw.body[:300])
    return decode_response(raw.body, raw.headers)["OUTPUT0"]


async def wait_for_file(path: Path, bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {bound:g} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A closed gate; opened at teardown whatever happened, so the model never holds a request past the test."""
    folder = tmp_path / "gate"
    folder.mkdir()
    try:
        yield folder
    finally:
        (folder / "open").touch()


# ---- against Triton -----------------------------------------------------------------------------------------
@pytest.mark.triton
def test_a_call_round_trips_through_triton(triton: Origin) -> None:
    array = np.linspace(-1, 1, 257, dtype=np.float32)

    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local") as transport:
            np.testing.assert_array_equal(await infer(transport, triton, array), array)
            np.testing.assert_array_equal(await infer(transport, triton, array * 2), array * 2)
            assert transport.connections_opened == 1

    asyncio.run(scenario())


@pytest.mark.triton
def test_64_concurrent_calls_share_at_most_max_concurrency_connections(triton: Origin) -> None:
    arrays = [np.full(64 + index, index, dtype=np.float32) for index in range(64)]

    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local", max_concurrency=4) as transport:
            results = await asyncio.gather(*(infer(transport, triton, array) for array in arrays))
            for array, result in zip(arrays, results, strict=True):
                np.testing.assert_array_equal(result, array)
            assert 1 <= transport.connections_opened <= 4
            assert transport.open_connections <= 4

    asyncio.run(scenario())


@pytest.mark.triton
def test_a_cancelled_call_closes_its_connection_and_the_pool_stays_usable(triton: Origin, gate: Path) -> None:
    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local", max_concurrency=2) as transport:
            await infer(transport, triton, np.zeros(4, dtype=np.float32))  # one pooled connection
            held = asyncio.create_task(
                infer(transport, triton, np.ones(4, np.float32), model="gate", gate=gate)
            )
            await wait_for_file(gate / "started")
            held.cancel()
            with pytest.raises(asyncio.CancelledError):
                await held
            (gate / "open").touch()  # Triton now answers the cancelled request, to a closed socket
            for value in (2.0, 3.0, 4.0):  # a stale answer on a reused connection would come back here
                array = np.full(4, value, dtype=np.float32)
                np.testing.assert_array_equal(await infer(transport, triton, array), array)
            array = np.full(3, 5.0, dtype=np.float32)
            np.testing.assert_array_equal(
                await infer(transport, triton, array, model="gate", gate=gate), array
            )
            # the cancelled call had taken the pooled connection and closed it; one new one served the rest
            assert transport.connections_opened == 2 and transport.open_connections == 1

    asyncio.run(scenario())


@pytest.mark.triton
def test_a_slow_answer_past_the_timeout_is_a_timeout_error(triton: Origin, gate: Path) -> None:
    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local") as transport:
            with pytest.raises(ProviderError) as raised:
                await infer(transport, triton, np.ones(4, np.float32), model="gate", gate=gate, timeout=0.5)
            assert raised.value.code == "Timeout" and not raised.value.retryable
            assert raised.value.provider == "local" and str(triton) in str(raised.value)
            (gate / "open").touch()
            array = np.arange(6, dtype=np.float32)
            np.testing.assert_array_equal(await infer(transport, triton, array), array)
            assert transport.connections_opened == 2  # the timed-out connection was not reused

    asyncio.run(scenario())


@pytest.mark.triton
def test_a_16_mib_tensor_round_trips(triton: Origin) -> None:
    array = np.random.default_rng(3).standard_normal(4 * 1024 * 1024).astype(np.float32)

    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local") as transport:
            np.testing.assert_array_equal(await infer(transport, triton, array), array)

    asyncio.run(scenario())


@pytest.mark.triton
def test_aclose_leaves_no_socket_open(triton: Origin) -> None:
    async def scenario() -> None:
        before = _open_descriptors()
        transport = AsyncHttpTransport(provider="local", max_concurrency=6)
        arrays = [np.full(8, index, dtype=np.float32) for index in range(24)]
        await asyncio.gather(*(infer(transport, triton, array) for array in arrays))
        assert transport.open_connections == transport.connections_opened
        assert _open_descriptors() - before == transport.open_connections
        await transport.aclose()
        assert transport.open_connections == 0
        assert _open_descriptors() == before

    asyncio.run(scenario())


@pytest.mark.triton
def test_a_server_gone_is_a_retryable_error(identity_repository: Path) -> None:
    server = _start_tritonserver(identity_repository)
    origin = Origin("http", "127.0.0.1", server.http_port)

    async def scenario() -> None:
        async with AsyncHttpTransport(provider="local") as transport:
            try:
                await infer(transport, origin, np.ones(2, np.float32))
            finally:
                server.stop()  # with the pooled connection still open: Triton drops it on exit
            with pytest.raises(ProviderError) as raised:
                await infer(transport, origin, np.ones(2, np.float32))
            assert raised.value.retryable and raised.value.code == "ConnectionRefused"

    asyncio.run(scenario())


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- TLS ----------------------------------------------------------------------------------------------------
async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 keep-alive echo: each request's body comes back as the response body."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:-2])
            body = await reader.readexactly(int(fields.get("Content-Length", "0")))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass  # the client hung up, or refused our certificate
    finally:
        writer.close()


@asynccontextmanager
async def tls_echo_server(context: ssl.SSLContext) -> AsyncIterator[Origin]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=context)
    try:
        yield Origin("https", "127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def certificates() -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for 127.0.0.1, client trusting its CA, client trusting another CA)."""
    trustme = pytest.importorskip("trustme")
    authority, stranger = trustme.CA(), trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    trusting, distrusting = ssl.create_default_context(), ssl.create_default_context()
    authority.configure_trust(trusting)
    stranger.configure_trust(distrusting)
    return server, trusting, distrusting


def test_tls_with_verification_carries_large_bodies_on_one_connection(
    certificates: tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, trusting, _ = certificates
    payload = np.random.default_rng(5).bytes(3 * 1024 * 1024 + 7)

    async def scenario() -> None:
        async with (
            tls_echo_server(server_context) as origin,
            AsyncHttpTransport(provider="aks", ssl_context=trusting) as transport,
        ):
            large = await transport.request("POST", origin, "/echo", [b"head:", memoryview(payload)])
            assert large.status == 200 and bytes(large.body) == b"head:" + payload
            small = await transport.request("POST", origin, "/echo", b"small")
            assert small.status == 200 and bytes(small.body) == b"small"
            assert transport.connections_opened == 1

    asyncio.run(scenario())


def test_tls_with_an_untrusted_certificate_names_host_and_reason(
    certificates: tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, _, distrusting = certificates

    async def scenario() -> None:
        async with (
            tls_echo_server(server_context) as origin,
            AsyncHttpTransport(provider="aks", ssl_context=distrusting) as transport,
        ):
            with pytest.raises(ProviderError) as raised:
                await transport.request("GET", origin, "/")
            assert raised.value.code == "TLSVerificationFailed" and not raised.value.retryable
            assert "127.0.0.1" in str(raised.value) and "certificate" in str(raised.value)
            assert transport.open_connections == 0

    asyncio.run(scenario())
