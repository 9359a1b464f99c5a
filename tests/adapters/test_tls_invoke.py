"""Invoking an AKS endpoint over verified HTTPS, end to end: a real tritonserver behind a TLS front (what the
Gateway does), certificates made by ``_certificates``, calls through ``invoke_endpoint`` / ``ainvoke_endpoint``
over HTTP and gRPC. A certificate from another CA, an expired one and one for another host each fail with an
error of the tree naming the host and OpenSSL's reason; ``connect_to`` reaches a name that never resolves."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters._http import HttpTransport, Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters._tls_context import CA_BUNDLE_VARIABLES, client_context
from endpointkit.adapters.aks import AksAdapter
from endpointkit.adapters.aks._certificates import Authority, issue_server_certificate, make_authority
from endpointkit.adapters.aks._invoke import Invoker
from endpointkit.adapters.base import EndpointState, EndpointStatus
from endpointkit.adapters.local._tritonserver import TritonServerProcess, running_tritonserver
from endpointkit.errors import EXIT_FAILURE, ProviderError, exit_code
from endpointkit.payloads import decode_response, encode_request
from endpointkit.payloads._grpc import encode_grpc_request
from tests.adapters.conftest import IDENTITY_MODEL
from tests.tls_front import TlsFront

pytestmark = pytest.mark.triton

INPUTS = {"INPUT0": np.arange(6, dtype=np.float32)}
UNRESOLVABLE = (
    "triton.example.test"  # .test never resolves (RFC 6761); connect_to keeps it from being looked up
)
Pair = tuple[str, str]


# ---- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def triton(identity_repository: Path) -> Iterator[TritonServerProcess]:
    with running_tritonserver(identity_repository) as server:
        yield server


@pytest.fixture(scope="module")
def authority() -> Authority:
    return make_authority("endpointkit test CA")


@pytest.fixture(scope="module")
def stranger() -> Authority:
    return make_authority("another CA")


@pytest.fixture
def front(triton: TritonServerProcess) -> Iterator[Callable[[Pair], TlsFront]]:
    """``front((certificate, key))``: a TLS front to the server, HTTP/1.1 to its HTTP port and h2 to its gRPC one."""
    started: list[TlsFront] = []

    def start(pair: Pair) -> TlsFront:
        started.append(
            TlsFront(*pair, ("127.0.0.1", triton.http_port), h2_backend=("127.0.0.1", triton.grpc_port))
        )
        return started[-1]

    yield start
    for each in started:
        each.close()


@pytest.fixture
def adapter_for() -> Iterator[Callable[[EndpointState], AksAdapter]]:
    """``adapter_for(state)``: ``AksAdapter.from_state``; every adapter made is closed at teardown."""
    made: list[AksAdapter] = []

    def make(state: EndpointState) -> AksAdapter:
        made.append(AksAdapter.from_state(state))
        return made[-1]

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def no_bundle_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def aks_state(url: str, ca_certificate: str | None = None) -> EndpointState:
    """The state of an AKS endpoint behind the Gateway, as ``status`` reports it (no endpoint key)."""
    extra: dict[str, Any] = {
        "default_model": IDENTITY_MODEL,
        "namespace": "default",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "rg",
        "cluster": "tls-test",
    }
    if ca_certificate is not None:
        extra["ca_certificate"] = ca_certificate
    return EndpointState(
        name="tls-endpoint", target="aks", kind="aks", status=EndpointStatus.IN_SERVICE, url=url, extra=extra
    )


def assert_identity(response: ek.InferResponse) -> None:
    np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])


def ainvoke(state: EndpointState, adapter: AksAdapter, **options: Any) -> ek.InferResponse:
    async def run() -> ek.InferResponse:
        try:
            return await ek.ainvoke_endpoint(state, INPUTS, adapter=adapter, **options)
        finally:
            await adapter.aclose()

    return asyncio.run(run())


# ---- verified and working ----------------------------------------------------------------------------------------
def test_http_is_verified_against_the_endpoints_ca(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
) -> None:
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}", authority.certificate_pem)
    adapter = adapter_for(state)

    for _ in range(3):
        assert_identity(ek.invoke_endpoint(state, INPUTS, adapter=adapter))

    assert gateway.protocols == ["http/1.1"]  # one kept-alive TLS connection for the three calls
    assert gateway.server_names == ["localhost"]


def test_grpc_goes_to_the_same_host_and_port_over_tls(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
) -> None:
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}", authority.certificate_pem)

    assert_identity(ek.invoke_endpoint(state, INPUTS, adapter=adapter_for(state), transport="grpc"))

    assert gateway.protocols == ["h2"]


def test_ainvoke_is_verified_against_the_endpoints_ca(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
) -> None:
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}", authority.certificate_pem)
    adapter = adapter_for(state)

    assert_identity(ainvoke(state, adapter))
    assert_identity(ainvoke(state, adapter, transport="grpc"))

    assert sorted(gateway.protocols, key=str) == ["h2", "http/1.1"]


def test_ssl_cert_file_is_trusted_when_the_state_carries_no_ca(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
    no_bundle_variables: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "ca.pem").write_text(authority.certificate_pem)
    no_bundle_variables.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}")
    adapter = adapter_for(state)

    assert_identity(ek.invoke_endpoint(state, INPUTS, adapter=adapter))
    assert_identity(ek.invoke_endpoint(state, INPUTS, adapter=adapter, transport="grpc"))


def test_the_endpoints_ca_wins_over_a_bundle_variable(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    stranger: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
    no_bundle_variables: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "other.pem").write_text(stranger.certificate_pem)
    no_bundle_variables.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "other.pem"))
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}", authority.certificate_pem)

    assert_identity(ek.invoke_endpoint(state, INPUTS, adapter=adapter_for(state)))


# ---- verification failures ---------------------------------------------------------------------------------------
FAILURES = {
    "another-ca": "unable to get local issuer certificate",
    "expired": "certificate has expired",
    "another-host": "Hostname mismatch",
}


def failing_case(case: str, authority: Authority, stranger: Authority) -> tuple[Pair, str]:
    """(the front's certificate and key, the CA the state trusts) for a verification failure."""
    if case == "another-ca":
        return issue_server_certificate(authority, "localhost"), stranger.certificate_pem
    if case == "expired":
        long_ago = datetime.now(timezone.utc) - timedelta(days=100)
        return issue_server_certificate(
            authority, "localhost", now=long_ago, days=30
        ), authority.certificate_pem
    return issue_server_certificate(authority, "elsewhere.example.test"), authority.certificate_pem


@pytest.mark.parametrize("how", ["http", "grpc", "ainvoke"])
@pytest.mark.parametrize("case", list(FAILURES))
def test_a_certificate_that_fails_verification_names_the_host_and_the_reason(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    stranger: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
    case: str,
    how: str,
) -> None:
    pair, trusted = failing_case(case, authority, stranger)
    gateway = front(pair)
    state = aks_state(f"https://localhost:{gateway.port}", trusted)
    adapter = adapter_for(state)

    with pytest.raises(ProviderError) as raised:
        if how == "ainvoke":
            ainvoke(state, adapter)
        else:
            ek.invoke_endpoint(state, INPUTS, adapter=adapter, transport=how)

    error = raised.value
    assert (error.code, error.retryable) == ("TLSVerificationFailed", False)
    assert "localhost" in str(error) and FAILURES[case] in str(error)
    assert exit_code(error) == EXIT_FAILURE == 1
    # No HTTP request got through. (gRPC checks the host name after the handshake, so an h2 connection may be
    # counted for "another-host"; the call fails before it is sent.)
    assert "http/1.1" not in gateway.protocols


def test_the_system_store_is_used_without_a_ca_and_does_not_know_a_private_one(
    front: Callable[[Pair], TlsFront],
    authority: Authority,
    adapter_for: Callable[[EndpointState], AksAdapter],
    no_bundle_variables: pytest.MonkeyPatch,
) -> None:
    gateway = front(issue_server_certificate(authority, "localhost"))
    state = aks_state(f"https://localhost:{gateway.port}")

    with pytest.raises(
        ProviderError, match="TLS certificate of localhost not trusted: unable to get local issuer"
    ):
        ek.invoke_endpoint(state, INPUTS, adapter=adapter_for(state))


def test_an_unreadable_bundle_names_its_variable(
    adapter_for: Callable[[EndpointState], AksAdapter],
    no_bundle_variables: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    no_bundle_variables.setenv("CURL_CA_BUNDLE", str(tmp_path / "missing.pem"))
    state = aks_state("https://localhost:1")

    with pytest.raises(ProviderError, match=r"CURL_CA_BUNDLE names the CA bundle .*missing\.pem") as raised:
        ek.invoke_endpoint(state, INPUTS, adapter=adapter_for(state))
    assert raised.value.code == "CaBundleUnreadable" and exit_code(raised.value) == EXIT_FAILURE


# ---- connect_to --------------------------------------------------------------------------------------------------
def _refuse_kube() -> Any:
    raise AssertionError("an endpoint without a key needs no Kubernetes client")


def test_connect_to_reaches_a_name_that_does_not_resolve_over_http_and_grpc(
    front: Callable[[Pair], TlsFront], authority: Authority
) -> None:
    gateway = front(issue_server_certificate(authority, UNRESOLVABLE))
    state = aks_state(f"https://{UNRESOLVABLE}", authority.certificate_pem)
    invoker = Invoker(
        60.0, kube_client=_refuse_kube, connect_to={f"{UNRESOLVABLE}:443": f"127.0.0.1:{gateway.port}"}
    )
    encoded = encode_request(INPUTS)
    try:
        raw = invoker.invoke(state, encoded.body, encoded.headers)
        connection, model = invoker.grpc_connection(state)
        over_grpc = connection.infer(encode_grpc_request(INPUTS, model_name=model))

        async def run() -> ek.InferResponse:
            answer = await invoker.ainvoke(state, encoded.body, encoded.headers)
            await invoker.aclose()
            return decode_response(answer.body, answer.headers)

        over_asyncio = asyncio.run(run())
    finally:
        invoker.close()

    assert raw.status == 200
    for response in (decode_response(raw.body, raw.headers), over_grpc, over_asyncio):
        assert_identity(response)
    assert sorted(gateway.protocols, key=str) == ["h2", "http/1.1", "http/1.1"]
    assert gateway.server_names == [UNRESOLVABLE] * 3  # SNI (and the certificate check) kept the name


class _HostEcho(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.headers["Host"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def host_echo_front(authority: Authority) -> Iterator[TlsFront]:
    """A TLS front for ``triton.example.test`` to a server that answers the Host header it received."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostEcho)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with TlsFront(
            *issue_server_certificate(authority, UNRESOLVABLE), ("127.0.0.1", server.server_address[1])
        ) as gateway:
            yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_connect_to_keeps_the_host_header_and_sni_in_both_transports(
    host_echo_front: TlsFront, authority: Authority
) -> None:
    origin = Origin.parse(f"https://{UNRESOLVABLE}/")
    options: dict[str, Any] = {
        "ssl_context": client_context(authority.certificate_pem),
        "connect_to": {f"{UNRESOLVABLE}:443": f"127.0.0.1:{host_echo_front.port}"},
    }

    with HttpTransport(**options) as transport:
        blocking = transport.request("GET", origin, "/")

    async def run() -> bytes:
        async with AsyncHttpTransport(**options) as transport:
            return bytes((await transport.request("GET", origin, "/")).body)

    assert bytes(blocking.body) == asyncio.run(run()) == UNRESOLVABLE.encode()
    assert host_echo_front.server_names == [UNRESOLVABLE] * 2


def test_connect_to_without_a_host_maps_every_host_of_the_port(
    host_echo_front: TlsFront, authority: Authority
) -> None:
    origin = Origin.parse(f"https://{UNRESOLVABLE}/")
    options: dict[str, Any] = {
        "ssl_context": client_context(authority.certificate_pem),
        "connect_to": {":443": f"127.0.0.1:{host_echo_front.port}"},
    }
    with HttpTransport(**options) as transport:
        blocking = transport.request("GET", origin, "/")

    async def run() -> bytes:
        async with AsyncHttpTransport(**options) as transport:
            return bytes((await transport.request("GET", origin, "/")).body)

    assert bytes(blocking.body) == asyncio.run(run()) == UNRESOLVABLE.encode()
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        HttpTransport(connect_to={"triton.example.test:443": ":8443"})  # only a key may leave the host out


@pytest.mark.parametrize(
    "setting", [{"triton.example.test": "127.0.0.1:1"}, {"triton.example.test:443": "127.0.0.1"}]
)
def test_connect_to_refuses_what_is_not_host_and_port(setting: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        HttpTransport(connect_to=setting)
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        Invoker(1.0, kube_client=_refuse_kube, connect_to=setting)
