"""The cluster and accelerator node pool under an endpoint: used as found, made when missing, released when no
endpointkit endpoint uses them any more, and only when endpointkit made them (ARM tag ``managed-by``).

GPU capacity is a separate User pool because "taints and VM sizes can only be set for node pools during node
pool creation" (https://learn.microsoft.com/azure/aks/use-nvidia-gpu). A pool whose VM size differs from the
spec is replaced only when endpointkit made it and nothing else runs on it; otherwise the change is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from endpointkit._wait import Progress, wait_for
from endpointkit.adapters.aks import render
from endpointkit.adapters.aks.arm import ArmClient, ClusterInfo, PoolInfo, PoolRequest
from endpointkit.adapters.aks.desired import GPU_RESOURCE, TAINTS, EndpointPlan, pool_request
from endpointkit.adapters.aks.errors import PollPolicy
from endpointkit.adapters.aks.kube import KubeClient, accelerator_nodes
from endpointkit.adapters.aks.rules import FPGA_REGIONS
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.errors import ConflictError, NotFoundError, ProviderError, UnsupportedCapabilityError
from endpointkit.spec import AksTarget, Deployment

__all__ = ["Infrastructure", "is_ours", "pool_request_for"]

logger = logging.getLogger("endpointkit.aks")
_BUSY_STATES = frozenset(
    {"creating", "updating", "upgrading", "scaling", "starting", "stopping", "migrating"}
)


def is_ours(tags: Mapping[str, str]) -> bool:
    """Whether endpointkit made an Azure resource (and may therefore delete it)."""
    return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


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
                tags=plan.infra_tags, timeout=_remaining(deadline), progress=progress
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

    # ---- pool ----------------------------------------------------------------------------------------
    def users(self, kube: KubeClient) -> dict[str, set[str]]:
        """Endpoints with Deployments or configs in the cluster, each with the node pools they use."""
        selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE}"
        users: dict[str, set[str]] = {}
        for kind in ("Deployment", "ConfigMap"):
            for item in kube.list(kind, None, label_selector=selector):
                labels = item["metadata"].get("labels", {})
                if labels.get(render.LABEL_ROLE) not in ("endpoint", "config"):
                    continue
                pools = users.setdefault(str(labels.get(render.LABEL_ENDPOINT, "?")), set())
                if render.LABEL_POOL in labels:
                    pools.add(str(labels[render.LABEL_POOL]))
        return users

    def _pool_users(self, pool: str, *, besides: str) -> list[str]:
        users = self.users(self._kube())
        return sorted(name for name, pools in users.items() if pool in pools and name != besides)

    def replacement_reason(self, deployment: Deployment, wanted: PoolRequest | None) -> str | None:
        """Why the endpoint must be replaced (an endpointkit pool of another VM size), or None."""
        if wanted is None:
            return None
        pool = self.arm.pool(wanted.name)
        if pool is None or pool.vm_size.lower() == wanted.vm_size.lower() or not is_ours(pool.tags):
            return None
        if self._pool_users(pool.name, besides=deployment.name):
            return None  # refused at update time, with the names of the endpoints that use it
        return (
            f"replace required: node pool {pool.name} runs {pool.vm_size}, the spec asks for "
            f"{wanted.vm_size}, and a pool's VM size cannot change in place: the pool and the endpoint "
            "on it are deleted and made again"
        )

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
        if plan.accelerator == "fpga" and cluster.location.lower() not in FPGA_REGIONS:
            raise UnsupportedCapabilityError(
                f"cluster {cluster.name} is in {cluster.location}, where NP-series FPGA VMs are not offered; "
                f"regions that offer them: {', '.join(sorted(FPGA_REGIONS))}",
                missing={"fpga": f"not offered in {cluster.location}"},
            )
        pool = self.arm.pool(request.name)
        if pool is not None and pool.vm_size.lower() != request.vm_size.lower():
            users = self._pool_users(pool.name, besides=deployment.name)
            if not is_ours(pool.tags) or users or not allow_replace:
                who = (
                    f"endpoints {', '.join(users)} run on it"
                    if users
                    else "endpointkit did not create it"
                    if not is_ours(pool.tags)
                    else "this is an in-place update"
                )
                raise ConflictError(
                    f"node pool {pool.name} runs {pool.vm_size} but the spec asks for {request.vm_size}; a pool's VM "
                    f"size cannot change in place and it will not be replaced because {who}: set "
                    f"node_pool.vm_size: {pool.vm_size}, or choose another node_pool.name",
                    provider="azure",
                    operation=f"update node pool {pool.name}",
                    code="PropertyChangeNotAllowed",
                )
            logger.warning("replacing node pool %s: %s -> %s", pool.name, pool.vm_size, request.vm_size)
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
        kube.apply(render.device_plugin(pool.name))
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
        """Delete our pool when its VM size differs from the spec and nothing else uses it (a replace)."""
        if wanted is None or self.replacement_reason(deployment, wanted) is None:
            return
        self._delete_device_plugin(wanted.name)
        self.arm.delete_pool(wanted.name, timeout=timeout, progress=progress)

    def _delete_device_plugin(self, pool: str) -> None:
        self._kube().delete("DaemonSet", render.device_plugin(pool)["metadata"]["name"], "kube-system")

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


def pool_request_for(deployment: Deployment) -> PoolRequest | None:
    """The pool the spec asks for, without reading the model repository (for delete and read)."""
    target = deployment.target
    assert isinstance(target, AksTarget)
    accelerator = next((v.accelerator for v in deployment.variants if v.accelerator in TAINTS), None)
    return None if accelerator is None else pool_request(target, accelerator)
