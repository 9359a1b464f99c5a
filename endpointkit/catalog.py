"""What endpointkit knows about instance types and VM sizes: accelerator kind and count per instance.

Used at spec load (a GPU variant on a CPU-only type is an error), in plan (pods never share a GPU), to pick the
SageMaker image (CPU or GPU) and in cost estimates (nodes a variant needs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SAGEMAKER_UNUSABLE_ACCELERATORS",
    "Accelerator",
    "InstanceInfo",
    "azure_accelerated_sizes",
    "azure_vm_size",
    "sagemaker_instance",
]

Accelerator = Literal["cpu", "gpu", "fpga", "inferentia"]

# SageMaker hosting instance families with NVIDIA GPUs, and GPUs per size. The family list follows botocore's
# ProductionVariantInstanceType enum (sagemaker service-2.json); tests/test_catalog.py walks that enum so that a
# new ml.g*/ml.p* family fails a test instead of silently becoming "CPU". GPU counts: AWS's instance type pages
# https://aws.amazon.com/ec2/instance-types/ (accelerated computing: G4dn, G5, G6, G6e, G7e, P2, P3, P4, P5,
# P5e/P5en, P6) and https://aws.amazon.com/sagemaker/pricing/ (real-time inference instance table).
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
    # NVIDIA RTX PRO 6000 Blackwell Server Edition.
    "g7e": {"2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 2, "24xlarge": 4, "48xlarge": 8},
    # botocore lists ml.g7.* with the g7e sizes, but no AWS page at hand gives its GPUs per size: each size is
    # counted as at least one GPU (the default below) until one does.
    "g7": {},
    "p2": {"xlarge": 1, "8xlarge": 8, "16xlarge": 16},
    "p3": {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8},
    "p4d": {"24xlarge": 8},
    "p4de": {"24xlarge": 8},
    "p5": {"4xlarge": 1, "48xlarge": 8},
    "p5e": {"48xlarge": 8},
    "p5en": {"48xlarge": 8},
    "p6-b200": {"48xlarge": 8},
    "p6-b300": {"48xlarge": 8},
    # One p6e-gb200.36xlarge is a quarter of a GB200 NVL72 UltraServer: 4 Blackwell GPUs.
    "p6e-gb200": {"36xlarge": 4},
}
# AWS Neuron devices (Inferentia and Trainium chips) per size. Both run models through the Neuron SDK, which the
# stock sagemaker-tritonserver images lack, so both are "inferentia" here. Sources:
# https://aws.amazon.com/ec2/instance-types/inf1/, .../inf2/, .../trn1/, .../trn2/.
_SAGEMAKER_NEURON_FAMILIES: dict[str, dict[str, int]] = {
    "inf1": {"xlarge": 1, "2xlarge": 1, "6xlarge": 4, "24xlarge": 16},
    "inf2": {"xlarge": 1, "8xlarge": 1, "24xlarge": 6, "48xlarge": 12},
    "trn1": {"2xlarge": 1, "32xlarge": 16},
    "trn1n": {"32xlarge": 16},
    "trn2": {"48xlarge": 16},
}
# Hosting families whose accelerator no Triton image endpointkit deploys can use, so for endpointkit they are CPU
# hosts (the CPU image runs on them). Listed so that the catalog test can tell them from an unclassified family.
SAGEMAKER_UNUSABLE_ACCELERATORS: dict[str, str] = {"dl1": "Habana Gaudi"}


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance type or VM size: its accelerator kind and how many accelerators one instance has."""

    name: str
    accelerator: Accelerator
    accelerators: int


def sagemaker_instance(instance_type: str) -> InstanceInfo | None:
    """What ``ml.FAMILY.SIZE`` carries, or None when the name is not of that shape.

    Families the catalog does not list are taken as CPU-only; a size the catalog does not list in a known
    accelerated family counts one accelerator.
    """
    match = re.fullmatch(r"ml\.([a-z0-9-]+)\.([a-z0-9]+)", instance_type)
    if match is None:
        return None
    family, size = match.groups()
    if family in _SAGEMAKER_GPU_FAMILIES:
        return InstanceInfo(instance_type, "gpu", _SAGEMAKER_GPU_FAMILIES[family].get(size, 1))
    if family in _SAGEMAKER_NEURON_FAMILIES:
        return InstanceInfo(instance_type, "inferentia", _SAGEMAKER_NEURON_FAMILIES[family].get(size, 1))
    return InstanceInfo(instance_type, "cpu", 0)


# Azure GPU and FPGA VM sizes: accelerators per VM, as the device plugin advertises them to Kubernetes. Sources:
# https://learn.microsoft.com/azure/virtual-machines/sizes/overview (GPU accelerated / FPGA accelerated families)
# and its series pages: ncast4v3-series, ncv3-series, nc-a100-v4-series, nd-a100-v4-series, ndm-a100-v4-series,
# nd-h100-v5-series, nd-h200-v5-series, ncads-h100-v5-series (NC40ads 1, NC80adis 2), ncc-h100-v5-series
# (confidential, NCC40ads 1), nva10v5-series, np-series; cross-checked against Microsoft's own AKS size table,
# microsoft/aspire src/Aspire.Hosting.Azure.Kubernetes/AksNodeVmSizes.cs.
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
    "standard_nc40ads_h100_v5": ("gpu", 1),
    "standard_nc80adis_h100_v5": ("gpu", 2),
    "standard_ncc40ads_h100_v5": ("gpu", 1),
    "standard_nd96asr_v4": ("gpu", 8),
    "standard_nd96amsr_a100_v4": ("gpu", 8),
    "standard_nd96isr_h100_v5": ("gpu", 8),
    "standard_nd96isr_h200_v5": ("gpu", 8),
    # NV6/NV12/NV18ads_A10_v5 carry a sixth, a third and half of one A10 (a vGPU partition): still one device
    # to Kubernetes, which is what a pod's nvidia.com/gpu request counts.
    "standard_nv6ads_a10_v5": ("gpu", 1),
    "standard_nv12ads_a10_v5": ("gpu", 1),
    "standard_nv18ads_a10_v5": ("gpu", 1),
    "standard_nv36ads_a10_v5": ("gpu", 1),
    "standard_nv36adms_a10_v5": ("gpu", 1),
    "standard_nv72ads_a10_v5": ("gpu", 2),
    "standard_np10s": ("fpga", 1),
    "standard_np20s": ("fpga", 2),
    "standard_np40s": ("fpga", 4),
}


def azure_vm_size(vm_size: str) -> InstanceInfo:
    """What an Azure VM size carries; sizes not in the table are taken as CPU-only."""
    accelerator, count = _AZURE_ACCELERATED.get(vm_size.lower(), ("cpu", 0))
    return InstanceInfo(vm_size, accelerator, count)


def azure_accelerated_sizes() -> tuple[InstanceInfo, ...]:
    """Every GPU or FPGA VM size the catalog knows (names in lower case), for checks that must cover them all."""
    return tuple(InstanceInfo(name, kind, count) for name, (kind, count) in _AZURE_ACCELERATED.items())
