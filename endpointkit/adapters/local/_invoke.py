"""Sending an encoded inference request to one of a local endpoint's servers, with the endpoint key if any."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from endpointkit.adapters._grpc import GrpcConnection
from endpointkit.adapters._http import Body, HttpTransport, Origin
from endpointkit.adapters._http_async import AsyncHttpTransport
from endpointkit.adapters.base import EndpointState, RawResponse
from endpointkit.adapters.local._files import read_secret
from endpointkit.adapters.local._state import KEY_HEADER, EndpointPaths, load_record, server_json
from endpointkit.errors import AuthError, NotFoundError, ProviderError

__all__ = ["Invoker"]


class Invoker:
    """``invoke``, ``ainvoke`` and ``grpc_connection`` of ``LocalAdapter``, which documents them.

    Keeps endpoint keys read from disk until they change, and one gRPC connection per server address.
    """

    def __init__(self, transport: HttpTransport, async_transport: AsyncHttpTransport) -> None:
        self._transport = transport
        self._async_transport = async_transport
        self._keys: dict[Path, tuple[int, str]] = {}
        self._grpc: dict[str, GrpcConnection] = {}
        self._lock = threading.Lock()

    def invoke(
        self,
        state: EndpointState,
        body: Body,
        headers: Mapping[str, str],
        *,
        model: str | None,
        timeout: float | None,
    ) -> RawResponse:
        servers: Sequence[Mapping[str, Any]] = state.extra.get("servers", ())
        try:
            route = self._route(state, servers, headers, model)
            return self._transport.request(
                "POST", route.origin, route.path, body, route.headers, timeout=timeout
            )
        except ProviderError as error:
            current = self._servers_now(state, servers, error)
            route = self._route(state, current, headers, model)
            return self._transport.request(
                "POST", route.origin, route.path, body, route.headers, timeout=timeout
            )

    async def ainvoke(
        self,
        state: EndpointState,
        body: Body,
        headers: Mapping[str, str],
        *,
        model: str | None,
        timeout: float | None,
    ) -> RawResponse:
        servers: Sequence[Mapping[str, Any]] = state.extra.get("servers", ())
        transport = self._async_transport
        try:
            route = self._route(state, servers, headers, model)
            return await transport.request(
                "POST", route.origin, route.path, body, route.headers, timeout=timeout
            )
        except ProviderError as error:
            current = self._servers_now(state, servers, error)
            route = self._route(state, current, headers, model)
            return await transport.request(
                "POST", route.origin, route.path, body, route.headers, timeout=timeout
            )

    def grpc_connection(self, state: EndpointState, *, model: str | None) -> tuple[GrpcConnection, str]:
        """The pooled gRPC connection to one of the endpoint's servers (picked by weight), and the model to call.

        The servers of a state from before a blue/green update are gone: when none of the state's servers
        runs any more, the record on disk says where the endpoint serves now. (A signal-0 probe per call costs
        about a microsecond; reading the record on every call would cost a file read and a JSON parse.)
        """
        servers = [server for server in state.extra.get("servers", ()) if _running(int(server["pid"]))]
        if not servers:
            record = load_record(EndpointPaths(Path(state.extra["state_root"]), state.name))
            servers = [] if record is None else [server_json(server) for server in record.servers]
        if not servers:
            raise _not_running(state, "no server is running")
        chosen = _pick(servers)
        address = f"127.0.0.1:{int(chosen['grpc_port'])}"
        key = (KEY_HEADER, self._key(Path(state.extra["key_file"]))) if state.extra.get("api_key") else None
        with self._lock:
            connection = self._grpc.get(address)
            if connection is None:
                connection = GrpcConnection(
                    address, provider="local", label=f"local endpoint {state.name}", key=key
                )
                self._grpc[address] = connection
        return connection, model or str(state.extra["default_model"])

    def close(self) -> None:
        """Close the gRPC channels (the HTTP transports belong to the adapter)."""
        with self._lock:
            connections, self._grpc = list(self._grpc.values()), {}
        for connection in connections:
            connection.close()

    def _servers_now(
        self, state: EndpointState, servers: Sequence[Mapping[str, Any]], error: ProviderError
    ) -> list[dict[str, Any]]:
        """After a refused connection: the servers the record on disk lists now (a blue/green update moved them)."""
        if error.code != "ConnectionRefused":
            raise error
        refreshed = load_record(EndpointPaths(Path(state.extra["state_root"]), state.name))
        current = [] if refreshed is None else [server_json(server) for server in refreshed.servers]
        if not current or current == list(servers):
            raise _not_running(state, str(error)) from error
        return current

    def _route(
        self,
        state: EndpointState,
        servers: Sequence[Mapping[str, Any]],
        headers: Mapping[str, str],
        model: str | None,
    ) -> _Route:
        if not servers:
            raise NotFoundError(
                f"local endpoint {state.name} has no server", provider="local", operation="invoke"
            )
        server = _pick(servers)
        extra = state.extra
        default_model = str(extra["default_model"])
        if extra.get("protocol") == "sagemaker":
            if model is not None and model != default_model:
                raise ProviderError(
                    f"{state.name} speaks the SageMaker protocol, whose /invocations serves only the default "
                    f"model {default_model!r}, not {model!r}; set sagemaker_protocol: false to call any model",
                    provider="local",
                    operation="invoke",
                    code="ModelNotServed",
                )
            origin, path = Origin("http", "127.0.0.1", int(server["sagemaker_port"])), "/invocations"
        else:
            origin = Origin("http", "127.0.0.1", int(server["http_port"]))
            path = f"/v2/models/{quote(model or default_model, safe='')}/infer"
        if extra.get("api_key"):
            headers = {**headers, KEY_HEADER: self._key(Path(extra["key_file"]))}
        return _Route(origin, path, headers)

    def _key(self, key_file: Path) -> str:
        try:
            stamp = key_file.stat().st_mtime_ns
        except FileNotFoundError:
            raise NotFoundError(
                f"the endpoint key {key_file} is missing; apply the endpoint again",
                provider="local",
                operation="invoke",
            ) from None
        cached = self._keys.get(key_file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            key = read_secret(key_file) or ""
        except OSError as error:
            raise AuthError(
                f"cannot read the endpoint key {key_file}: {error.strerror or error}; it is readable by the user "
                "who applied the endpoint only",
                provider="local",
                operation="invoke",
            ) from error
        self._keys[key_file] = (stamp, key)
        return key


class _Route(NamedTuple):
    origin: Origin
    path: str
    headers: Mapping[str, str]


def _pick(servers: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """One server, by the variants' weights."""
    return servers[0] if len(servers) == 1 else random.choices(servers, [s["weight"] for s in servers])[0]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _not_running(state: EndpointState, why: str) -> NotFoundError:
    return NotFoundError(
        f"local endpoint {state.name} is not running ({why}); run `endpointkit apply` to start it",
        provider="local",
        operation="invoke",
        code="NotRunning",
    )
