"""The cluster and accelerator node pool under an endpoint: used as found, made when missing, released when no
endpointkit endpoint uses them any more, and only when endpointkit made them (ARM tag ``managed-by``).

GPU capacity is a separate User pool because "taints and VM sizes can only be set for node pools during node
pool creation" (https://learn.microsoft.com/azure/aks/use-nvidia-gpu). A pool whose VM size or taints differ from
the spec is replaced only when endpointkit made it and nothing else runs on it; otherwise plan refuses it.

A Gateway class that AKS turns on through the cluster's ingress profile (``approuting-istio``, see
:mod:`._gateway_classes`) is part of a cluster endpointkit makes; on an existing cluster that lacks it, it is
enabled only with ``allow_addon_changes: true`` and otherwise refused in plan, naming the ``az aks`` commands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from endpointkit._wait import Progress, wait_for
from endpointkit.adapters.aks import _render
from endpointkit.adapters.aks._arm import ArmClient, ClusterInfo, PoolInfo, PoolRequest
from endpointkit.adapters.aks._desired import GPU_RESOURCE, TAINTS, EndpointPlan, pool_request
from endpointkit.adapters.aks._errors import PollPolicy
from endpointkit.adapters.aks._gateway_classes import gateway_class_info
from endpointkit.adapters.aks._kube import KubeClient, accelerator_nodes
from endpointkit.adapters.aks._rules import FPGA_REGIONS
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.errors import ConflictError, NotFoundError, ProviderError, UnsupportedCapabilityError
from endpointkit.spec import AksTarget, Deployment

__all__ = [
    "Infrastructure",
    "MissingAddon",
    "accelerator_of",
    "gateway_addon_wanted",
    "is_ours",
    "missing_gateway_addon",
    "pool_request_for",
]

logger = logging.getLogger("endpointkit.aks")
_BUSY_STATES = frozenset(
    {"creating", "updating", "upgrading", "scaling", "starting", "stopping", "migrating"}
)


def is_ours(tags: Mapping[str, str]) -> bool:
    """Whether endpointkit made an Azure resource (and may therefore delete it)."""
    return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class MissingAddon:
    """A part of the Gateway API add-on a cluster lacks: the ingress profile field, and the command that sets it."""

    what: str
    command: str


def _addon_class(target: AksTarget) -> bool:
    """Whether the target's Gateway class is one AKS turns on through the cluster's ingress profile."""
    info = gateway_class_info(target.gateway_class)
    return info is not None and info.addon


def gateway_addon_wanted(deployment: Deployment) -> bool:
    """Whether endpointkit makes a Gateway of an add-on class for this spec, so the cluster must have the add-on.

    Not when the spec names an existing ``gateway``: it is served already, by whatever its class is.
    """
    target = deployment.target
    assert isinstance(target, AksTarget)
    return target.gateway is None and _addon_class(target)


def _key_vault_tls(target: AksTarget) -> bool:
    return not isinstance(target.tls, str) and target.tls.key_vault_certificate is not None


def missing_gateway_addon(deployment: Deployment, cluster: ClusterInfo) -> list[MissingAddon]:
    """What of the Gateway API add-on this spec needs and ``cluster`` lacks, each with its ``az aks`` command.

    Commands from https://learn.microsoft.com/azure/aks/managed-gateway-api (``--enable-gateway-api``),
    https://learn.microsoft.com/azure/aks/app-routing-gateway-api (``--enable-app-routing-istio``) and, for a
    Key Vault certificate, https://learn.microsoft.com/azure/aks/app-routing-gateway-api-dns-tls (``az aks
    approuting enable``: its operator syncs the certificate). Empty when nothing is missing or no add-on is wanted.
    """
    if not gateway_addon_wanted(deployment):
        return []
    target = deployment.target
    assert isinstance(target, AksTarget)
    where = f"--resource-group {target.resource_group} --name {cluster.name}"
    missing = []
    if not cluster.gateway_api_crds:
        missing.append(
            MissingAddon(
                "the managed Gateway API CRDs (ingressProfile.gatewayAPI.installation: Standard)",
                f"az aks update {where} --enable-gateway-api",
            )
        )
    if not cluster.app_routing_istio:
        missing.append(
            MissingAddon(
                "the application routing Gateway API implementation "
                "(ingressProfile.webAppRouting.gatewayAPIImplementations.appRoutingIstio.mode: Enabled)",
                f"az aks update {where} --enable-app-routing-istio",
            )
        )
    elif not cluster.app_routing and _key_vault_tls(target):
        missing.append(
            MissingAddon(
                "the application routing add-on (ingressProfile.webAppRouting.enabled), whose operator syncs "
                "Key Vault certificates to Gateway listeners",
                f"az aks approuting enable {where}",
            )
        )
    return missing


class Infrastructure:
    """Cluster and pool of one AKS target. Remembers what it made during this adapter's life (for rollback)."""

    def __init__(
        self,
        arm: ArmClient,
        kube: Callable[[], KubeClient],
        forget_kube: Callable[[], None],
        *,
        polling: PollPolicy,
    ) -> None:
        self.arm = arm
        self._kube = kube
        self._forget_kube = forget_kube
        self._polling = polling
        self.created_cluster = False

    @property
    def target(self) -> AksTarget:
        return self.arm.target

    # ---- cluster -------------------------------------------------------------------------------------
    def ensure_cluster(
        self, deployment: Deployment, plan: EndpointPlan, *, deadline: float, progress: Progress | None
    ) -> ClusterInfo:
        """The cluster, created when missing and ``create_cluster`` is true; waits while it is busy."""
        cluster = self.arm.cluster()
        if cluster is None:
            if not self.target.create_cluster:
                raise NotFoundError(
                    f"AKS cluster {self.target.cluster} does not exist in resource group "
                    f"{self.target.resource_group}: create it, or set create_cluster: true (with a location)",
                    provider="azure",
                    operation="read cluster",
                    code="ResourceNotFound",
                )
            # Recorded before the call: a create that fails half-way leaves a Failed cluster that is ours.
            self.created_cluster = True
            return self.arm.create_cluster(
                tags=plan.infra_tags,
                timeout=_remaining(deadline),
                progress=progress,
                gateway_api=_addon_class(self.target),
            )
        state = cluster.provisioning_state.lower()
        if state in _BUSY_STATES:
            cluster = wait_for(
                lambda: self.arm.cluster(),
                done=lambda c: c is not None and c.provisioning_state.lower() not in _BUSY_STATES,
                describe=lambda c: c.provisioning_state if c else "gone",
                subject=f"cluster {self.target.cluster}",
                timeout=_remaining(deadline),
                progress=progress,
                first_delay=self._polling.first,
                max_delay=self._polling.most,
            )
            assert cluster is not None
        if cluster.provisioning_state.lower() != "succeeded":
            raise ProviderError(
                f"AKS cluster {self.target.cluster} is {cluster.provisioning_state}: fix it in Azure "
                "(az aks show / az aks update) and apply again",
                provider="azure",
                operation="read cluster",
                code=cluster.provisioning_state,
            )
        return cluster

    # ---- Gateway API add-on ------------------------------------------------------------------------
    def check_gateway_addon(self, deployment: Deployment, cluster: ClusterInfo) -> None:
        """Refuse a spec whose Gateway class needs an add-on ``cluster`` lacks, unless ``allow_addon_changes``.

        Read-only: decides from what ARM reported in ``cluster``. Nothing to check for a class AKS does not turn on
        through the ingress profile, or when the spec names an existing ``gateway``.

        Raises:
            ConflictError: the add-on is missing and ``allow_addon_changes`` is false (the message names the
                cluster, what is missing and the ``az aks`` commands, ``details["commands"]`` lists them); or the
                cluster runs the Istio service mesh add-on, which AKS does not run next to ``approuting-istio``
                ("You can't enable the application routing Gateway API implementation and the Istio service mesh
                add-on at the same time", https://learn.microsoft.com/azure/aks/app-routing-gateway-api).
        """
        missing = missing_gateway_addon(deployment, cluster)
        if not missing:
            return
        target = self.target
        field = f"targets.{deployment.target_name}.gateway_class"
        label = f"AKS cluster {cluster.name} (resource group {target.resource_group})"
        if cluster.istio_mesh and not cluster.app_routing_istio:
            raise ConflictError(
                f"{field}: {target.gateway_class} cannot be enabled on {label}: it runs the Istio service mesh "
                "add-on, and AKS does not run both: set gateway_class: istio (the mesh's own Gateway class, "
                "with az aks update --enable-gateway-api), or disable the mesh (az aks mesh disable "
                f"--resource-group {target.resource_group} --name {cluster.name}) and apply again",
                provider="azure",
                operation="check Gateway API add-on",
                code="IstioServiceMeshEnabled",
                details={"missing": [m.what for m in missing]},
            )
        if target.allow_addon_changes:
            return
        commands = [m.command for m in missing]
        raise ConflictError(
            f"{field}: {target.gateway_class} needs, on {label}, "
            f"{'; and '.join(m.what for m in missing)}, which the cluster does not have: run "
            f"{' then '.join(commands)}, or set allow_addon_changes: true (endpointkit then enables it, changing "
            "only the cluster's ingress profile)",
            provider="azure",
            operation="check Gateway API add-on",
            code="GatewayAddonMissing",
            details={"missing": [m.what for m in missing], "commands": commands},
        )

    def ensure_gateway_addon(
        self, deployment: Deployment, cluster: ClusterInfo, *, deadline: float, progress: Progress | None
    ) -> ClusterInfo:
        """The cluster with the Gateway API add-on the spec needs: enabled when missing and allowed.

        Blocks until ARM has provisioned the change (bounded by ``deadline``, progress reported). Never enables
        anything unless ``allow_addon_changes`` is true; the change is logged as a warning, and only
        ``properties.ingressProfile`` changes (:meth:`ArmClient.enable_gateway_api`). Idempotent.

        Raises:
            ConflictError: as :meth:`check_gateway_addon`; or the cluster changed while it was being updated.
            ProviderError: ARM refused the change or its operation failed (Azure's reason in the message).
        """
        self.check_gateway_addon(deployment, cluster)
        missing = missing_gateway_addon(deployment, cluster)
        if not missing:
            return cluster
        logger.warning(
            "enabling on AKS cluster %s (allow_addon_changes: true): %s",
            cluster.name,
            "; ".join(m.what for m in missing),
        )
        return self.arm.enable_gateway_api(timeout=_remaining(deadline), progress=progress)

    # ---- pool ----------------------------------------------------------------------------------------
    def users(self, kube: KubeClient) -> dict[str, set[str]]:
        """Endpoints with Deployments or configs in the cluster, each with the node pools they use."""
        selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE}"
        users: dict[str, set[str]] = {}
        for kind in ("Deployment", "ConfigMap"):
            for item in kube.list(kind, None, label_selector=selector):
                labels = item["metadata"].get("labels", {})
                if labels.get(_render.LABEL_ROLE) not in ("endpoint", "config"):
                    continue
                pools = users.setdefault(str(labels.get(_render.LABEL_ENDPOINT, "?")), set())
                if _render.LABEL_POOL in labels:
                    pools.add(str(labels[_render.LABEL_POOL]))
        return users

    def _pool_users(self, pool: str, *, besides: str) -> list[str]:
        users = self.users(self._kube())
        return sorted(name for name, pools in users.items() if pool in pools and name != besides)

    def check_region(self, deployment: Deployment, cluster: ClusterInfo) -> None:
        """Refuse FPGA variants on a cluster in a region without NP-series VMs (UnsupportedCapabilityError).

        Checked against the cluster ARM reports, so it holds when the spec leaves ``location`` unset.
        """
        if accelerator_of(deployment) != "fpga" or cluster.location.lower() in FPGA_REGIONS:
            return
        field = f"targets.{deployment.target_name}.cluster"
        raise UnsupportedCapabilityError(
            f"{field}: cluster {cluster.name} is in {cluster.location}, where NP-series FPGA VMs are not offered; "
            f"use a cluster in one of {', '.join(sorted(FPGA_REGIONS))}, or a GPU variant",
            missing={"fpga": f"not offered in {cluster.location}"},
        )

    def pool_verdict(
        self, deployment: Deployment, wanted: PoolRequest, pool: PoolInfo, *, allow_replace: bool
    ) -> str | None:
        """Whether ``pool`` can carry the endpoint: None when it can as it is (or after an in-place update of
        its count or bounds); a replace reason when a field set only at creation differs and the pool is
        endpointkit's, unused by any other endpoint, and ``allow_replace``.

        Raises:
            ConflictError: such a field differs and the pool cannot be replaced; the message names each
                field, its current and wanted value, and what to change in the spec.
        """
        differences = wanted.immutable_differences(pool)
        ours = is_ours(pool.tags)
        if not ours and "taints" in differences and set(pool.taints) <= {wanted.taint}:
            # A pool someone else made without our taint still runs our pods (they tolerate sku=…, and the
            # nodeSelector pins them to it); only a taint they do not tolerate keeps them off.
            del differences["taints"]
        if not differences:
            return None
        listing = "; ".join(
            f"{field} is {current}, the spec needs {needed}"
            for field, (current, needed) in differences.items()
        )
        users = self._pool_users(pool.name, besides=deployment.name)
        if ours and not users and allow_replace:
            return (
                f"replace required: node pool {pool.name}: {listing}, and a pool's VM size and taints cannot "
                "change in place: the pool and the endpoint on it are deleted and made again"
            )
        who = (
            f"endpoints {', '.join(users)} run on it"
            if users
            else "endpointkit did not create it"
            if not ours
            else "this is an in-place update"
        )
        prefix = f"targets.{deployment.target_name}.node_pool"
        fixes = []
        if "vm_size" in differences:
            fixes.append(f"set {prefix}.vm_size: {pool.vm_size}")
        fixes.append(f"choose another {prefix}.name (endpointkit then makes that pool)")
        raise ConflictError(
            f"node pool {pool.name} of cluster {self.target.cluster}: {listing}; these are set only when a pool "
            f"is made (they cannot change in place) and it will not be replaced because {who}: "
            f"{', or '.join(fixes)}",
            provider="azure",
            operation=f"update node pool {pool.name}",
            code="PropertyChangeNotAllowed",
            details={"fields": {field: list(values) for field, values in differences.items()}},
        )

    def check_pool(self, deployment: Deployment, wanted: PoolRequest | None) -> str | None:
        """Read the pool ``wanted`` names and judge it (:meth:`pool_verdict`, replace allowed). Read-only."""
        if wanted is None:
            return None
        pool = self.arm.pool(wanted.name)
        return None if pool is None else self.pool_verdict(deployment, wanted, pool, allow_replace=True)

    def ensure_pool(
        self,
        deployment: Deployment,
        plan: EndpointPlan,
        cluster: ClusterInfo,
        *,
        deadline: float,
        progress: Progress | None,
        allow_replace: bool,
    ) -> PoolInfo | None:
        """The accelerator pool: created when missing, resized when ours, replaced only when allowed."""
        request = plan.pool
        if request is None:
            return None
        self.check_region(deployment, cluster)
        pool = self.arm.pool(request.name)
        if pool is not None:
            replace = self.pool_verdict(deployment, request, pool, allow_replace=allow_replace)
            if replace is not None:
                logger.warning("replacing node pool %s: %s", pool.name, replace)
                self.arm.delete_pool(pool.name, timeout=_remaining(deadline), progress=progress)
                pool = None
        if pool is None:
            return self.arm.put_pool(
                request, tags=plan.infra_tags, timeout=_remaining(deadline), progress=progress
            )
        if pool.provisioning_state.lower() in _BUSY_STATES:
            # Another operation (an autoscaler scale, an upgrade) runs on it: a PUT now would be refused.
            settled = wait_for(
                lambda: self.arm.pool(request.name),
                done=lambda p: p is None or p.provisioning_state.lower() not in _BUSY_STATES,
                describe=lambda p: p.provisioning_state if p else "gone",
                subject=f"node pool {request.name}",
                timeout=_remaining(deadline),
                progress=progress,
                first_delay=self._polling.first,
                max_delay=self._polling.most,
            )
            if settled is None:
                return self.arm.put_pool(
                    request, tags=plan.infra_tags, timeout=_remaining(deadline), progress=progress
                )
            pool = settled
        if is_ours(pool.tags) and (
            request.mutable_differences(pool) or pool.provisioning_state.lower() != "succeeded"
        ):
            return self.arm.put_pool(
                request,
                tags={**plan.infra_tags, **pool.tags},
                timeout=_remaining(deadline),
                progress=progress,
            )
        return pool

    def prepare_accelerators(
        self,
        plan: EndpointPlan,
        pool: PoolInfo | None,
        kube: KubeClient,
        *,
        deadline: float,
        progress: Progress | None,
    ) -> None:
        """On a GPU pool endpointkit made: run the NVIDIA device plugin and wait until every node offers GPUs.

        Without this gate the first pods would meet nodes whose plugin has not registered yet and be
        reported unschedulable.
        """
        if pool is None or plan.pool is None or plan.accelerator != "gpu" or not is_ours(pool.tags):
            return
        kube.apply(_render.device_plugin(pool.name))
        expected = plan.pool.min_count if plan.pool.autoscale else plan.pool.count
        if not expected:
            return  # no node yet: the autoscaler adds them when pods ask
        wait_for(
            lambda: accelerator_nodes(kube, pool.name, GPU_RESOURCE),
            done=lambda counts: counts[0] > 0 and counts[1] == counts[0],
            describe=lambda counts: f"{counts[1]}/{counts[0]} nodes offer {GPU_RESOURCE}",
            subject=f"GPUs of node pool {pool.name}",
            timeout=_remaining(deadline),
            progress=progress,
            first_delay=self._polling.first,
            max_delay=self._polling.most,
        )

    def drop_mismatched_pool(
        self, deployment: Deployment, wanted: PoolRequest | None, *, timeout: float, progress: Progress | None
    ) -> None:
        """Delete our pool when a field set at creation differs from the spec and nothing else uses it (the
        first half of a replace)."""
        if wanted is None:
            return
        pool = self.arm.pool(wanted.name)
        if pool is None or not is_ours(pool.tags) or not wanted.immutable_differences(pool):
            return
        if self._pool_users(pool.name, besides=deployment.name):
            return
        self._delete_device_plugin(wanted.name)
        self.arm.delete_pool(wanted.name, timeout=timeout, progress=progress)

    def _delete_device_plugin(self, pool: str) -> None:
        self._kube().delete("DaemonSet", _render.device_plugin(pool)["metadata"]["name"], "kube-system")

    # ---- release -------------------------------------------------------------------------------------
    def release(self, pool_name: str | None, *, timeout: float, progress: Progress | None) -> None:
        """Delete the pool, or the whole cluster, when endpointkit made it and no endpointkit endpoint uses it."""
        cluster = self.arm.cluster()
        if cluster is None:
            return
        pool = self.arm.pool(pool_name) if pool_name else None
        cluster_ours, pool_ours = is_ours(cluster.tags), pool is not None and is_ours(pool.tags)
        if not cluster_ours and not pool_ours:
            return
        try:
            users = self.users(self._kube())
        except ProviderError as error:
            if not (cluster_ours and self.created_cluster):
                logger.warning(
                    "cannot tell whether cluster %s is in use (%s): leaving it", cluster.name, error
                )
                return
            users = {}  # made in this run and unreachable: nothing else can be on it
        if cluster_ours and not users:
            self._forget_kube()
            self.arm.delete_cluster(timeout=timeout, progress=progress)
            self.created_cluster = False
            return
        if pool is not None and pool_ours and not any(pool.name in pools for pools in users.values()):
            self._delete_device_plugin(pool.name)
            self.arm.delete_pool(pool.name, timeout=timeout, progress=progress)


def accelerator_of(deployment: Deployment) -> str | None:
    """The accelerator the spec's pool carries (``gpu`` or ``fpga``), None for CPU-only variants."""
    return next((v.accelerator for v in deployment.variants if v.accelerator in TAINTS), None)


def pool_request_for(deployment: Deployment) -> PoolRequest | None:
    """The pool the spec asks for, without reading the model repository (for delete and read)."""
    target = deployment.target
    assert isinstance(target, AksTarget)
    accelerator = accelerator_of(deployment)
    return None if accelerator is None else pool_request(target, accelerator)
