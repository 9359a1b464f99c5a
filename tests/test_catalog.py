"""The instance catalog: every accelerated SageMaker hosting type and the current Azure GPU sizes are classified."""

from __future__ import annotations

import pytest

from endpointkit.adapters.sagemaker import hosting_instance_types
from endpointkit.catalog import (
    SAGEMAKER_UNUSABLE_ACCELERATORS,
    azure_accelerated_sizes,
    azure_vm_size,
    sagemaker_instance,
)

# General-purpose, compute- and memory-optimised hosting families: CPU only.
_CPU_FAMILY_PREFIXES = ("c", "m", "r", "t")


def _family(instance_type: str) -> str:
    return instance_type.split(".")[1]


def test_every_gpu_and_neuron_hosting_type_in_botocore_is_accelerated() -> None:
    """Walks botocore's own list, so a new ml.g*/ml.p*/ml.inf*/ml.trn* family fails here, not in production."""
    unclassified = []
    for instance_type in sorted(hosting_instance_types()):
        info = sagemaker_instance(instance_type)
        assert info is not None, instance_type
        family = _family(instance_type)
        expected = (
            "gpu"
            if family.startswith(("g", "p"))
            else "inferentia"
            if family.startswith(("inf", "trn"))
            else None
        )
        if expected is not None and (info.accelerator != expected or info.accelerators < 1):
            unclassified.append(f"{instance_type}: {info.accelerator} x {info.accelerators}")
    assert unclassified == []


def test_every_other_hosting_family_is_a_known_cpu_family_or_listed_as_unusable() -> None:
    accelerated: set[str] = set()
    others: set[str] = set()
    for instance_type in hosting_instance_types():
        info = sagemaker_instance(instance_type)
        assert info is not None, instance_type
        (accelerated if info.accelerator != "cpu" else others).add(_family(instance_type))
    leftover = others - accelerated - set(SAGEMAKER_UNUSABLE_ACCELERATORS)
    assert sorted(family for family in leftover if not family.startswith(_CPU_FAMILY_PREFIXES)) == []


@pytest.mark.parametrize(
    ("instance_type", "accelerator", "count"),
    [
        ("ml.p5en.48xlarge", "gpu", 8),
        ("ml.p5.4xlarge", "gpu", 1),
        ("ml.p6-b200.48xlarge", "gpu", 8),
        ("ml.p6e-gb200.36xlarge", "gpu", 4),
        ("ml.g7e.12xlarge", "gpu", 2),
        ("ml.inf2.48xlarge", "inferentia", 12),
        ("ml.trn1.32xlarge", "inferentia", 16),
        ("ml.trn2.48xlarge", "inferentia", 16),
        ("ml.dl1.24xlarge", "cpu", 0),
        ("ml.m5.xlarge", "cpu", 0),
    ],
)
def test_sagemaker_types_carry_their_accelerators(instance_type: str, accelerator: str, count: int) -> None:
    info = sagemaker_instance(instance_type)
    assert info is not None
    assert (info.accelerator, info.accelerators) == (accelerator, count)


@pytest.mark.parametrize(
    ("vm_size", "gpus"),
    [
        ("Standard_NC40ads_H100_v5", 1),
        ("Standard_NC80adis_H100_v5", 2),
        ("Standard_NCC40ads_H100_v5", 1),
        ("Standard_ND96isr_H100_v5", 8),
        ("Standard_ND96isr_H200_v5", 8),
        ("Standard_NV36adms_A10_v5", 1),
        ("standard_nv72ads_a10_v5", 2),
    ],
)
def test_current_azure_gpu_sizes_are_known(vm_size: str, gpus: int) -> None:
    info = azure_vm_size(vm_size)
    assert (info.accelerator, info.accelerators) == ("gpu", gpus)


def test_azure_accelerated_sizes_lists_gpu_and_fpga_sizes_only() -> None:
    sizes = azure_accelerated_sizes()
    assert {info.accelerator for info in sizes} == {"gpu", "fpga"}
    assert all(info.accelerators >= 1 for info in sizes)
    assert azure_vm_size("Standard_D4s_v5").accelerator == "cpu"
