"""A local HTTPS fake of Azure Resource Manager for AKS, plus the few Blob storage calls endpointkit makes.

What the real ``azure-mgmt-containerservice`` client needs, shaped like the Microsoft.ContainerService REST
examples (Azure/azure-rest-api-specs ``…/Microsoft.ContainerService/aks/examples/2026-01-01/``):

- ``PUT managedClusters/{name}`` and ``…/agentPools/{pool}``: 201 (create) or 200 (update) with
  ``provisioningState`` Creating/Updating and an absolute ``Azure-AsyncOperation`` URL; the operation answers
  ``InProgress`` for ``polls_to_finish`` polls, then ``Succeeded`` (or ``Failed`` with an error), and the
  resource's own GET follows (ManagedClustersCreate_Update.json, AgentPoolsCreate_Update.json).
- ``DELETE``: 202 with an absolute ``Location`` (``…/locations/{loc}/operationresults/{id}``) that answers 202
  until done and then 204; 204 when already gone (ManagedClustersDelete.json, AgentPoolsDelete.json).
- A managed cluster keeps what a PUT sends, ``properties.ingressProfile`` included (camelCase ``webAppRouting``,
  ``gatewayAPIImplementations``, ``appRoutingIstio``, ``gatewayAPI``, ``installation``: ManagedClusterIngressProfile
  in ``…/aks/stable/2026-02-01/managedClusters.json``), and answers a new ``eTag`` after each write; a PUT whose
  ``If-Match`` names another eTag is refused with 412 (optimistic concurrency, as the SDK's ``etag`` /
  ``match_condition`` arguments ask). :attr:`FakeArm.puts` records every cluster PUT as received.
- ``POST …/listClusterUserCredential``: ``{"kubeconfigs": [{"name", "value": base64}]}``
  (ManagedClustersListClusterUserCredentials.json); the kubeconfig comes from :mod:`tests.fakes.kube`.
- ``POST Microsoft.Storage/storageAccounts/{account}/listKeys`` and Blob ``PUT``/``HEAD``/``GET`` under
  ``/{account}/{container}/…`` (path-style, like Azurite).

Errors are ARM's ``{"error": {"code", "message"}}``; :meth:`FakeArm.fail` injects one per operation, either at
once (an HTTP status) or from the long-running operation (``asynchronous=True``).
"""

from __future__ import annotations

import base64
import copy
import email.utils
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakes import CertificateAuthority, LoopbackServer

__all__ = ["GATEWAY_INGRESS_PROFILE", "FakeArm", "FakeTokenCredential", "ReceivedPut"]

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TOKEN = "fake-arm-token"
_ARM = r"^/subscriptions/(?P<sub>[^/]+)"
_RG = _ARM + r"/resourceGroups/(?P<rg>[^/]+)"
_CLUSTER = _RG + r"/providers/Microsoft\.ContainerService/managedClusters/(?P<cluster>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in [
        ("pool", _CLUSTER + r"/agentPools/(?P<pool>[^/]+)$"),
        ("pools", _CLUSTER + r"/agentPools$"),
        ("credentials", _CLUSTER + r"/listClusterUserCredential$"),
        ("cluster", _CLUSTER + r"$"),
        (
            "operation",
            _ARM + r"/providers/Microsoft\.ContainerService/locations/[^/]+/operations/(?P<op>[^/]+)$",
        ),
        (
            "result",
            _ARM + r"/providers/Microsoft\.ContainerService/locations/[^/]+/operationresults/(?P<op>[^/]+)$",
        ),
        ("keys", _RG + r"/providers/Microsoft\.Storage/storageAccounts/(?P<account>[^/]+)/listKeys$"),
        ("blob", r"^/(?P<account>[a-z0-9]{3,24})/(?P<container>[a-z0-9-]{3,63})(?:/(?P<blob>.+))?$"),
    ]
]


# An ingress profile with the application routing Gateway API add-on on, as AKS reports it after
# az aks update --enable-gateway-api and --enable-app-routing-istio (https://learn.microsoft.com/azure/aks/app-routing-gateway-api).
GATEWAY_INGRESS_PROFILE: dict[str, Any] = {
    "gatewayAPI": {"installation": "Standard"},
    "webAppRouting": {
        "enabled": True,
        "gatewayAPIImplementations": {"appRoutingIstio": {"mode": "Enabled"}},
        "nginx": {"defaultIngressControllerType": "None"},
    },
}


class FakeTokenCredential:
    """A TokenCredential that needs no network: always the same bearer token."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken(self.token, 4_102_444_800)  # 2100-01-01: never refreshed during a test


@dataclass(frozen=True)
class ReceivedPut:
    """A managed cluster PUT as the fake received it: the resource path, the JSON body and its If-Match header."""

    path: str
    body: dict[str, Any]
    if_match: str | None


@dataclass
class _Failure:
    operation: str
    code: str
    message: str
    status: int
    asynchronous: bool
    times: int


@dataclass
class _Operation:
    id: str
    kind: str  # "put" or "delete"
    resource: tuple[str, ...]
    remaining: int
    status: str = "InProgress"
    error: dict[str, str] | None = None


@dataclass
class FakeArm:
    """The ARM state: clusters, pools, running operations, storage keys and blobs; and every request seen."""

    tls: CertificateAuthority
    kubeconfig: Callable[[], dict[str, Any]] = field(default=lambda: {})
    polls_to_finish: int = 1
    location: str = "eastus"
    clusters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pools: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, _Operation] = field(default_factory=dict)
    storage_keys: dict[str, str] = field(default_factory=dict)
    containers: set[tuple[str, str]] = field(default_factory=set)
    blobs: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    puts: list[ReceivedPut] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    server: LoopbackServer | None = None

    # ---- test controls -------------------------------------------------------------------------------
    def start(self) -> FakeArm:
        self.server = LoopbackServer(_ArmHandler, fake=self, tls=self.tls).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the fake first"
        return self.server.url

    def blob_url(self, account: str) -> str:
        return f"{self.url}/{account}"

    def fail(
        self,
        operation: str,
        *,
        code: str,
        message: str = "",
        status: int = 400,
        asynchronous: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` fail with ARM error ``code``.

        Operations: ``cluster.put``, ``cluster.get``, ``cluster.delete``, ``pool.put``, ``pool.get``,
        ``pool.delete``, ``credentials``, ``keys``, ``blob.put``. ``asynchronous=True`` accepts the PUT and
        fails its long-running operation instead (how AllocationFailed arrives).
        """
        with self.lock:
            self.failures.append(
                _Failure(operation, code, message or f"injected {code}", status, asynchronous, times)
            )

    def add_cluster(
        self,
        resource_group: str,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """A cluster that exists before the test (made by someone else unless ``tags`` say otherwise).

        ``properties`` seeds REST fields of the managed cluster, e.g. ``{"ingressProfile":
        GATEWAY_INGRESS_PROFILE}`` for a cluster that has the Gateway API add-on, or a ``serviceMeshProfile``.
        """
        with self.lock:
            request = {"tags": tags or {}, "properties": json.loads(json.dumps(properties or {}))}
            self.clusters[(resource_group.lower(), name.lower())] = _cluster_body(
                resource_group, name, self.location, request, "Succeeded"
            )
            system = {"properties": {"vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}}
            self.pools[(resource_group.lower(), name.lower(), "system")] = _pool_body(
                resource_group, name, "system", system, "Succeeded"
            )

    def add_pool(
        self,
        resource_group: str,
        cluster: str,
        name: str,
        *,
        vm_size: str,
        count: int = 1,
        tags: dict[str, str] | None = None,
    ) -> None:
        with self.lock:
            body = {"properties": {"vmSize": vm_size, "count": count, "mode": "User", "tags": tags or {}}}
            self.pools[(resource_group.lower(), cluster.lower(), name.lower())] = _pool_body(
                resource_group, cluster, name, body, "Succeeded"
            )

    def cluster_puts(self, resource_group: str, name: str) -> list[ReceivedPut]:
        """Every PUT of one managed cluster, oldest first, as the fake received it."""
        path = _resource_id(resource_group, name).lower()
        with self.lock:
            return [put for put in self.puts if put.path.lower() == path]

    def calls(self, method: str | None = None, contains: str = "") -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.requests if (method is None or r[0] == method) and contains in r[1]]

    @property
    def writes(self) -> list[tuple[str, str]]:
        """PUT and DELETE requests to ARM resources (not blobs, not operation polls)."""
        return [
            r
            for r in self.calls()
            if r[0] in ("PUT", "DELETE", "PATCH") and r[1].startswith("/subscriptions")
        ]

    # ---- request handling ----------------------------------------------------------------------------
    def _take_failure(self, operation: str) -> _Failure | None:
        for failure in self.failures:
            if failure.operation == operation and failure.times > 0:
                failure.times -= 1
                if failure.times == 0:
                    self.failures.remove(failure)
                return failure
        return None

    def _operation_url(self, operation: _Operation, kind: str) -> str:
        return (
            f"{self.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/"
            f"{self.location}/{kind}/{operation.id}?api-version=2017-08-31"
        )

    def _start_operation(self, kind: str, resource: tuple[str, ...], failure: _Failure | None) -> _Operation:
        operation = _Operation(uuid.uuid4().hex, kind, resource, self.polls_to_finish)
        if failure is not None:
            operation.error = {"code": failure.code, "message": failure.message}
        self.operations[operation.id] = operation
        return operation

    def _advance(self, operation: _Operation) -> None:
        """One poll of a running operation; finishing it updates or removes its resource."""
        if operation.status != "InProgress":
            return
        if operation.remaining > 0:
            operation.remaining -= 1
            return
        store: dict[Any, dict[str, Any]] = self.pools if len(operation.resource) == 3 else self.clusters
        if operation.error is not None:
            operation.status = "Failed"
            if operation.resource in store:
                store[operation.resource]["properties"]["provisioningState"] = "Failed"
            return
        operation.status = "Succeeded"
        if operation.kind == "delete":
            store.pop(operation.resource, None)
            if len(operation.resource) == 2:
                for key in [key for key in self.pools if key[:2] == operation.resource]:
                    del self.pools[key]
        elif operation.resource in store:
            store[operation.resource]["properties"]["provisioningState"] = "Succeeded"

    def _advance_resource(self, resource: tuple[str, ...]) -> None:
        for operation in list(self.operations.values()):
            if operation.resource == resource:
                self._advance(operation)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> _Reply:
        with self.lock:
            self.requests.append((method, path))
            for name, pattern in _ROUTES:
                match = pattern.match(path)
                if match is not None:
                    if name == "blob":
                        return self._blob(method, match.groupdict(), query, headers, body)
                    if headers.get("Authorization") != f"Bearer {TOKEN}":
                        return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                    if name == "cluster":
                        return self._cluster(method, match.groupdict(), body, headers)
                    reply: _Reply = getattr(self, f"_{name}")(method, match.groupdict(), body)
                    return reply
            return _error(404, "InvalidResourceType", f"no route for {method} {path}")

    def _cluster(self, method: str, params: dict[str, str], body: bytes, headers: Any) -> _Reply:
        key = (params["rg"].lower(), params["cluster"].lower())
        operation_name = {"PUT": "cluster.put", "GET": "cluster.get", "DELETE": "cluster.delete"}[method]
        failure = self._take_failure(operation_name)
        if failure is not None and not failure.asynchronous:
            return _error(failure.status, failure.code, failure.message)
        if method == "GET":
            if key not in self.clusters:
                return _error(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.ContainerService/managedClusters/"
                    f"{params['cluster']}' under resource group '{params['rg']}' "
                    "was not found.",
                )
            self._advance_resource(key)
            return _Reply(200, self.clusters[key])
        if method == "DELETE":
            return self._delete(key, self.clusters, failure)
        request = json.loads(body or b"{}")
        expected = headers.get("If-Match")
        self.puts.append(ReceivedPut(_resource_id(params["rg"], params["cluster"]), request, expected))
        existed = key in self.clusters
        # If-Match carries the entity tag quoted (RFC 9110 section 8.8.3; the SDK's quote_etag); the body's eTag is bare.
        if expected is not None and (not existed or expected.strip('"') != self.clusters[key].get("eTag")):
            return _error(
                412,
                "PreconditionFailed",
                f"The If-Match header {expected} does not match the managed cluster's eTag.",
            )
        self.clusters[key] = _cluster_body(
            params["rg"],
            params["cluster"],
            request.get("location", self.location),
            request,
            "Updating" if existed else "Creating",
        )
        for profile in request.get("properties", {}).get("agentPoolProfiles", []):
            self.pools[(key[0], key[1], profile["name"].lower())] = _pool_body(
                params["rg"], params["cluster"], profile["name"], {"properties": profile}, "Succeeded"
            )
        operation = self._start_operation("put", key, failure)
        return _Reply(
            200 if existed else 201,
            self.clusters[key],
            {"Azure-AsyncOperation": self._operation_url(operation, "operations")},
        )

    def _pool(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        cluster_key = (params["rg"].lower(), params["cluster"].lower())
        key = (*cluster_key, params["pool"].lower())
        failure = self._take_failure({"PUT": "pool.put", "GET": "pool.get", "DELETE": "pool.delete"}[method])
        if failure is not None and not failure.asynchronous:
            return _error(failure.status, failure.code, failure.message)
        if cluster_key not in self.clusters:
            return _error(404, "ParentResourceNotFound", f"managed cluster {params['cluster']} was not found")
        if method == "GET":
            if key not in self.pools:
                return _error(404, "NotFound", f"agent pool {params['pool']} was not found")
            self._advance_resource(key)
            return _Reply(200, self.pools[key])
        if method == "DELETE":
            return self._delete(key, self.pools, failure)
        request = json.loads(body or b"{}")
        existed = key in self.pools
        if existed and request["properties"].get("vmSize") != self.pools[key]["properties"].get("vmSize"):
            return _error(
                400, "PropertyChangeNotAllowed", "Changing property 'properties.vmSize' is not allowed."
            )
        self.pools[key] = _pool_body(
            params["rg"], params["cluster"], params["pool"], request, "Updating" if existed else "Creating"
        )
        operation = self._start_operation("put", key, failure)
        return _Reply(
            200 if existed else 201,
            self.pools[key],
            {"Azure-AsyncOperation": self._operation_url(operation, "operations")},
        )

    def _pools(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        cluster_key = (params["rg"].lower(), params["cluster"].lower())
        return _Reply(200, {"value": [pool for key, pool in self.pools.items() if key[:2] == cluster_key]})

    def _delete(
        self, key: tuple[str, ...], store: dict[Any, dict[str, Any]], failure: _Failure | None
    ) -> _Reply:
        if key not in store:
            return _Reply(204, None)
        store[key]["properties"]["provisioningState"] = "Deleting"
        operation = self._start_operation("delete", key, failure)
        return _Reply(202, None, {"Location": self._operation_url(operation, "operationresults")})

    def _operation(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        operation = self.operations.get(params["op"])
        if operation is None:
            return _error(404, "NotFound", "operation not found")
        self._advance(operation)
        payload: dict[str, Any] = {
            "id": f"/operations/{operation.id}",
            "name": operation.id,
            "status": operation.status,
            "startTime": "2026-01-01T00:00:00Z",
        }
        if operation.error is not None and operation.status == "Failed":
            payload["error"] = operation.error
        return _Reply(200, payload)

    def _result(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        operation = self.operations.get(params["op"])
        if operation is None:
            return _error(404, "NotFound", "operation not found")
        self._advance(operation)
        if operation.status == "InProgress":
            return _Reply(202, None, {"Location": self._operation_url(operation, "operationresults")})
        if operation.status == "Failed":
            assert operation.error is not None
            return _error(400, operation.error["code"], operation.error["message"])
        return _Reply(204, None)

    def _credentials(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        failure = self._take_failure("credentials")
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        if (params["rg"].lower(), params["cluster"].lower()) not in self.clusters:
            return _error(404, "ResourceNotFound", f"managed cluster {params['cluster']} was not found")
        value = base64.b64encode(yaml.safe_dump(self.kubeconfig()).encode()).decode()
        return _Reply(200, {"kubeconfigs": [{"name": "clusterUser", "value": value}]})

    def _keys(self, method: str, params: dict[str, str], body: bytes) -> _Reply:
        failure = self._take_failure("keys")
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        key = self.storage_keys.setdefault(
            params["account"], base64.b64encode(uuid.uuid4().bytes * 2).decode()
        )
        return _Reply(200, {"keys": [{"keyName": "key1", "value": key, "permissions": "FULL"}]})

    def _blob(
        self,
        method: str,
        params: dict[str, str | None],
        query: dict[str, list[str]],
        headers: Any,
        body: bytes,
    ) -> _Reply:
        account, container, blob = params["account"] or "", params["container"] or "", params["blob"]
        if not str(headers.get("Authorization", "")).startswith(f"SharedKey {account}:"):
            return _blob_error(403, "AuthenticationFailed")
        now = {"Last-Modified": email.utils.formatdate(usegmt=True), "ETag": '"0x8D0000000000000"'}
        if blob is None:
            if method == "PUT" and query.get("restype") == ["container"]:
                if (account, container) in self.containers:
                    return _blob_error(409, "ContainerAlreadyExists")
                self.containers.add((account, container))
                return _Reply(201, None, now)
            return _blob_error(400, "UnsupportedQueryParameter")
        key = (account, container, blob)
        if method == "PUT":
            failure = self._take_failure("blob.put")
            if failure is not None:
                return _blob_error(failure.status, failure.code)
            if (account, container) not in self.containers:
                return _blob_error(404, "ContainerNotFound")
            self.blobs[key] = body
            return _Reply(201, None, {**now, "x-ms-request-server-encrypted": "true"})
        if key not in self.blobs:
            return _blob_error(404, "BlobNotFound")
        content = self.blobs[key]
        info = {
            **now,
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(content)),
        }
        return _Reply(200, content if method == "GET" else None, info, raw=True)


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return bytes(self.body) if self.raw else json.dumps(self.body).encode()


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}})


def _blob_error(status: int, code: str) -> _Reply:
    xml = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
    return _Reply(
        status, xml.encode(), {"x-ms-error-code": code, "Content-Type": "application/xml"}, raw=True
    )


def _resource_id(resource_group: str, cluster: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.ContainerService/managedClusters/{cluster}"
    )


def _cluster_body(
    resource_group: str, name: str, location: str, request: dict[str, Any], state: str
) -> dict[str, Any]:
    properties = copy.deepcopy(dict(request.get("properties", {})))
    routing = (properties.get("ingressProfile") or {}).get("webAppRouting") or {}
    if routing.get("enabled"):
        # AKS gives the application routing add-on a managed identity of its own (read-only in the API).
        routing.setdefault(
            "identity",
            {
                "resourceId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/MC_{resource_group}_{name}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/webapprouting-{name}"
            },
        )
    dns_prefix = properties.get("dnsPrefix", name)
    properties.update(
        provisioningState=state,
        kubernetesVersion=properties.get("kubernetesVersion", "1.30.7"),
        currentKubernetesVersion="1.30.7",
        fqdn=f"{dns_prefix}-1a2b3c4d.hcp.{location}.azmk8s.io",
        nodeResourceGroup=f"MC_{resource_group}_{name}_{location}",
        powerState={"code": "Running"},
    )
    return {
        "id": _resource_id(resource_group, name),
        "name": name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "eTag": uuid.uuid4().hex,
        "location": location,
        "tags": request.get("tags", {}),
        "identity": request.get("identity", {"type": "SystemAssigned"}),
        "properties": properties,
    }


def _pool_body(
    resource_group: str, cluster: str, name: str, request: dict[str, Any], state: str
) -> dict[str, Any]:
    properties = dict(request.get("properties", {}))
    properties.setdefault("osType", "Linux")
    properties.setdefault("type", "VirtualMachineScaleSets")
    properties["provisioningState"] = state
    properties["powerState"] = {"code": "Running"}
    return {
        "id": f"{_resource_id(resource_group, cluster)}/agentPools/{name}",
        "name": name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": properties,
    }


class _ArmHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: do not delay the second

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return None

    def _serve(self) -> None:
        fake: FakeArm = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        reply = fake.handle(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        payload = reply.encoded()
        self.send_response(reply.status)
        headers = {"x-ms-request-id": uuid.uuid4().hex, **reply.headers}
        if not reply.raw or "Content-Type" not in headers:
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _serve


def iter_blob_names(fake: FakeArm, account: str, container: str) -> Iterator[str]:
    """Names of the blobs the fake holds in one container (for assertions)."""
    with fake.lock:
        yield from sorted(name for (acct, cont, name) in fake.blobs if acct == account and cont == container)
