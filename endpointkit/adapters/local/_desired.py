"""What a spec asks of the local target, computed without starting anything: limitations, names and contents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from endpointkit.adapters.base import Capability, DesiredState, Resource
from endpointkit.adapters.naming import content_name, managed_tags
from endpointkit.errors import SpecError
from endpointkit.modelrepo import is_remote_repository, load_repository
from endpointkit.spec import Deployment, LocalTarget

__all__ = ["SAGEMAKER_ADDRESS", "desired_state", "limitations", "local_target"]

SAGEMAKER_ADDRESS = "127.0.0.1"
"""Where the SageMaker protocol listens (``_sagemaker_front``): loopback, like everything else."""


def local_target(deployment: Deployment) -> LocalTarget:
    """The deployment's target section.

    Raises:
        SpecError: the deployment is for another kind of target.
    """
    if not isinstance(deployment.target, LocalTarget):
        raise SpecError(f"target {deployment.target_name!r} is {deployment.kind}, not local")
    return deployment.target


def limitations(deployment: Deployment, *, gpu_present: Callable[[], bool]) -> dict[Capability, str]:
    """What a local endpoint cannot do, with the reason and an alternative. Calls ``gpu_present`` only when a
    variant asks for a GPU."""
    missing = {
        Capability.FPGA: "FPGAs are served through Azure's FPGA device plugin, not a local Triton; "
        "use an aks target with an NP-series node pool (e.g. Standard_NP10s)",
        Capability.INFERENTIA: "AWS Inferentia chips exist only on AWS; use a sagemaker target with an "
        "inf2 instance type (e.g. ml.inf2.xlarge)",
        Capability.AUTOSCALING: "a local endpoint is one tritonserver process per variant and does not "
        "scale; remove autoscaling or deploy to sagemaker or aks",
        Capability.SERVERLESS: "serverless hosting is a SageMaker feature; use a sagemaker target",
        Capability.ASYNC_INFERENCE: "asynchronous inference is a SageMaker feature; use a sagemaker target",
    }
    if any(variant.accelerator == "gpu" for variant in deployment.variants) and not gpu_present():
        missing[Capability.GPU] = (
            "no GPU on this machine (nvidia-smi -L lists none); use accelerator: cpu for the local target "
            "(a per-target variant override), or deploy to a sagemaker or aks target with GPUs"
        )
    return missing


def desired_state(deployment: Deployment) -> DesiredState:
    """Model, endpoint config and endpoint for ``deployment``. Reads and hashes the repository; no process.

    Raises:
        SpecError: the repository is in cloud storage, or cannot be read as a model repository.
    """
    target = local_target(deployment)
    spec = deployment.spec
    if is_remote_repository(deployment.repository):
        raise SpecError(
            f"model.repository {deployment.repository} is in cloud storage, which the local target does not "
            "read: download it to a folder and point model.repository at that folder, or deploy to a "
            "sagemaker or aks target",
            field="model.repository",
        )
    repository = load_repository(deployment.repository)
    default_model = repository.default_model(spec.model.default_model)
    sha256 = repository.content_hash()
    model = Resource(
        "model",
        content_name(spec.name, {"sha256": sha256}),
        {"sha256": sha256, "source": str(repository.path)},
    )
    launch = {
        "model": model.name,
        "model_sha256": sha256,
        "default_model": default_model,
        "protocol": "sagemaker" if target.sagemaker_protocol else "triton",
        "api_key": target.api_key,
        "environment": dict(spec.model.environment),
        "tritonserver": _binary_setting(target.tritonserver, spec.base_dir),
        "variants": [
            {
                "name": variant.name,
                "weight": variant.weight,
                "accelerator": variant.accelerator,
                "instance_type": variant.instance_type,
                "instance_count": variant.instance_count,
                "gpus": variant.gpus_per_replica,
            }
            for variant in deployment.variants
        ],
    }
    if target.sagemaker_protocol:
        # Part of the config, so an endpoint applied when Triton's own listener served it on every interface
        # moves to the loopback one at its next apply.
        launch["sagemaker_address"] = SAGEMAKER_ADDRESS
    config = Resource("endpoint_config", content_name(spec.name, launch), launch)
    endpoint = Resource("endpoint", spec.name, {"config": config.name})
    return DesiredState(spec.name, deployment.spec_hash(), model, config, endpoint, managed_tags(deployment))


def _binary_setting(value: str | None, base_dir: Path) -> str | None:
    """The target's ``tritonserver`` setting, a relative path resolved against the spec file's folder."""
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())
