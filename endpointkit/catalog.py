"""What endpointkit knows about instance types and VM sizes: accelerator kind and count per instance.

Used at spec load (a GPU variant on a CPU-only type is an error) and in plan (pods never share a GPU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Accelerator", "InstanceInfo", "azure_vm_size", "sagemaker_instance"]

Accelerator = Literal["cpu", "gpu", "fpga", "inferentia"]

# SageMaker hosting instance families with accelerators, and GPUs per size where the family varies.
# Source: https://aws.amazon.com/sagemaker/pricing/ (real-time inference instance table) and
# https://docs.aws.amazon.com/sagemaker/latest/dg/instance-types-az.html.
_SAGEMAKER_GPU_FAMILIES: dict[str, dict[str, int]] = {
    "g4dn": {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4, "16xlarge": 1},
    "g5": {
        "xlarge": 1,
        "2xlarge": 1,
        "4xlarge": 1,
        "8xlarge": 1,
        "12xlarge": 4,
        "16xlarge": 1,
        "24xlarge": 4,
        "48xlarge": 8,
    },
    "g6": {
        "xlarge": 1,
        "2xlarge": 1,
        "4xlarge": 1,
        "8xlarge": 1,
        "12xlarge": 4,
        "16xlarge": 1,
        "24xlarge": 4,
        "48xlarge": 8,
    },
    "g6e": {
        "xlarge": 1,
        "2xlarge": 1,
        "4xlarge": 1,
        "8xlarge": 1,
        "12xlarge": 4,
        "16xlarge": 1,
        "24xlarge": 4,
        "48xlarge": 8,
    },
    "p2": {"xlarge": 1, "8xlarge": 8, "16xlarge": 16},
    "p3": {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8},
    "p4d": {"24xlarge": 8},
    "p4de": {"24xlarge": 8},
    "p5": {"48xlarge": 8},
    "p5e": {"48xlarge": 8},
}
_SAGEMAKER_INFERENTIA_FAMILIES = {"inf1", "inf2"}


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance type or VM size: its accelerator kind and how many accelerators one instance has."""

    name: str
    accelerator: Accelerator
    accelerators: int


def sagemaker_instance(instance_type: str) -> InstanceInfo | None:
    """What ``ml.FAMILY.SIZE`` carries, or None when the name is not of that shape."""
    match = re.fullmatch(r"ml\.([a-z0-9-]+)\.([a-z0-9]+)", instance_type)
    if match is None:
        return None
    family, size = match.groups()
    if family in _SAGEMAKER_GPU_FAMILIES:
        return InstanceInfo(instance_type, "gpu", _SAGEMAKER_GPU_FAMILIES[family].get(size, 1))
    if family in _SAGEMAKER_INFERENTIA_FAMILIES:
        return InstanceInfo(instance_type, "inferentia", 1)
    return InstanceInfo(instance_type, "cpu", 0)


# Azure GPU and FPGA VM sizes: accelerators per VM. Source: Azure VM size docs,
# https://learn.microsoft.com/azure/virtual-machines/sizes/overview (GPU accelerated / FPGA accelerated families).
_AZURE_ACCELERATED: dict[str, tuple[Accelerator, int]] = {
    "standard_nc4as_t4_v3": ("gpu", 1),
    "standard_nc8as_t4_v3": ("gpu", 1),
    "standard_nc16as_t4_v3": ("gpu", 1),
    "standard_nc64as_t4_v3": ("gpu", 4),
    "standard_nc6s_v3": ("gpu", 1),
    "standard_nc12s_v3": ("gpu", 2),
    "standard_nc24s_v3": ("gpu", 4),
    "standard_nc24rs_v3": ("gpu", 4),
    "standard_nc24ads_a100_v4": ("gpu", 1),
    "standard_nc48ads_a100_v4": ("gpu", 2),
    "standard_nc96ads_a100_v4": ("gpu", 4),
    "standard_nd96asr_v4": ("gpu", 8),
    "standard_nd96amsr_a100_v4": ("gpu", 8),
    "standard_nd96isr_h100_v5": ("gpu", 8),
    "standard_nv6ads_a10_v5": ("gpu", 1),
    "standard_nv12ads_a10_v5": ("gpu", 1),
    "standard_nv18ads_a10_v5": ("gpu", 1),
    "standard_nv36ads_a10_v5": ("gpu", 1),
    "standard_nv72ads_a10_v5": ("gpu", 2),
    "standard_np10s": ("fpga", 1),
    "standard_np20s": ("fpga", 2),
    "standard_np40s": ("fpga", 4),
}


def azure_vm_size(vm_size: str) -> InstanceInfo:
    """What an Azure VM size carries; sizes not in the table are taken as CPU-only."""
    accelerator, count = _AZURE_ACCELERATED.get(vm_size.lower(), ("cpu", 0))
    return InstanceInfo(vm_size, accelerator, count)
