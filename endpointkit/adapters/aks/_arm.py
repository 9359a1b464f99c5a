"""Azure Resource Manager calls for AKS: the cluster, the accelerator node pool, kubeconfig and storage keys.

Uses azure-mgmt-containerservice (imported lazily). Its pipeline retries are switched off (``retry_total=0``)
so that :func:`~endpointkit.adapters.aks._errors.with_retries` is the one bounded retry policy; long-running
operations (``begin_*`` pollers) are waited on with :func:`endpointkit._wait.wait_for`, bounded by the spec's
timeouts and reporting progress. Sovereign clouds: ``arm_endpoint`` becomes ``base_url`` and the token scope.

The Gateway API add-on lives in the managed cluster's ``properties.ingressProfile`` (models
``ManagedClusterIngressProfile``, ``ManagedClusterIngressProfileGatewayConfiguration``,
``ManagedClusterIngressProfileWebAppRouting``, ``ManagedClusterWebAppRoutingGatewayAPIImplementations``,
``ManagedClusterAppRoutingIstio``; azure-mgmt-containerservice >= 41.1.0, ARM api-version >= 2026-02-01):
``gatewayAPI.installation: Standard`` installs the managed Gateway API CRDs
(https://learn.microsoft.com/azure/aks/managed-gateway-api) and
``webAppRouting.gatewayAPIImplementations.appRoutingIstio.mode: Enabled`` runs the ``approuting-istio`` class
(https://learn.microsoft.com/azure/aks/app-routing-gateway-api).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from endpointkit._lazy import require
from endpointkit._wait import Progress, wait_for
from endpointkit.adapters.aks._errors import PollPolicy, RetryPolicy, _map_errors, with_retries
from endpointkit.adapters.aks._tls import azure_verify_options
from endpointkit.errors import ConflictError, NotFoundError, ProviderError
from endpointkit.spec import AksTarget

__all__ = [
    "ArmClient",
    "ClusterInfo",
    "PoolInfo",
    "PoolRequest",
    "default_client_factory",
    "default_credential",
    "gateway_ingress_profile",
]

SYSTEM_POOL = "system"
# Two vCPUs and 8 GiB: above the AKS minimum for system pools (https://learn.microsoft.com/azure/aks/use-system-pools).
SYSTEM_VM_SIZE = "Standard_D2s_v5"
# Microsoft.Storage listKeys (https://learn.microsoft.com/rest/api/storagerp/storage-accounts/list-keys).
STORAGE_API_VERSION = "2023-05-01"

ClientFactory = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A managed cluster as ARM reports it, with what its ingress and service mesh profiles turn on.

    Attributes:
        gateway_api_crds: ``ingressProfile.gatewayAPI.installation`` is ``Standard`` (managed Gateway API CRDs).
        app_routing_istio: ``ingressProfile.webAppRouting.gatewayAPIImplementations.appRoutingIstio.mode`` is
            ``Enabled`` (the ``approuting-istio`` Gateway class).
        app_routing: ``ingressProfile.webAppRouting.enabled`` (the application routing operator, which syncs
            Key Vault certificates to Gateway listeners).
        istio_mesh: ``serviceMeshProfile.mode`` is ``Istio``: the Istio service mesh add-on, which cannot run
            next to the ``approuting-istio`` implementation.
    """

    name: str
    location: str
    provisioning_state: str
    tags: Mapping[str, str] = field(default_factory=dict)
    gateway_api_crds: bool = False
    app_routing_istio: bool = False
    app_routing: bool = False
    istio_mesh: bool = False

    @property
    def gateway_api(self) -> bool:
        """Both halves of the application routing Gateway API add-on are on: the CRDs and the implementation."""
        return self.gateway_api_crds and self.app_routing_istio


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """An agent pool as ARM reports it."""

    name: str
    vm_size: str
    count: int | None
    autoscale: bool
    min_count: int | None
    max_count: int | None
    provisioning_state: str
    tags: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PoolRequest:
    """The accelerator pool the spec asks for: a User pool with a taint and a label."""

    name: str
    vm_size: str
    count: int
    min_count: int | None
    max_count: int | None
    taint: str
    labels: Mapping[str, str]

    @property
    def autoscale(self) -> bool:
        return self.min_count is not None and self.max_count is not None

    def immutable_differences(self, pool: PoolInfo) -> dict[str, tuple[str, str]]:
        """Fields set only when a pool is made, as ``{field: (current, wanted)}``: the VM size and the taints
        ("Taints and VM sizes can only be set for node pools during node pool creation",
        https://learn.microsoft.com/azure/aks/use-nvidia-gpu)."""
        differences: dict[str, tuple[str, str]] = {}
        if pool.vm_size.lower() != self.vm_size.lower():
            differences["vm_size"] = (pool.vm_size, self.vm_size)
        if set(pool.taints) != {self.taint}:
            differences["taints"] = (_taint_list(pool.taints), _taint_list((self.taint,)))
        return differences

    def mutable_differences(self, pool: PoolInfo) -> list[str]:
        """Fields that an update of ``pool`` can change in place (count and autoscaler bounds)."""
        changes = []
        if self.autoscale != pool.autoscale:
            changes.append(f"autoscale {pool.autoscale} -> {self.autoscale}")
        if self.autoscale and (self.min_count, self.max_count) != (pool.min_count, pool.max_count):
            changes.append(f"bounds {pool.min_count}..{pool.max_count} -> {self.min_count}..{self.max_count}")
        if not self.autoscale and self.count != pool.count:
            changes.append(f"count {pool.count} -> {self.count}")
        return changes


def default_credential() -> Any:
    """azure-identity's DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI…)."""
    identity = require("azure.identity", extra="aks")
    return identity.DefaultAzureCredential()


def default_client_factory(credential: Any, subscription_id: str, **options: Any) -> Any:
    """A real ContainerServiceClient; ``options`` are azure-core settings (base_url, credential_scopes, …)."""
    module = require("azure.mgmt.containerservice", extra="aks")
    return module.ContainerServiceClient(credential, subscription_id, **options)


class ArmClient:
    """The AKS control-plane calls of one target, errors mapped, retried and bounded."""

    def __init__(
        self,
        target: AksTarget,
        *,
        credential: Callable[[], Any],
        client_factory: ClientFactory | None = None,
        client_options: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        polling: PollPolicy | None = None,
    ) -> None:
        self.target = target
        self._credential = credential
        self._factory = client_factory or default_client_factory
        self._options = dict(client_options or {})
        self._retry = retry or RetryPolicy()
        self._polling = polling or PollPolicy()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            endpoint = self.target.arm_endpoint.rstrip("/")
            options = azure_verify_options(
                {
                    "base_url": endpoint,
                    "credential_scopes": [f"{endpoint}/.default"],
                    "retry_total": 0,
                    **self._options,
                }
            )
            with _map_errors("azure", "connect to Azure Resource Manager"):
                self._client = self._factory(self._credential(), self.target.subscription_id, **options)
        return self._client

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        return with_retries(call, policy=self._retry, provider="azure", operation=operation)

    def _long_running(
        self, operation: str, start: Callable[[], Any], *, timeout: float, progress: Progress | None
    ) -> Any:
        deadline = time.monotonic() + timeout

        def run() -> Any:
            poller = start()
            wait_for(
                lambda: poller,
                done=lambda p: bool(p.done()),
                describe=lambda p: str(p.status()),
                subject=operation,
                timeout=max(0.0, deadline - time.monotonic()),
                progress=progress,
                first_delay=self._polling.first,
                max_delay=self._polling.most,
            )
            return poller.result()

        # A retry re-sends the whole PUT or DELETE: both are idempotent in ARM.
        return self._call(operation, run)

    # ---- cluster -------------------------------------------------------------------------------------
    @property
    def _cluster_label(self) -> str:
        return f"cluster {self.target.cluster} (resource group {self.target.resource_group})"

    def cluster(self) -> ClusterInfo | None:
        """The cluster, or None when it does not exist."""
        try:
            found = self._call(
                f"read {self._cluster_label}",
                lambda: self.client.managed_clusters.get(self.target.resource_group, self.target.cluster),
            )
        except NotFoundError:
            return None
        return _cluster_info(found)

    def create_cluster(
        self,
        *,
        tags: Mapping[str, str],
        timeout: float,
        progress: Progress | None,
        gateway_api: bool = False,
    ) -> ClusterInfo:
        """Create the cluster with a small System pool and wait until it is provisioned.

        With ``gateway_api`` the cluster is made with the application routing Gateway API add-on in its ingress
        profile (:func:`gateway_ingress_profile`), as ``az aks create --enable-gateway-api
        --enable-app-routing-istio`` would.
        """
        models = require("azure.mgmt.containerservice.models", extra="aks")
        ingress = models.ManagedClusterIngressProfile(gateway_ingress_profile()) if gateway_api else None
        body = models.ManagedCluster(
            location=self.target.location,
            dns_prefix=self.target.cluster.replace("_", "-")[:54].strip("-"),  # 1-54 letters, digits, hyphens
            identity=models.ManagedClusterIdentity(type="SystemAssigned"),
            agent_pool_profiles=[
                models.ManagedClusterAgentPoolProfile(
                    name=SYSTEM_POOL,
                    vm_size=SYSTEM_VM_SIZE,
                    count=1,
                    mode="System",
                    os_type="Linux",
                    type="VirtualMachineScaleSets",
                )
            ],
            tags=dict(tags),
            ingress_profile=ingress,
        )
        result = self._long_running(
            f"create {self._cluster_label}",
            lambda: self.client.managed_clusters.begin_create_or_update(
                self.target.resource_group, self.target.cluster, body
            ),
            timeout=timeout,
            progress=progress,
        )
        return _cluster_info(result)

    def enable_gateway_api(self, *, timeout: float, progress: Progress | None) -> ClusterInfo:
        """Turn on the application routing Gateway API add-on of the existing cluster; waits until provisioned.

        ARM has no narrower write for it: the SDK's only partial update of a managed cluster,
        ``begin_update_tags``, sends tags alone. So, like ``az aks update``, the cluster is read and PUT back
        (``managed_clusters.begin_create_or_update``) with only ``properties.ingressProfile`` changed
        (:func:`gateway_ingress_profile`) and ``If-Match`` its ``eTag``, so a change made meanwhile by someone else
        is refused rather than overwritten. The SDK leaves read-only fields out of the body. Idempotent: a retry
        reads the cluster again and sends the same change.

        Raises:
            NotFoundError: the cluster does not exist.
            ConflictError: the cluster changed between the read and the write (HTTP 412): apply again.
            ProviderError: ARM refused the change or the operation failed; Azure's code and message are in it.
            ProvisionTimeout: the operation ran longer than ``timeout``.
        """
        models = require("azure.mgmt.containerservice.models", extra="aks")
        core = require("azure.core", extra="aks")
        clusters = self.client.managed_clusters

        def start() -> Any:
            current = clusters.get(self.target.resource_group, self.target.cluster)
            body = current.as_dict(exclude_readonly=True)
            properties = body.setdefault("properties", {})
            properties["ingressProfile"] = gateway_ingress_profile(properties.get("ingressProfile"))
            etag = current.e_tag or None
            return clusters.begin_create_or_update(
                self.target.resource_group,
                self.target.cluster,
                models.ManagedCluster(body),
                etag=etag,
                match_condition=core.MatchConditions.IfNotModified if etag else None,
            )

        operation = f"enable the Gateway API add-on on {self._cluster_label}"
        try:
            result = self._long_running(operation, start, timeout=timeout, progress=progress)
        except ProviderError as error:
            if error.details.get("status") != 412:
                raise
            raise ConflictError(
                f"{operation}: the cluster changed while endpointkit was updating it (its eTag no longer "
                "matches); nothing was changed: apply again",
                provider="azure",
                operation=operation,
                code=error.code,
                details=error.details,
            ) from error
        return _cluster_info(result)

    def delete_cluster(self, *, timeout: float, progress: Progress | None) -> None:
        self._long_running(
            f"delete {self._cluster_label}",
            lambda: self.client.managed_clusters.begin_delete(
                self.target.resource_group, self.target.cluster
            ),
            timeout=timeout,
            progress=progress,
        )

    def kubeconfig(self) -> dict[str, Any]:
        """The cluster user kubeconfig, parsed, never written to disk here."""
        result = self._call(
            f"get credentials of {self._cluster_label}",
            lambda: self.client.managed_clusters.list_cluster_user_credentials(
                self.target.resource_group, self.target.cluster
            ),
        )
        # The SDK returns the value base64-decoded already (bytes).
        value = result.kubeconfigs[0].value
        parsed = yaml.safe_load(value.decode() if isinstance(value, bytes | bytearray) else value)
        if not isinstance(parsed, dict):
            raise NotFoundError(
                f"{self._cluster_label} returned no usable kubeconfig",
                provider="azure",
                operation="get credentials",
            )
        return parsed

    # ---- node pool -----------------------------------------------------------------------------------
    def _pool_label(self, name: str) -> str:
        return f"node pool {name} of cluster {self.target.cluster}"

    def pool(self, name: str) -> PoolInfo | None:
        try:
            found = self._call(
                f"read {self._pool_label(name)}",
                lambda: self.client.agent_pools.get(self.target.resource_group, self.target.cluster, name),
            )
        except NotFoundError:
            return None
        return _pool_info(found)

    def put_pool(
        self, request: PoolRequest, *, tags: Mapping[str, str], timeout: float, progress: Progress | None
    ) -> PoolInfo:
        """Create the pool, or change its count or autoscaler bounds; waits until provisioned."""
        models = require("azure.mgmt.containerservice.models", extra="aks")
        body = models.AgentPool(
            vm_size=request.vm_size,
            count=request.min_count if request.autoscale else request.count,
            enable_auto_scaling=request.autoscale,
            min_count=request.min_count,
            max_count=request.max_count,
            mode="User",
            os_type="Linux",
            type="VirtualMachineScaleSets",
            node_taints=[request.taint],
            node_labels=dict(request.labels),
            tags=dict(tags),
        )
        result = self._long_running(
            f"provision {self._pool_label(request.name)} ({request.vm_size})",
            lambda: self.client.agent_pools.begin_create_or_update(
                self.target.resource_group, self.target.cluster, request.name, body
            ),
            timeout=timeout,
            progress=progress,
        )
        return _pool_info(result)

    def delete_pool(self, name: str, *, timeout: float, progress: Progress | None) -> None:
        self._long_running(
            f"delete {self._pool_label(name)}",
            lambda: self.client.agent_pools.begin_delete(
                self.target.resource_group, self.target.cluster, name
            ),
            timeout=timeout,
            progress=progress,
        )

    # ---- storage -------------------------------------------------------------------------------------
    def storage_key(self, account: str) -> str:
        """The first key of a storage account in the target's resource group (needs listKeys permission)."""
        rest = require("azure.core.rest", extra="aks")
        path = (
            f"/subscriptions/{self.target.subscription_id}/resourceGroups/{self.target.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{account}/listKeys"
        )

        def call() -> str:
            response = self.client.send_request(
                rest.HttpRequest("POST", path, params={"api-version": STORAGE_API_VERSION})
            )
            response.raise_for_status()
            keys = response.json().get("keys") or []
            if not keys:
                raise NotFoundError(
                    f"storage account {account} has no keys", provider="azure", operation="list storage keys"
                )
            return str(keys[0]["value"])

        result: str = self._call(f"list keys of storage account {account}", call)
        return result


def _taint_list(taints: tuple[str, ...]) -> str:
    return "[" + ", ".join(sorted(taints)) + "]"


def _tags(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def gateway_ingress_profile(current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``properties.ingressProfile`` (REST JSON) with the application routing Gateway API add-on on, every other
    field of ``current`` kept.

    Sets ``gatewayAPI.installation: Standard`` (the managed Gateway API CRDs: "Use of self-managed Gateway API
    CRDs with the application routing add-on is unsupported") and
    ``webAppRouting.gatewayAPIImplementations.appRoutingIstio.mode: Enabled``
    (https://learn.microsoft.com/azure/aks/app-routing-gateway-api). ``webAppRouting.enabled`` is set too: the
    AKS API proposal that added ``gatewayAPIImplementations`` says ``--enable-app-routing-istio`` "will set app
    routing to enabled if it isn't already", and the add-on's operator is what syncs Key Vault certificates to
    Gateway listeners (https://learn.microsoft.com/azure/aks/app-routing-gateway-api-dns-tls). When this turns
    application routing
    on, its default NGINX controller is declined (``nginx.defaultIngressControllerType: None``,
    https://learn.microsoft.com/azure/aks/app-routing-nginx-configuration): the Gateway is the way in, and no
    extra public load balancer should appear.
    """
    profile: dict[str, Any] = copy.deepcopy(dict(current or {}))
    profile["gatewayAPI"] = {**(profile.get("gatewayAPI") or {}), "installation": "Standard"}
    routing: dict[str, Any] = dict(profile.get("webAppRouting") or {})
    if not routing.get("enabled"):
        routing["enabled"] = True
        routing.setdefault("nginx", {"defaultIngressControllerType": "None"})
    implementations: dict[str, Any] = dict(routing.get("gatewayAPIImplementations") or {})
    implementations["appRoutingIstio"] = {**(implementations.get("appRoutingIstio") or {}), "mode": "Enabled"}
    routing["gatewayAPIImplementations"] = implementations
    profile["webAppRouting"] = routing
    return profile


def _field(data: Any, *path: str) -> Any:
    """The value at ``path`` in nested REST JSON, or None where a level is missing."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _is(value: Any, wanted: str) -> bool:
    return isinstance(value, str) and value.lower() == wanted.lower()


def _cluster_info(cluster: Any) -> ClusterInfo:
    raw = cluster.as_dict() if hasattr(cluster, "as_dict") else {}
    ingress = _field(raw, "properties", "ingressProfile")
    return ClusterInfo(
        name=str(cluster.name),
        location=str(cluster.location or ""),
        provisioning_state=str(cluster.provisioning_state or "Unknown"),
        tags=_tags(cluster.tags),
        gateway_api_crds=_is(_field(ingress, "gatewayAPI", "installation"), "Standard"),
        app_routing_istio=_is(
            _field(ingress, "webAppRouting", "gatewayAPIImplementations", "appRoutingIstio", "mode"),
            "Enabled",
        ),
        app_routing=_field(ingress, "webAppRouting", "enabled") is True,
        istio_mesh=_is(_field(raw, "properties", "serviceMeshProfile", "mode"), "Istio"),
    )


def _pool_info(pool: Any) -> PoolInfo:
    return PoolInfo(
        name=str(pool.name),
        vm_size=str(pool.vm_size or ""),
        count=pool.count,
        autoscale=bool(pool.enable_auto_scaling),
        min_count=pool.min_count,
        max_count=pool.max_count,
        provisioning_state=str(pool.provisioning_state or "Unknown"),
        tags=_tags(pool.tags),
        taints=tuple(pool.node_taints or ()),
    )
