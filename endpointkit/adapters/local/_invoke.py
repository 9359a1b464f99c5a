"""Sending an encoded inference request to one of a local endpoint's servers, with the endpoint key if any."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from endpointkit.adapters._http import Body, HttpTransport, Origin
from endpointkit.adapters.base import EndpointState, RawResponse
from endpointkit.adapters.local._files import read_secret
from endpointkit.adapters.local._state import KEY_HEADER, EndpointPaths, load_record, server_json
from endpointkit.errors import AuthError, NotFoundError, ProviderError

__all__ = ["Invoker"]


class Invoker:
    """``invoke`` of ``LocalAdapter``, which documents it; keeps endpoint keys read from disk until they change."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport
        self._keys: dict[Path, tuple[int, str]] = {}

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
            return self._send(state, servers, body, headers, model, timeout)
        except ProviderError as error:
            if error.code != "ConnectionRefused":
                raise
            refreshed = load_record(EndpointPaths(Path(state.extra["state_root"]), state.name))
            current = [] if refreshed is None else [server_json(server) for server in refreshed.servers]
            if not current or current == list(servers):
                raise NotFoundError(
                    f"local endpoint {state.name} is not running ({error}); run `endpointkit apply` to start it",
                    provider="local",
                    operation="invoke",
                    code="NotRunning",
                ) from error
            return self._send(state, current, body, headers, model, timeout)

    def _send(
        self,
        state: EndpointState,
        servers: Sequence[Mapping[str, Any]],
        body: Body,
        headers: Mapping[str, str],
        model: str | None,
        timeout: float | None,
    ) -> RawResponse:
        if not servers:
            raise NotFoundError(
                f"local endpoint {state.name} has no server", provider="local", operation="invoke"
            )
        server = (
            servers[0] if len(servers) == 1 else random.choices(servers, [s["weight"] for s in servers])[0]
        )
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
        return self._transport.request("POST", origin, path, body, headers, timeout=timeout)

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
