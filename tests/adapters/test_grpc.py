"""The gRPC transport against a real tritonserver: every datatype, 16 MiB, streams, errors, TLS, the key, leaks.

One server per module serves the identity models of ``tests/triton_identity_models.py`` and the streaming models of
``tests/triton_decoupled_models.py``; TLS with the key check, and a server killed mid-call, get servers of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit.adapters._grpc import GrpcConnection, trusted_roots
from endpointkit.adapters._tls_context import CA_BUNDLE_VARIABLES
from endpointkit.errors import AuthError, InvalidRequestError, MissingDependencyError, ProviderError
from endpointkit.payloads import InferResponse, Tensor
from endpointkit.payloads._grpc import GrpcInferRequest, encode_grpc_request
from tests.adapters.conftest import servers_under
from tests.payloads.conftest import ALL_DATATYPES, assert_identical, missing_triton_dependency, sample
from tests.triton_decoupled_models import (
    COUNTER_MODEL,
    FAIL_AFTER,
    FAILING_COUNTER_MODEL,
    SLOW_ECHO_MODEL,
    cancelled_marker,
    started_marker,
    write_decoupled_models,
)
from tests.triton_identity_models import (
    MIXED_MODEL,
    SCALAR_DATATYPES,
    SCALAR_MODEL,
    identity_model_name,
    stub_environment,
    write_identity_models,
)

pytestmark = pytest.mark.triton

KEY_HEADER = "endpointkit-key"
KEY = "s3cret-key-value"
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Server:
    process: Any
    repository: Path
    markers: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.process.grpc_port}"


def start_server(
    folder: Path, *, datatypes: tuple[str, ...] = ALL_DATATYPES, extra: tuple[str, ...] = ()
) -> Server:
    try:
        from endpointkit.adapters.local._tritonserver import TritonServerProcess, find_tritonserver

        find_tritonserver()
    except (ImportError, MissingDependencyError) as exc:
        missing_triton_dependency("tritonserver", "pip install -e '.[local,dev]'", exc)
    repository = write_identity_models(folder / "models", datatypes)
    write_decoupled_models(repository, folder / "markers")
    process = TritonServerProcess.start(
        repository, environment=stub_environment(), ready_timeout=180.0, extra_arguments=list(extra)
    )
    return Server(process, repository, folder / "markers")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("grpc-models"))
    try:
        yield started
    finally:
        started.process.stop()


@pytest.fixture
def connection(server: Server) -> Iterator[GrpcConnection]:
    with GrpcConnection(server.address, provider="local", label="test-endpoint") as opened:
        yield opened


def wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds:g} s")
        time.sleep(0.05)


def counter_request(
    count: int, *, delay_ms: int = 0, model: str = COUNTER_MODEL, request_id: str = ""
) -> GrpcInferRequest:
    inputs = {"COUNT": np.array([count], np.int32), "DELAY_MS": np.array([delay_ms], np.int32)}
    return encode_grpc_request(inputs, model_name=model, request_id=request_id or None, stream=True)


def echo_request(array: Any, *, model: str = identity_model_name("FP32"), **options: Any) -> GrpcInferRequest:
    return encode_grpc_request({"INPUT0": array}, model_name=model, **options)


def client_connections(port: int) -> int:
    """Established TCP connections from this process to ``port`` on loopback."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


class TestTensors:
    @pytest.mark.parametrize("datatype", ALL_DATATYPES)
    def test_every_datatype_round_trips(self, connection: GrpcConnection, datatype: str) -> None:
        arrays = {"INPUT0": sample(datatype, (5,)), "INPUT1": sample(datatype, (2, 3))}
        tensors = [Tensor(name, array, datatype) for name, array in arrays.items()]
        response = connection.infer(encode_grpc_request(tensors, model_name=identity_model_name(datatype)))
        assert response.datatypes == {"OUTPUT0": datatype, "OUTPUT1": datatype}
        assert_identical(response["OUTPUT0"], arrays["INPUT0"], datatype)
        assert_identical(response["OUTPUT1"], arrays["INPUT1"], datatype)

    def test_every_datatype_in_one_request(self, connection: GrpcConnection) -> None:
        tensors = [Tensor(f"IN_{datatype}", sample(datatype, (4,)), datatype) for datatype in ALL_DATATYPES]
        response = connection.infer(encode_grpc_request(tensors, model_name=MIXED_MODEL, request_id="mixed"))
        assert response.id == "mixed"
        for datatype in ALL_DATATYPES:
            assert_identical(response[f"OUT_{datatype}"], sample(datatype, (4,)), datatype)

    def test_scalar_outputs(self, connection: GrpcConnection) -> None:
        tensors = [
            Tensor(f"IN_{datatype}", sample(datatype, (1,)), datatype) for datatype in SCALAR_DATATYPES
        ]
        response = connection.infer(encode_grpc_request(tensors, model_name=SCALAR_MODEL))
        for datatype in SCALAR_DATATYPES:
            assert_identical(response[f"OUT_{datatype}"], sample(datatype, (1,)).reshape(()), datatype)

    @pytest.mark.parametrize("datatype", ["FP32", "BYTES"])
    def test_empty_tensors(self, connection: GrpcConnection, datatype: str) -> None:
        empty = sample(datatype, (0,))
        tensors = [Tensor("INPUT0", empty, datatype)]
        response = connection.infer(encode_grpc_request(tensors, model_name=identity_model_name(datatype)))
        assert_identical(response["OUTPUT0"], empty, datatype)

    def test_16_mib_both_ways_as_a_view_of_the_received_bytes(self, connection: GrpcConnection) -> None:
        array = np.random.default_rng(0).standard_normal(4 * 1024 * 1024).astype(np.float32)
        output = connection.infer(echo_request(array))["OUTPUT0"]
        assert np.array_equal(output, array)
        base = output
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, bytes) and len(base) > array.nbytes  # the message grpcio received, not a copy

    def test_one_channel_shared_by_threads(self, server: Server, connection: GrpcConnection) -> None:
        failures: list[BaseException] = []
        connection.infer(echo_request(np.ones(1, np.float32)))
        opened = client_connections(server.process.grpc_port)  # closing ones of earlier tests may linger

        def work(seed: int) -> None:
            try:
                for index in range(10):
                    array = np.full(8, seed * 100 + index, np.float32)
                    assert np.array_equal(connection.infer(echo_request(array))["OUTPUT0"], array)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert not failures
        assert 1 <= client_connections(server.process.grpc_port) <= opened


class TestErrors:
    @pytest.mark.parametrize(
        ("tensor", "named"),
        [
            (Tensor("NOPE", np.ones(2, np.float32)), "'NOPE'"),
            (Tensor("INPUT0", np.ones(2, np.int32)), "'INPUT0' data-type is 'INT32'"),
            (Tensor("INPUT0", np.ones((2, 2), np.float32)), "unexpected shape for input 'INPUT0'"),
        ],
        ids=["unknown-input", "wrong-datatype", "wrong-shape"],
    )
    def test_bad_input_is_refused_with_tritons_words(
        self, connection: GrpcConnection, tensor: Tensor, named: str
    ) -> None:
        with pytest.raises(InvalidRequestError, match=named) as caught:
            connection.infer(encode_grpc_request([tensor], model_name=identity_model_name("FP32")))
        assert (caught.value.code, caught.value.retryable, caught.value.provider) == (
            "INVALID_ARGUMENT",
            False,
            "local",
        )
        assert "test-endpoint" in str(caught.value)

    def test_unknown_output(self, connection: GrpcConnection) -> None:
        request = encode_grpc_request(
            {"INPUT0": np.ones(1, np.float32)}, ["NOPE"], model_name="identity_fp32"
        )
        with pytest.raises(InvalidRequestError, match="output 'NOPE'"):
            connection.infer(request)

    def test_unknown_model_is_refused_like_http_404(self, connection: GrpcConnection) -> None:
        with pytest.raises(InvalidRequestError, match="unknown model: 'nothing'") as caught:
            connection.infer(echo_request(np.ones(1, np.float32), model="nothing"))
        assert caught.value.code == "NOT_FOUND"

    def test_a_decoupled_model_needs_a_stream(self, connection: GrpcConnection) -> None:
        with pytest.raises(ProviderError, match="decoupled") as caught:
            connection.infer(counter_request(1))
        assert caught.value.code == "UNIMPLEMENTED"

    def test_a_deadline_is_the_http_time_out_and_the_server_keeps_serving(
        self, server: Server, connection: GrpcConnection
    ) -> None:
        request = encode_grpc_request(
            {"INPUT0": np.ones(1, np.float32), "DELAY_MS": np.array([3000], np.int32)},
            model_name=SLOW_ECHO_MODEL,
            request_id=f"deadline-{uuid.uuid4().hex}",
        )
        with pytest.raises(ProviderError, match=r"did not answer within 0\.5 s") as caught:
            connection.infer(request, timeout=0.5)
        assert (caught.value.code, caught.value.retryable) == ("Timeout", False)
        assert np.array_equal(connection.infer(echo_request(np.ones(3, np.float32)))["OUTPUT0"], np.ones(3))

    def test_a_never_started_endpoint(self) -> None:
        from endpointkit.adapters.local._tritonserver import free_port

        with GrpcConnection(f"127.0.0.1:{free_port()}", label="gone") as nowhere:
            with pytest.raises(ProviderError, match="gone is unavailable: is the server running") as caught:
                nowhere.infer(echo_request(np.ones(1, np.float32)))
            assert (caught.value.code, caught.value.retryable) == ("ConnectionRefused", True)
            with pytest.raises(ProviderError, match="gone is unavailable"):
                list(nowhere.stream([counter_request(2)]))

    def test_a_closed_connection_reopens(self, connection: GrpcConnection) -> None:
        connection.infer(echo_request(np.ones(1, np.float32)))
        connection.close()
        connection.close()
        assert connection.infer(echo_request(np.ones(2, np.float32)))["OUTPUT0"].shape == (2,)


class TestStreams:
    def test_a_decoupled_model_yields_each_response(self, connection: GrpcConnection) -> None:
        responses = list(connection.stream([counter_request(5, request_id="five")]))
        assert [int(response["INDEX"][0]) for response in responses] == [0, 1, 2, 3, 4]
        assert all(response.id == "five" for response in responses)
        assert [response.parameters["triton_final_response"] for response in responses] == [False] * 5

    def test_a_model_that_is_not_decoupled_yields_its_one_response(self, connection: GrpcConnection) -> None:
        array = sample("FP32", (4,))
        (response,) = connection.stream([echo_request(array, stream=True)])
        assert_identical(response["OUTPUT0"], array, "FP32")

    def test_several_requests_on_one_stream(self, connection: GrpcConnection) -> None:
        requests = [
            counter_request(3, request_id="a"),
            echo_request(np.ones(2, np.float32), stream=True, request_id="b"),
        ]
        responses = list(connection.stream(requests))
        assert sorted(response.id or "" for response in responses) == ["a", "a", "a", "b"]

    def test_a_model_failing_mid_stream(self, connection: GrpcConnection) -> None:
        received: list[InferResponse] = []
        with pytest.raises(
            ProviderError, match=rf"'{FAILING_COUNTER_MODEL}' failed mid-stream.*response {FAIL_AFTER}"
        ) as caught:
            received.extend(connection.stream([counter_request(5, model=FAILING_COUNTER_MODEL)]))
        assert len(received) == FAIL_AFTER
        assert caught.value.code == "ModelError"

    def test_bad_input_over_a_stream(self, connection: GrpcConnection) -> None:
        request = encode_grpc_request({"NOPE": np.ones(1, np.int32)}, model_name=COUNTER_MODEL, stream=True)
        with pytest.raises(InvalidRequestError, match="'NOPE'"):
            list(connection.stream([request]))

    def test_an_abandoned_stream_is_cancelled_on_the_server(
        self, server: Server, connection: GrpcConnection
    ) -> None:
        request_id = f"abandoned-{uuid.uuid4().hex}"
        for index, _ in enumerate(
            connection.stream([counter_request(500, delay_ms=20, request_id=request_id)])
        ):
            if index == 1:
                break
        wait_for(cancelled_marker(server.markers, request_id).exists, "the model saw no cancellation")
        assert [int(r["INDEX"][0]) for r in connection.stream([counter_request(2)])] == [0, 1]


class TestAsyncio:
    def test_infer_and_stream(self, connection: GrpcConnection) -> None:
        async def main() -> tuple[InferResponse, list[int]]:
            response = await connection.ainfer(echo_request(np.arange(3, dtype=np.float32)))
            indexes = [int(r["INDEX"][0]) async for r in connection.astream([counter_request(3)])]
            await connection.aclose()
            return response, indexes

        response, indexes = asyncio.run(main())
        assert np.array_equal(response["OUTPUT0"], np.arange(3))
        assert indexes == [0, 1, 2]

    def test_each_event_loop_gets_its_channel(self, connection: GrpcConnection) -> None:
        for _ in range(2):
            response = asyncio.run(connection.ainfer(echo_request(np.ones(2, np.float32))))
            assert response["OUTPUT0"].shape == (2,)
        connection.close()

    def test_errors_are_mapped(self, connection: GrpcConnection) -> None:
        async def main() -> None:
            try:
                with pytest.raises(InvalidRequestError, match="'NOPE'"):
                    await connection.ainfer(
                        encode_grpc_request({"NOPE": np.ones(1)}, model_name="identity_fp32")
                    )
                with pytest.raises(ProviderError, match="failed mid-stream"):
                    async for _ in connection.astream([counter_request(5, model=FAILING_COUNTER_MODEL)]):
                        pass
            finally:
                await connection.aclose()

        asyncio.run(main())

    def test_an_abandoned_stream_is_cancelled_on_the_server(
        self, server: Server, connection: GrpcConnection
    ) -> None:
        request_id = f"abandoned-async-{uuid.uuid4().hex}"

        async def main() -> None:
            stream = connection.astream([counter_request(500, delay_ms=20, request_id=request_id)])
            async with contextlib.aclosing(stream):
                async for response in stream:
                    if int(response["INDEX"][0]) == 1:
                        break
            await connection.aclose()

        asyncio.run(main())
        wait_for(cancelled_marker(server.markers, request_id).exists, "the model saw no cancellation")


class TestNoLeaks:
    def test_threads_and_connections_end_with_close(self, server: Server) -> None:
        with GrpcConnection(server.address) as warm:  # grpcio starts its process-wide machinery once
            list(warm.stream([counter_request(1)]))
            asyncio.run(warm.ainfer(echo_request(np.ones(1, np.float32))))
        before = set(threading.enumerate())
        connection = GrpcConnection(server.address)
        connection.infer(echo_request(np.ones(4, np.float32)))
        for index, _ in enumerate(connection.stream([counter_request(100, delay_ms=10)])):
            if index == 2:
                break
        list(connection.stream([counter_request(3)]))
        asyncio.run(connection.ainfer(echo_request(np.ones(1, np.float32))))
        assert client_connections(server.process.grpc_port) >= 1
        connection.close()
        wait_for(lambda: set(threading.enumerate()) <= before, "threads were left running")
        wait_for(lambda: client_connections(server.process.grpc_port) == 0, "connections were left open")

    def test_the_key_stays_out_of_repr(self, server: Server) -> None:
        connection = GrpcConnection(server.address, key=(KEY_HEADER, KEY))
        assert KEY not in repr(connection)


class TestServerDiesMidCall:
    def test_calls_in_flight_fail_retryable_without_hanging(self, tmp_path: Path) -> None:
        dying = start_server(tmp_path, datatypes=("FP32",))
        outcome: list[BaseException] = []
        try:
            with GrpcConnection(dying.address, label="dying") as connection:
                slow_id = f"slow-{uuid.uuid4().hex}"
                slow = encode_grpc_request(
                    {"INPUT0": np.ones(1, np.float32), "DELAY_MS": np.array([10_000], np.int32)},
                    model_name=SLOW_ECHO_MODEL,
                    request_id=slow_id,
                )

                def unary() -> None:
                    try:
                        connection.infer(slow, timeout=60)
                    except BaseException as error:
                        outcome.append(error)

                caller = threading.Thread(target=unary)
                caller.start()
                stream = connection.stream([counter_request(1000, delay_ms=50)])
                next(stream)
                wait_for(started_marker(dying.markers, slow_id).exists, "the slow call did not start")
                os.kill(dying.process.pid, signal.SIGKILL)
                with pytest.raises(ProviderError) as caught:
                    for _ in stream:
                        pass
                caller.join(WAIT_SECONDS)
                assert not caller.is_alive()
        finally:
            dying.process.stop()
            stubs = servers_under(dying.repository, program=None)
            for pid in stubs:  # the Python backend stubs of a killed server
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert caught.value.retryable and caught.value.code in ("UNAVAILABLE", "ConnectionRefused")
        (unary_error,) = outcome
        assert isinstance(unary_error, ProviderError) and unary_error.retryable


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, bytes]]:
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("grpc-tls")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certificate.cert_chain_pems[0].write_to_path(folder / "server.pem")
    certificate.private_key_pem.write_to_path(folder / "server.key")
    started = start_server(
        folder,
        datatypes=("FP32",),
        extra=(
            "--grpc-use-ssl=true",
            f"--grpc-server-cert={folder / 'server.pem'}",
            f"--grpc-server-key={folder / 'server.key'}",
            f"--grpc-restricted-protocol=inference:{KEY_HEADER}={KEY}",
        ),
    )
    try:
        yield started, authority.cert_pem.bytes()
    finally:
        started.process.stop()


class TestTlsAndKey:
    def call(self, connection: GrpcConnection) -> None:
        with connection:
            assert np.array_equal(
                connection.infer(echo_request(np.ones(3, np.float32)))["OUTPUT0"], np.ones(3)
            )
            assert [int(r["INDEX"][0]) for r in connection.stream([counter_request(2)])] == [0, 1]

    def test_the_endpoints_ca(self, tls_server: tuple[Server, bytes]) -> None:
        server, ca = tls_server
        self.call(GrpcConnection(server.address, tls=True, ca_certificate=ca, key=(KEY_HEADER, KEY)))

    @pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
    def test_a_ca_bundle_variable(
        self, tls_server: tuple[Server, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
    ) -> None:
        server, ca = tls_server
        (tmp_path / "bundle.pem").write_bytes(ca)
        for name in CA_BUNDLE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(variable, str(tmp_path / "bundle.pem"))
        self.call(GrpcConnection(server.address, tls=True, key=(KEY_HEADER, KEY)))

    def test_an_untrusted_certificate(
        self, tls_server: tuple[Server, bytes], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server, _ = tls_server
        for name in CA_BUNDLE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        untrusted = GrpcConnection(server.address, tls=True, key=(KEY_HEADER, KEY))
        with untrusted, pytest.raises(ProviderError, match="TLS handshake with .* failed") as caught:
            untrusted.infer(echo_request(np.ones(1, np.float32)))
        assert (caught.value.code, caught.value.retryable) == ("TLSVerificationFailed", False)

    def test_an_unreadable_bundle_is_named(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in CA_BUNDLE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
        with pytest.raises(ProviderError, match="SSL_CERT_FILE names the CA bundle .*missing.pem"):
            trusted_roots()

    @pytest.mark.parametrize("key", [None, (KEY_HEADER, "wrong")], ids=["no-key", "wrong-key"])
    def test_the_key_is_checked(self, tls_server: tuple[Server, bytes], key: tuple[str, str] | None) -> None:
        server, ca = tls_server
        with GrpcConnection(server.address, tls=True, ca_certificate=ca, key=key) as keyless:
            with pytest.raises(
                AuthError, match=f"endpoint key is missing or wrong.*'triton-grpc-protocol-{KEY_HEADER}'"
            ) as caught:
                keyless.infer(echo_request(np.ones(1, np.float32)))
            assert (caught.value.code, caught.value.retryable) == ("KeyRequired", False)
            with pytest.raises(AuthError):
                list(keyless.stream([counter_request(1)]))
