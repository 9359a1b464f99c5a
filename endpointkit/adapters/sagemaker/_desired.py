"""What a spec asks of SageMaker, computed without a network call: validation, limitations, names and contents."""

from __future__ import annotations

import difflib
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from endpointkit._lazy import require
from endpointkit.adapters.base import Capability
from endpointkit.adapters.naming import content_name
from endpointkit.adapters.sagemaker._images import DEFAULT_TRITON_TAG, UnknownRegionError, triton_image
from endpointkit.catalog import sagemaker_instance
from endpointkit.errors import SpecError
from endpointkit.spec import Deployment, SageMakerTarget, Variant

__all__ = [
    "DEFAULT_MODEL_ENV",
    "MAX_STARTUP_SECONDS",
    "ModelPlan",
    "artifact_url",
    "async_inference_config",
    "config_content",
    "config_name",
    "hosting_instance_types",
    "limitations",
    "model_plan",
    "nearest_instance_types",
    "production_variants",
    "sagemaker_target",
    "validate",
]

logger = logging.getLogger("endpointkit.sagemaker")

DEFAULT_MODEL_ENV = "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"
# ProductionVariant ContainerStartupHealthCheckTimeoutInSeconds and ModelDataDownloadTimeoutInSeconds: 60-3600
# (botocore sagemaker service-2.json, shapes ProductionVariantContainerStartupHealthCheckTimeoutInSeconds and
# ProductionVariantModelDataDownloadTimeoutInSeconds).
MIN_STARTUP_SECONDS = 60
MAX_STARTUP_SECONDS = 3600
# CreateEndpoint: "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}" (service-2.json, shape EndpointName).
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_MAX_ENVIRONMENT = 100  # ContainerDefinition.Environment: max 100 entries in service-2.json
_MAX_ENVIRONMENT_TEXT = 1024


def sagemaker_target(deployment: Deployment) -> SageMakerTarget:
    """The deployment's target section, which must be a SageMaker one."""
    if not isinstance(deployment.target, SageMakerTarget):
        raise SpecError(
            f"target {deployment.target_name!r} is of kind {deployment.kind}, not sagemaker", field="targets"
        )
    return deployment.target


@functools.lru_cache(maxsize=1)
def hosting_instance_types() -> frozenset[str]:
    """Every value of ``ProductionVariantInstanceType`` in the installed botocore's SageMaker service model."""
    loaders = require("botocore.loaders", extra="sagemaker")
    model = loaders.create_loader().load_service_model("sagemaker", "service-2")
    return frozenset(model["shapes"]["ProductionVariantInstanceType"]["enum"])


def nearest_instance_types(instance_type: str, *, count: int = 3) -> list[str]:
    """Valid hosting instance types closest to ``instance_type``: spelling first, then the same family."""
    valid = sorted(hosting_instance_types())
    close = difflib.get_close_matches(instance_type, valid, n=count, cutoff=0.6)
    if len(close) < count:
        family = ".".join(instance_type.split(".")[:2]) + "."
        close += [name for name in valid if name.startswith(family) and name not in close][
            : count - len(close)
        ]
    if not close:
        close = difflib.get_close_matches(instance_type, valid, n=count, cutoff=0.0)
    return close


def _check_instance_type(instance_type: str, field: str) -> None:
    if instance_type in hosting_instance_types():
        return
    botocore = require("botocore", extra="sagemaker")
    nearest = ", ".join(nearest_instance_types(instance_type))
    raise SpecError(
        f"{field}: {instance_type!r} is not a SageMaker hosting instance type (botocore {botocore.__version__} "
        f"lists {len(hosting_instance_types())} in ProductionVariantInstanceType); nearest valid types: {nearest}",
        field=field,
    )


def _instance_field(deployment: Deployment, index: int, variant: Variant) -> str:
    override = deployment.target.variants.get(variant.name)
    if override is not None and override.instance_type is not None:
        return f"targets.{deployment.target_name}.variants.{variant.name}.instance_type"
    return f"variants[{index}].instance_type"


def validate(deployment: Deployment) -> None:
    """Check what SageMaker would refuse, before any call.

    Raises:
        SpecError: the endpoint name breaks SageMaker's rules, an instance type (or fallback) is not in botocore's
            list of hosting types, a fallback has another accelerator than the variant, the repository is not
            usable by SageMaker, or the environment is too large; the message names the field and the fix.
    """
    target = sagemaker_target(deployment)
    name = deployment.name
    if len(name) > 63 or not _ENDPOINT_NAME.match(name):
        raise SpecError(
            f"name: {name!r} is not a SageMaker endpoint name: at most 63 letters, digits and hyphens, starting "
            "and ending with a letter or digit",
            field="name",
        )
    if target.serverless is None:
        for index, variant in enumerate(deployment.variants):
            field = _instance_field(deployment, index, variant)
            if variant.instance_type is None:
                # spec.py lets an FPGA variant through without one so that plan's capability check explains
                # that SageMaker has no FPGA; anything that gets here without that check still needs a type.
                raise SpecError(
                    f"{field} is required for SageMaker real-time hosting, e.g. ml.g4dn.xlarge",
                    field=field,
                )
            _check_instance_type(variant.instance_type, field)
        for index, fallback in enumerate(target.instance_type_fallbacks):
            field = f"targets.{deployment.target_name}.instance_type_fallbacks[{index}]"
            _check_instance_type(fallback, field)
            _check_fallback_accelerator(deployment, fallback, field)
    repository = deployment.repository
    if "://" in repository and not (repository.startswith("s3://") and repository.endswith(".tar.gz")):
        raise SpecError(
            f"model.repository: SageMaker reads one s3://BUCKET/KEY/model.tar.gz archive (or endpointkit packages a "
            f"local repository folder for you); {repository!r} is neither",
            field="model.repository",
        )
    environment = deployment.spec.model.environment
    if len(environment) + 1 > _MAX_ENVIRONMENT:
        raise SpecError(
            f"model.environment has {len(environment)} variables; SageMaker allows {_MAX_ENVIRONMENT - 1} besides "
            f"{DEFAULT_MODEL_ENV}",
            field="model.environment",
        )
    for key, value in environment.items():
        if len(key) > _MAX_ENVIRONMENT_TEXT or len(value) > _MAX_ENVIRONMENT_TEXT:
            raise SpecError(
                f"model.environment.{key[:40]}: SageMaker limits names and values to {_MAX_ENVIRONMENT_TEXT} characters",
                field=f"model.environment.{key[:40]}",
            )


def _check_fallback_accelerator(deployment: Deployment, fallback: str, field: str) -> None:
    fallback_info = sagemaker_instance(fallback)
    for variant in deployment.variants:
        primary = sagemaker_instance(variant.instance_type or "")
        if (
            primary is not None
            and fallback_info is not None
            and primary.accelerator != fallback_info.accelerator
        ):
            raise SpecError(
                f"{field}: fallback {fallback} has accelerator {fallback_info.accelerator} but variant "
                f"{variant.name} runs on {variant.instance_type} ({primary.accelerator}): fallbacks replace every "
                "variant's instance type, so they must carry the same accelerator",
                field=field,
            )


def limitations(deployment: Deployment) -> dict[Capability, str]:
    """Capabilities SageMaker hosting cannot provide for ``deployment``, each with the reason and an alternative."""
    target = sagemaker_target(deployment)
    # Not listed, so supported: GPU and Inferentia instances, autoscaling, traffic split, serverless, async, and
    # KEY_AUTH, which is always on: every InvokeEndpoint is signed with SigV4 and authorised by IAM.
    missing: dict[Capability, str] = {
        Capability.FPGA: (
            "SageMaker hosting has no FPGA instances (no ml.f* type exists in ProductionVariantInstanceType; AWS "
            "FPGAs are EC2 F1/F2 only); use AWS Inferentia (ml.inf2.*, with a Neuron-enabled model.image) or the "
            "AKS target with an FPGA node pool"
        ),
        Capability.MULTI_MODEL: (
            "endpointkit deploys one Triton repository per SageMaker endpoint; multi-model endpoints "
            "(ContainerDefinition Mode MultiModel) are not implemented: put the models in one repository"
        ),
        Capability.GRPC: (
            "SageMaker endpoints are reached only through sagemaker-runtime's HTTPS InvokeEndpoint, which carries "
            "Triton's HTTP payloads, never its gRPC API; use transport: http (the default) on this target"
        ),
    }
    if target.serverless is not None:
        serverless_reason = "SageMaker serverless endpoints run on CPU only, without {what}"
        missing[Capability.GPU] = (
            serverless_reason.format(what="GPUs") + "; remove serverless to use GPU instances"
        )
        missing[Capability.INFERENTIA] = (
            serverless_reason.format(what="Inferentia") + "; remove serverless to use ml.inf2 instances"
        )
        missing[Capability.AUTOSCALING] = (
            "serverless endpoints scale by themselves up to serverless.max_concurrency; remove autoscaling "
            "or serverless"
        )
    elif not deployment.spec.model.image:
        neuron = [variant for variant in deployment.variants if _runs_on_neuron(variant)]
        if neuron:
            listing = ", ".join(f"{variant.name} ({variant.instance_type})" for variant in neuron)
            logger.warning(
                "AWS Neuron (Inferentia/Trainium) instances in variants %s: the stock sagemaker-tritonserver "
                "image has no Neuron runtime, so set model.image to a Neuron-enabled Triton image (see "
                "aws/amazon-sagemaker-examples sagemaker-triton/inferentia2/docker/Dockerfile)",
                listing,
            )
    return missing


def _runs_on_neuron(variant: Variant) -> bool:
    """The variant asks for Inferentia, or its instance type carries Neuron chips whatever it asks for."""
    info = sagemaker_instance(variant.instance_type or "")
    return variant.accelerator == "inferentia" or (info is not None and info.accelerator == "inferentia")


def artifact_url(target: SageMakerTarget, endpoint: str, content_hash: str) -> str:
    """``s3://BUCKET/PREFIX/NAME-HASH/model.tar.gz`` for a repository whose package has ``content_hash``."""
    prefix = target.prefix.strip("/")
    key = f"{endpoint}-{content_hash[:16]}/model.tar.gz"
    return f"s3://{target.bucket}/{prefix}/{key}" if prefix else f"s3://{target.bucket}/{key}"


def _uses_cpu_image(deployment: Deployment) -> bool:
    target = sagemaker_target(deployment)
    if target.serverless is not None:
        return True
    infos = [sagemaker_instance(variant.instance_type or "") for variant in deployment.variants]
    return all(info is not None and info.accelerator == "cpu" for info in infos)


@dataclass(frozen=True)
class ModelPlan:
    """The desired SageMaker Model: its content (hashed into its name) and what create needs besides."""

    name: str
    content: Mapping[str, Any]
    repository: str
    content_hash: str | None
    default_model: str | None


def model_plan(
    deployment: Deployment,
    *,
    content_hash: str | None,
    default_model: str | None,
    image_tag: str = DEFAULT_TRITON_TAG,
) -> ModelPlan:
    """The desired Model. ``content_hash`` is the local repository's package sha256 (None for an s3:// archive)."""
    target = sagemaker_target(deployment)
    spec = deployment.spec
    if spec.model.image:
        image = spec.model.image
    else:
        try:
            image = triton_image(target.region, image_tag, cpu=_uses_cpu_image(deployment))
        except UnknownRegionError as exc:
            raise SpecError(
                f"targets.{deployment.target_name}.region: {exc}; set model.image to a Triton image in your region",
                field=f"targets.{deployment.target_name}.region",
            ) from None
    url = deployment.repository if content_hash is None else artifact_url(target, spec.name, content_hash)
    environment = {DEFAULT_MODEL_ENV: default_model} if default_model else {}
    environment.update(spec.model.environment)  # the user's variables win, including the default model's
    vpc = (
        {"SecurityGroupIds": list(target.vpc.security_group_ids), "Subnets": list(target.vpc.subnets)}
        if target.vpc
        else None
    )
    content = {
        "image": image,
        "model_data_url": url,
        "environment": environment,
        "execution_role_arn": target.role_arn,
        "vpc": vpc,
    }
    return ModelPlan(
        content_name(spec.name, content), content, deployment.repository, content_hash, default_model
    )


def _startup_seconds(deployment: Deployment) -> int:
    return int(min(max(deployment.spec.timeouts.create, MIN_STARTUP_SECONDS), MAX_STARTUP_SECONDS))


def config_content(deployment: Deployment, model_name: str) -> dict[str, Any]:
    """The desired EndpointConfig's content; its hash names it.

    Autoscaling is part of it (SageMaker does not see it) so that changing it alone is a change the plan shows;
    instance_type_fallbacks are not: they only matter when a create runs out of capacity.
    """
    target = sagemaker_target(deployment)
    spec = deployment.spec
    variants: list[dict[str, Any]] = []
    for variant in deployment.variants:
        if target.serverless is not None:
            variants.append(
                {
                    "name": variant.name,
                    "weight": variant.weight,
                    "memory_mb": target.serverless.memory_mb,
                    "max_concurrency": target.serverless.max_concurrency,
                }
            )
        else:
            variants.append(
                {
                    "name": variant.name,
                    "instance_type": variant.instance_type,
                    "instance_count": variant.instance_count,
                    "weight": variant.weight,
                    "startup_timeout": _startup_seconds(deployment),
                }
            )
    async_config = target.async_inference.model_dump() if target.async_inference is not None else None
    autoscaling = (
        spec.autoscaling.model_dump() if spec.autoscaling is not None and target.serverless is None else None
    )
    mode = (
        "serverless" if target.serverless is not None else "async" if async_config is not None else "realtime"
    )
    return {
        "model": model_name,
        "mode": mode,
        "variants": variants,
        "async": async_config,
        "autoscaling": autoscaling,
    }


def config_name(deployment: Deployment, content: Mapping[str, Any]) -> str:
    """``NAME-HASH8`` of the config content."""
    return content_name(deployment.spec.name, content)


def production_variants(
    content: Mapping[str, Any], *, instance_type: str | None = None
) -> list[dict[str, Any]]:
    """CreateEndpointConfig ``ProductionVariants`` for a config content; ``instance_type`` replaces every type."""
    result: list[dict[str, Any]] = []
    for variant in content["variants"]:
        entry: dict[str, Any] = {
            "VariantName": variant["name"],
            "ModelName": content["model"],
            "InitialVariantWeight": float(variant["weight"]),
        }
        if "memory_mb" in variant:
            entry["ServerlessConfig"] = {
                "MemorySizeInMB": variant["memory_mb"],
                "MaxConcurrency": variant["max_concurrency"],
            }
        else:
            entry["InstanceType"] = instance_type or variant["instance_type"]
            entry["InitialInstanceCount"] = variant["instance_count"]
            entry["ContainerStartupHealthCheckTimeoutInSeconds"] = variant["startup_timeout"]
            entry["ModelDataDownloadTimeoutInSeconds"] = variant["startup_timeout"]
        result.append(entry)
    return result


def async_inference_config(content: Mapping[str, Any]) -> dict[str, Any] | None:
    """CreateEndpointConfig ``AsyncInferenceConfig`` for a config content, or None."""
    settings = content.get("async")
    if not settings:
        return None
    output: dict[str, Any] = {"S3OutputPath": settings["output_path"]}
    if settings.get("failure_path"):
        output["S3FailurePath"] = settings["failure_path"]
    config: dict[str, Any] = {"OutputConfig": output}
    if settings.get("max_concurrent_invocations_per_instance"):
        config["ClientConfig"] = {
            "MaxConcurrentInvocationsPerInstance": settings["max_concurrent_invocations_per_instance"]
        }
    return config
