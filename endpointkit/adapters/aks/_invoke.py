"""Sending requests to an AKS endpoint: HTTP (blocking and asyncio) and gRPC, with the endpoint key if any.

HTTPS endpoints (``https://HOST``, served by the Gateway) are verified: against the endpoint's own CA when its
state carries one (``extra["ca_certificate"]``, PEM), else against the bundle a CA bundle variable names or the
system trust store (:func:`~endpointkit.adapters._tls_context.client_context`). gRPC goes to the same ``HOST`` and
port over TLS (the Gateway routes it by its content type); a plain ``http`` endpoint serves gRPC on its Service's
port 8001. ``connect_to`` (curl's ``--connect-to``) sends connections for ``HOST:PORT`` to another address while
TLS still checks ``HOST``: an endpoint can be called before its DNS name resolves, or through a port-forward.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import quote

from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters._http import Address, HttpTransport, Origin, connect_address, parse_connect_to
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters._tls_context import client_context
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.base import EndpointState, RawResponse
from endpointkit.errors import NotFoundError, ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES

__all__ = ["Invoker"]

_Transport = TypeVar("_Transport", HttpTransport, AsyncHttpTransport)
# Which certificates a transport trusts: None for plain http, else the endpoint's CA PEM, or "" for the
# environment's bundle or the system store.
_Trust = str | None


class Invoker:
    """``invoke``, ``ainvoke`` and ``grpc_connection`` of ``AksAdapter``, which documents them.

    Reads an endpoint's key from its Secret once (through ``kube_client()``) unless ``api_key`` gives it. Keeps
    one HTTP transport (and one asyncio one) per trust: plain http, each endpoint CA, the environment's trust; and
    one gRPC connection per address, CA and server name. Thread-safe.

    Args:
        timeout: default seconds for one request.
        kube_client: makes the Kubernetes client that reads endpoint keys.
        api_key: the endpoint key, when known.
        max_response_bytes: the largest response body accepted.
        connect_to: ``{"HOST:PORT": "ADDRESS:PORT"}``: HTTP and gRPC connections for that origin go to the
            address; TLS still verifies ``HOST``.

    Raises:
        ValueError: ``connect_to`` holds something other than ``HOST:PORT``.
    """

    def __init__(
        self,
        timeout: float | None,
        *,
        kube_client: Callable[[], KubeClient],
        api_key: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
        connect_to: Mapping[str, str] | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._connect_to_setting = dict(connect_to or {})
        self._connect_to = parse_connect_to(connect_to)
        self._kube_client = kube_client
        self._api_key = api_key
        self._keys: dict[tuple[str, str], str] = {}
        self._transports: dict[_Trust, HttpTransport] = {}
        self._async_transports: dict[_Trust, AsyncHttpTransport] = {}
        self._grpc: dict[tuple[str, str | None, str | None], GrpcConnection] = {}
        self._lock = threading.Lock()

    def invoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        origin, path, send = self._route(state, headers, model)
        transport = self._pooled(self._transports, HttpTransport, _trust(origin, state))
        return transport.request("POST", origin, path, body, send, timeout=timeout)

    async def ainvoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        origin, path, send = self._route(state, headers, model)
        transport = self._pooled(self._async_transports, AsyncHttpTransport, _trust(origin, state))
        return await transport.request("POST", origin, path, body, send, timeout=timeout)

    def grpc_connection(
        self, state: EndpointState, *, model: str | None = None
    ) -> tuple[GrpcConnection, str]:
        origin = self._origin(state)
        target_model = self._model(state, model)
        tls = origin.scheme == "https"
        # Over HTTPS the Gateway's listener serves gRPC beside HTTP; a plain endpoint has the Service's own port.
        port = origin.port if tls else _render.GRPC_PORT
        mapped = connect_address(self._connect_to, origin.host, port)
        address = _joined(mapped or (origin.host, port))
        server_name = origin.host if tls and mapped is not None else None
        ca_certificate = state.extra.get("ca_certificate") if tls else None
        ca = str(ca_certificate) if ca_certificate else None
        secret = state.extra.get("api_key_secret")
        key = None
        if secret:
            key = (_render.API_KEY_HEADER, self._endpoint_key(str(secret), str(state.extra.get("namespace"))))
        with self._lock:
            connection = self._grpc.get((address, server_name, ca))
            if connection is None:
                connection = GrpcConnection(
                    address,
                    provider="aks",
                    label=f"AKS endpoint {state.name} at {_joined((origin.host, port))}",
                    tls=tls,
                    ca_certificate=ca,
                    server_name=server_name,
                    key=key,
                )
                self._grpc[(address, server_name, ca)] = connection
        return connection, target_model

    async def aclose(self) -> None:
        """Close the pooled connections, awaiting those of the running event loop."""
        with self._lock:
            transports = list(self._async_transports.values())
        for transport in transports:
            await transport.aclose()

    def _pooled(self, pool: dict[_Trust, _Transport], kind: type[_Transport], trust: _Trust) -> _Transport:
        """The transport of ``pool`` for ``trust``, made on first use (its TLS context too)."""
        transport = pool.get(trust)
        if transport is not None:
            return transport
        with self._lock:
            transport = pool.get(trust)
            if transport is None:
                transport = pool[trust] = kind(
                    provider="aks",
                    timeout=self._timeout,
                    max_response_bytes=self._max_response_bytes,
                    ssl_context=None if trust is None else client_context(trust or None, provider="aks"),
                    connect_to=self._connect_to_setting,
                )
            return transport

    def _route(
        self, state: EndpointState, headers: Mapping[str, str], model: str | None
    ) -> tuple[Origin, str, dict[str, str]]:
        origin = self._origin(state)
        path = f"/v2/models/{quote(self._model(state, model), safe='')}/infer"
        # A candidate state of an update carries the preview route's header (endpointkit-version): the Gateway
        # then sends the request to the new version only.
        send = {**{str(k): str(v) for k, v in (state.extra.get("headers") or {}).items()}, **headers}
        secret = state.extra.get("api_key_secret")
        if secret:
            send[_render.API_KEY_HEADER] = self._endpoint_key(str(secret), str(state.extra.get("namespace")))
        return origin, path, send

    @staticmethod
    def _origin(state: EndpointState) -> Origin:
        if not state.url:
            raise NotFoundError(
                f"endpoint {state.name} has no address yet ({state.status.value})",
                provider="aks",
                operation="invoke",
            )
        return Origin.parse(state.url)

    @staticmethod
    def _model(state: EndpointState, model: str | None) -> str:
        target_model = model or state.extra.get("default_model")
        if not target_model:
            raise ProviderError(
                f"endpoint {state.name} names no default model: pass model=",
                provider="aks",
                operation="invoke",
            )
        return str(target_model)

    def _endpoint_key(self, secret: str, namespace: str) -> str:
        if self._api_key is not None:
            return self._api_key
        if (namespace, secret) not in self._keys:
            found = self._kube_client().get("Secret", secret, namespace)
            data = (found or {}).get("data") or {}
            if "key" not in data:
                raise NotFoundError(
                    f"the endpoint key Secret {secret} is missing in namespace {namespace}",
                    provider="kubernetes",
                    operation="invoke",
                )
            self._keys[(namespace, secret)] = base64.b64decode(data["key"]).decode()
        return self._keys[(namespace, secret)]

    def close(self) -> None:
        """Close every pooled connection (HTTP, asyncio, gRPC). Idempotent; the invoker stays usable."""
        with self._lock:
            transports = list(self._transports.values())
            async_transports = list(self._async_transports.values())
            connections, self._grpc = list(self._grpc.values()), {}
        for transport in transports:
            transport.close()
        for async_transport in async_transports:
            async_transport.close()
        for connection in connections:
            connection.close()


def _trust(origin: Origin, state: EndpointState) -> _Trust:
    """What verifies ``origin``: None for plain http, the state's CA PEM, or "" for the environment's trust."""
    if origin.scheme != "https":
        return None
    return str(state.extra.get("ca_certificate") or "")


def _joined(address: Address) -> str:
    """``host:port``, an IPv6 literal in brackets (the form gRPC targets take)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
