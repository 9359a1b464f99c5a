"""What an AKS target can serve, checked in ``plan`` before any call: capabilities and spec rules.

Pure functions of the spec (a certificate the spec names in files is read); no Azure or Kubernetes import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from endpointkit.adapters.aks._gateway_classes import KNOWN_CLASSES, gateway_class_info
from endpointkit.adapters.aks._secrets import spec_pair
from endpointkit.adapters.base import Capability
from endpointkit.catalog import azure_vm_size
from endpointkit.errors import SpecError
from endpointkit.spec import AksTarget, AksTls, Deployment, Variant

__all__ = ["FPGA_REGIONS", "NP_RETIREMENT", "PoolCapacity", "check_spec", "limitations", "pool_capacity"]

logger = logging.getLogger("endpointkit.aks")

# NP-series (the only Azure FPGA VMs) regions and retirement, from MicrosoftDocs/azure-compute-docs
# articles/virtual-machines/sizes/fpga-accelerated/np-series.md ("NP VMs are available in East US, West US2,
# SouthCentral US, West Europe, SouthEast Asia, Japan East, and Canada Central"; retirement May 31, 2027).
FPGA_REGIONS = frozenset(
    {"eastus", "westus2", "southcentralus", "westeurope", "southeastasia", "japaneast", "canadacentral"}
)
NP_RETIREMENT = "2027-05-31"


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    """The accelerator pool as the spec describes it: accelerator kind, per VM and at most in total."""

    accelerator: str
    per_vm: int
    max_vms: int

    @property
    def total(self) -> int:
        return self.per_vm * self.max_vms


def pool_capacity(target: AksTarget) -> PoolCapacity:
    """Accelerators the pool can hold at most: ``count`` (or ``max_count`` when it autoscales) x per VM."""
    info = azure_vm_size(target.node_pool.vm_size)
    pool = target.node_pool
    vms = pool.max_count if pool.max_count is not None else pool.count
    return PoolCapacity(info.accelerator, info.accelerators, vms)


def accelerators_per_replica(variant: Variant) -> int:
    """Devices one replica asks for: ``gpus`` for GPU variants (default 1); for FPGA ``gpus`` counts cards."""
    return variant.devices_per_replica


def limitations(deployment: Deployment) -> dict[Capability, str]:
    """Capabilities this AKS target cannot give ``deployment``, each with the reason and an alternative."""
    target = deployment.target
    assert isinstance(target, AksTarget)
    missing: dict[Capability, str] = {
        Capability.INFERENTIA: "AKS has no AWS Inferentia chips; use a SageMaker target with an ml.inf2 instance "
        "type (e.g. ml.inf2.xlarge)",
        Capability.AUTOSCALING: "the AKS target does not scale pods on invocations per instance (that needs a "
        "Prometheus adapter for Triton's metrics); scale the node pool with node_pool.min_count/max_count and "
        "set instance_count, or use a SageMaker target",
        Capability.SERVERLESS: "AKS has no serverless hosting; use a SageMaker target",
        Capability.ASYNC_INFERENCE: "AKS has no asynchronous inference queue; use a SageMaker target",
        Capability.MULTI_MODEL: "multi-model endpoints are a SageMaker feature; put the models in one repository",
    }
    location = (target.location or "").lower()
    if location and location not in FPGA_REGIONS:
        missing[Capability.FPGA] = (
            f"NP-series FPGA VMs are not offered in {target.location}; regions that offer them: "
            f"{', '.join(sorted(FPGA_REGIONS))} (or use a GPU variant)"
        )
    return missing


def check_spec(deployment: Deployment) -> None:
    """Spec rules an AKS target adds; raises SpecError naming the field and the fix.

    Checked: the repository is a local folder (with ``storage_account``) or ``as://`` (with
    ``storage_secret``); GPU and FPGA variants match the pool's accelerator; one replica fits one VM; all
    replicas fit the pool (pods never share a GPU); FPGA names its device-plugin resource; the Gateway class is
    one endpointkit knows (unless ``gateway`` names an existing Gateway); a certificate the spec brings in files
    is usable for ``host``; a Key Vault certificate meets a class that can read it. Logs the NP-series
    retirement for FPGA pools.
    """
    target = deployment.target
    assert isinstance(target, AksTarget)
    prefix = f"targets.{deployment.target_name}"
    _check_repository(deployment.spec.model.repository, target, prefix)
    capacity = pool_capacity(target)
    kinds = {v.accelerator for v in deployment.variants if v.accelerator in ("gpu", "fpga")}
    if len(kinds) > 1:
        raise SpecError(
            f"variants use both GPU and FPGA, but {prefix}.node_pool is one pool of {target.node_pool.vm_size}: "
            "deploy them as two specs, or use one accelerator",
            field=f"{prefix}.node_pool.vm_size",
        )
    needed = sum(
        _accelerators_per_replica_checked(index, variant, target, prefix, capacity) * variant.instance_count
        for index, variant in enumerate(deployment.variants)
        if variant.accelerator in ("gpu", "fpga")
    )
    _check_pool_holds(needed, target, prefix, capacity)
    if "fpga" in kinds:
        _check_fpga(target, prefix)
    _check_front(deployment, target, prefix)


def _check_front(deployment: Deployment, target: AksTarget, prefix: str) -> None:
    """The Gateway class, and the certificate the ``tls`` section names (files read and checked)."""
    info = gateway_class_info(target.gateway_class)
    if target.gateway is None and info is None:
        known = ", ".join(sorted(KNOWN_CLASSES))
        raise SpecError(
            f"{prefix}.gateway_class {target.gateway_class!r} is not a Gateway class endpointkit knows on AKS "
            f"({known}); use one of those, or create a Gateway of your class yourself and name it in "
            f"{prefix}.gateway (NAME or NAMESPACE/NAME)",
            field=f"{prefix}.gateway_class",
        )
    if not isinstance(target.tls, AksTls):
        return
    if target.gateway is not None:
        raise SpecError(
            f"{prefix}.tls sets the certificate of a Gateway endpointkit makes, but {prefix}.gateway names an "
            "existing Gateway, whose listeners keep their own certificates: drop one of the two",
            field=f"{prefix}.tls",
        )
    if target.tls.from_files:
        assert target.host is not None  # the spec requires host with cert_file
        spec_pair(deployment, target.host)
        return
    assert info is not None
    if info.key_vault is not None:
        raise SpecError(
            f"{prefix}.tls.key_vault_certificate: Gateway class {info.name} cannot serve it: {info.key_vault}",
            field=f"{prefix}.tls.key_vault_certificate",
        )


def _check_repository(repository: str, target: AksTarget, prefix: str) -> None:
    """A local folder with a storage account to upload it to, or ``as://`` with the Secret holding its key."""
    scheme = repository.split("://", 1)[0].lower() if "://" in repository else None
    if scheme not in (None, "as"):
        raise SpecError(
            f"model.repository {repository!r}: an AKS target reads models from Azure Blob storage; use a local "
            "folder (uploaded for you) or as://ACCOUNT/CONTAINER/PATH",
            field="model.repository",
        )
    if scheme is None and target.storage_account is None:
        raise SpecError(
            f"{prefix}.storage_account is required to upload the local repository {repository!r} to Blob "
            "storage, e.g. storage_account: mymodels",
            field=f"{prefix}.storage_account",
        )
    if scheme == "as" and target.storage_secret is None:
        raise SpecError(
            f"{prefix}.storage_secret is required for an as:// repository: name a Secret in namespace "
            f"{target.namespace} whose key AZURE_STORAGE_KEY holds the storage account key",
            field=f"{prefix}.storage_secret",
        )


def _accelerators_per_replica_checked(
    index: int, variant: Variant, target: AksTarget, prefix: str, capacity: PoolCapacity
) -> int:
    """Devices one replica of an accelerator variant asks for, once its accelerator and count fit a pool VM."""
    field = f"variants[{index}]"
    if capacity.accelerator != variant.accelerator:
        example = "Standard_NC4as_T4_v3" if variant.accelerator == "gpu" else "Standard_NP10s"
        raise SpecError(
            f"{field} ({variant.name}) needs a {variant.accelerator.upper()} VM size in {prefix}.node_pool, "
            f"but {target.node_pool.vm_size} has {capacity.accelerator if capacity.per_vm else 'none'}: "
            f"pick e.g. {example}",
            field=f"{prefix}.node_pool.vm_size",
        )
    per_replica = accelerators_per_replica(variant)
    if per_replica < 1:
        raise SpecError(
            f"{field}.gpus must be at least 1 for a {variant.accelerator} variant", field=f"{field}.gpus"
        )
    if per_replica > capacity.per_vm:
        raise SpecError(
            f"{field} ({variant.name}) asks for {per_replica} {variant.accelerator.upper()}s per replica but a "
            f"{target.node_pool.vm_size} VM has {capacity.per_vm}: a pod runs on one VM; lower gpus or pick a "
            "larger size",
            field=f"{field}.gpus",
        )
    return per_replica


def _check_pool_holds(needed: int, target: AksTarget, prefix: str, capacity: PoolCapacity) -> None:
    """Every replica's accelerators fit the pool at its largest (pods never share a GPU)."""
    if needed <= capacity.total:
        return
    pool = target.node_pool
    bound = f"max_count {pool.max_count}" if pool.max_count is not None else f"count {pool.count}"
    raise SpecError(
        f"the variants need {needed} accelerators (instance_count x gpus, pods never share a GPU) but "
        f"{prefix}.node_pool holds at most {capacity.total} ({bound} x {capacity.per_vm} per "
        f"{pool.vm_size}): raise the pool's {bound.split()[0]} or lower instance_count",
        field=f"{prefix}.node_pool",
    )


def _check_fpga(target: AksTarget, prefix: str) -> None:
    """FPGA variants name the device plugin's resource; the NP-series retirement is logged."""
    if not target.fpga.resource_name:
        raise SpecError(
            f"{prefix}.fpga.resource_name is required for FPGA variants: the extended resource the Xilinx "
            "device plugin advertises, e.g. xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0",
            field=f"{prefix}.fpga.resource_name",
        )
    logger.warning(
        "NP-series FPGA VMs (%s) retire on %s; after that date they are deallocated. Plan a move to a GPU "
        "size (see MicrosoftDocs np-series.md, migration guidance)",
        target.node_pool.vm_size,
        NP_RETIREMENT,
    )
