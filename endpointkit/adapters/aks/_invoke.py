"""Sending requests to an AKS endpoint: HTTP (blocking and asyncio) and gRPC, with the endpoint key if any."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters._http import HttpTransport, Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.base import EndpointState, RawResponse
from endpointkit.errors import NotFoundError, ProviderError
from endpointkit.payloads import DEFAULT_MAX_INFLATED_BYTES

__all__ = ["Invoker"]


class Invoker:
    """``invoke``, ``ainvoke`` and ``grpc_connection`` of ``AksAdapter``, which documents them.

    Reads an endpoint's key from its Secret once (through ``kube_client()``) unless ``api_key`` gives it, and
    keeps one gRPC connection per Service address.
    """

    def __init__(
        self,
        timeout: float | None,
        *,
        kube_client: Callable[[], KubeClient],
        api_key: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
    ) -> None:
        bound = max_response_bytes
        self._transport = HttpTransport(provider="aks", timeout=timeout, max_response_bytes=bound)
        self._async_transport = AsyncHttpTransport(provider="aks", timeout=timeout, max_response_bytes=bound)
        self._kube_client = kube_client
        self._api_key = api_key
        self._keys: dict[tuple[str, str], str] = {}
        self._grpc: dict[str, GrpcConnection] = {}
        self._grpc_lock = threading.Lock()

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
        return self._transport.request("POST", origin, path, body, send, timeout=timeout)

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
        return await self._async_transport.request("POST", origin, path, body, send, timeout=timeout)

    def grpc_connection(
        self, state: EndpointState, *, model: str | None = None
    ) -> tuple[GrpcConnection, str]:
        origin = self._origin(state)
        target_model = self._model(state, model)
        address = f"{origin.host}:{_render.GRPC_PORT}"
        secret = state.extra.get("api_key_secret")
        key = None
        if secret:
            key = (_render.API_KEY_HEADER, self._endpoint_key(str(secret), str(state.extra.get("namespace"))))
        with self._grpc_lock:
            connection = self._grpc.get(address)
            if connection is None:
                connection = GrpcConnection(
                    address,
                    provider="aks",
                    label=f"AKS endpoint {state.name}",
                    tls=origin.scheme == "https",
                    ca_certificate=state.extra.get("ca_certificate"),
                    key=key,
                )
                self._grpc[address] = connection
        return connection, target_model

    async def aclose(self) -> None:
        """Close the pooled connections, awaiting those of the running event loop."""
        await self._async_transport.aclose()

    def _route(
        self, state: EndpointState, headers: Mapping[str, str], model: str | None
    ) -> tuple[Origin, str, dict[str, str]]:
        origin = self._origin(state)
        path = f"/v2/models/{quote(self._model(state, model), safe='')}/infer"
        send = dict(headers)
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
        self._transport.close()
        self._async_transport.close()
        with self._grpc_lock:
            connections, self._grpc = list(self._grpc.values()), {}
        for connection in connections:
            connection.close()
