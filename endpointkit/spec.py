"""The endpoint spec: pydantic models, YAML loading, and errors that name the field, the value and the fix."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from endpointkit._spec_errors import line_index, spec_error, suggest
from endpointkit.catalog import Accelerator, azure_vm_size, sagemaker_instance
from endpointkit.errors import SpecError
from endpointkit.modelrepo import is_remote_repository, load_repository

__all__ = [
    "AksNodePool",
    "AksTarget",
    "Autoscaling",
    "Deployment",
    "LocalTarget",
    "ModelSection",
    "SageMakerTarget",
    "Spec",
    "Target",
    "Timeouts",
    "Variant",
    "VariantOverride",
    "load_spec",
    "parse_duration",
    "spec_from_dict",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"8h"`` or ``"1d"``.

    Raises:
        ValueError: the value is not a duration (pydantic turns it into a field error).
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m or 8h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration: write a number with a unit, such as 90s, 30m, 8h or 1d"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive, such as 90s, 30m or 8h")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
_NAME = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
_QUANTITY = r"^\d+(?:\.\d+)?(?:Ki|Mi|Gi|Ti|k|M|G|T)?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ModelSection(_Model):
    """Where the Triton model repository is and how the server that serves it is configured."""

    repository: str = Field(
        description="a Triton model repository folder, or s3://… / as://… already uploaded"
    )
    default_model: str | None = None
    image: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)

    @field_validator("environment", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}
        return value


class Variant(_Model):
    """A production variant: a SageMaker production variant, an AKS Deployment, or a local Triton process."""

    name: str = Field(pattern=_NAME, max_length=63)
    accelerator: Accelerator = "cpu"
    instance_type: str | None = None
    instance_count: int = Field(default=1, ge=1, le=100)
    weight: float = Field(default=1.0, ge=0)
    cpu: float | None = Field(default=None, gt=0)
    memory: str | None = Field(default=None, pattern=_QUANTITY)
    gpus: int | None = Field(default=None, ge=0)

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica needs: ``gpus``, or 1 for a GPU variant that does not say."""
        if self.gpus is not None:
            return self.gpus
        return 1 if self.accelerator == "gpu" else 0

    @property
    def devices_per_replica(self) -> int:
        """Accelerator devices one replica asks for: GPUs for a GPU variant, cards (``gpus``, default 1) for FPGA,
        none otherwise."""
        if self.accelerator == "gpu":
            return self.gpus_per_replica
        if self.accelerator == "fpga":
            return self.gpus if self.gpus is not None else 1
        return 0


class VariantOverride(_Model):
    """Per-target changes to a variant (instance types differ per cloud)."""

    accelerator: Accelerator | None = None
    instance_type: str | None = None
    instance_count: int | None = Field(default=None, ge=1, le=100)
    weight: float | None = Field(default=None, ge=0)
    cpu: float | None = Field(default=None, gt=0)
    memory: str | None = Field(default=None, pattern=_QUANTITY)
    gpus: int | None = Field(default=None, ge=0)


class Autoscaling(_Model):
    """Target tracking on invocations per instance."""

    min_instances: int = Field(default=1, ge=1)
    max_instances: int = Field(default=1, ge=1)
    target_invocations_per_instance: int = Field(default=100, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"max_instances ({self.max_instances}) is below min_instances ({self.min_instances}): "
                "raise max_instances or lower min_instances"
            )
        return self


class Timeouts(_Model):
    """Bounds on every wait, in seconds (written as 90s, 30m, 8h)."""

    create: Duration = 1800.0
    update: Duration = 1800.0
    delete: Duration = 1200.0


class _TargetBase(_Model):
    variants: dict[str, VariantOverride] = Field(default_factory=dict)
    #: how ``invoke_endpoint`` talks to the endpoint unless a call says otherwise
    transport: Literal["http", "grpc"] = "http"


class LocalTarget(_TargetBase):
    """A real tritonserver process per variant on this machine, listening on 127.0.0.1."""

    kind: Literal["local"]
    tritonserver: str | None = None
    sagemaker_protocol: bool = False
    api_key: bool = False
    state_dir: str | None = None


class SageMakerVpc(_Model):
    subnets: list[str] = Field(min_length=1)
    security_group_ids: list[str] = Field(min_length=1)


class SageMakerServerless(_Model):
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)


class SageMakerAsync(_Model):
    output_path: str = Field(pattern=r"^s3://[^/]+(/.*)?$")
    failure_path: str | None = Field(default=None, pattern=r"^s3://[^/]+(/.*)?$")
    max_concurrent_invocations_per_instance: int | None = Field(default=None, ge=1, le=1000)


class SageMakerTarget(_TargetBase):
    """Amazon SageMaker real-time, serverless or asynchronous hosting around the Triton container."""

    kind: Literal["sagemaker"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = "endpointkit"
    vpc: SageMakerVpc | None = None
    serverless: SageMakerServerless | None = None
    async_inference: SageMakerAsync | None = Field(default=None, alias="async")
    instance_type_fallbacks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_mode(self) -> SageMakerTarget:
        if self.serverless is not None and self.async_inference is not None:
            raise ValueError("serverless and async cannot both be set: pick one hosting mode")
        return self


class AksNodePool(_Model):
    name: str = Field(default="gpu", pattern=r"^[a-z][a-z0-9]{0,11}$")
    vm_size: str = "Standard_NC4as_T4_v3"
    count: int = Field(default=1, ge=0, le=1000)
    min_count: int | None = Field(default=None, ge=0)
    max_count: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> AksNodePool:
        if (self.min_count is None) != (self.max_count is None):
            raise ValueError("set both min_count and max_count to autoscale the pool, or neither")
        if self.min_count is not None and self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(f"max_count ({self.max_count}) is below min_count ({self.min_count})")
        return self


class AksFpga(_Model):
    resource_name: str | None = None


class AksTarget(_TargetBase):
    """A Triton Deployment and Service on an Azure Kubernetes Service cluster with an accelerator node pool."""

    kind: Literal["aks"]
    subscription_id: str = Field(min_length=1)
    resource_group: str = Field(min_length=1)
    cluster: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")
    location: str | None = None
    create_cluster: bool = False
    arm_endpoint: str = "https://management.azure.com"
    namespace: str = Field(default="default", pattern=_NAME)
    node_pool: AksNodePool = Field(default_factory=AksNodePool)
    storage_account: str | None = Field(default=None, pattern=r"^[a-z0-9]{3,24}$")
    storage_secret: str | None = None
    fpga: AksFpga = Field(default_factory=AksFpga)
    api_key: bool = False

    @model_validator(mode="after")
    def _location(self) -> AksTarget:
        if self.create_cluster and not self.location:
            raise ValueError("location is required when create_cluster is true, e.g. location: eastus")
        return self


Target = Annotated[LocalTarget | SageMakerTarget | AksTarget, Field(discriminator="kind")]


class Spec(_Model):
    """One Triton model endpoint, deployable on every target it lists."""

    name: str = Field(pattern=_NAME, max_length=63)
    model: ModelSection
    variants: list[Variant] = Field(min_length=1)
    autoscaling: Autoscaling | None = None
    ttl: Duration | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    tags: dict[str, str] = Field(default_factory=dict)
    targets: dict[str, Target] = Field(default_factory=lambda: _default_targets())
    base_dir: Path = Field(default=Path("."), exclude=True, repr=False)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        names = [variant.name for variant in self.variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(duplicates)}")
        if sum(variant.weight for variant in self.variants) <= 0:
            raise ValueError("variant weights add up to 0: give at least one variant a positive weight")
        if not self.targets:
            raise ValueError("targets is empty: add one, e.g. targets: {local: {kind: local}}")
        for target_name, target in self.targets.items():
            unknown = sorted(set(target.variants) - set(names))
            if unknown:
                raise ValueError(
                    f"targets.{target_name}.variants names {', '.join(unknown)}, which the spec does not have; "
                    f"variants are: {', '.join(names)}"
                )
        return self

    def deployment(self, target: str | None = None) -> Deployment:
        """The spec resolved for one target: overrides applied and cross-field rules checked.

        ``target`` may be omitted when the spec has exactly one target.

        Raises:
            SpecError: unknown target, or a rule that the target's variants break.
        """
        if target is None:
            if len(self.targets) != 1:
                raise SpecError(
                    f"the spec has {len(self.targets)} targets: pick one with target= / --target "
                    f"({', '.join(self.targets)})",
                    field="targets",
                )
            target = next(iter(self.targets))
        if target not in self.targets:
            raise SpecError(
                f"unknown target {target!r}{suggest(target, self.targets)}; targets are: {', '.join(self.targets)}",
                field="targets",
            )
        config = self.targets[target]
        variants = tuple(_apply_override(v, config.variants.get(v.name)) for v in self.variants)
        deployment = Deployment(spec=self, target_name=target, target=config, variants=variants)
        _check_variants(deployment)
        return deployment

    def canonical_json(self) -> bytes:
        """The spec as sorted JSON without its location on disk: the input of every content hash.

        A target's ``transport`` is left out: it says how clients call the endpoint, not what is deployed, so
        changing it (or reading a spec written before the key existed) changes no hash and no tag.
        """
        document = self.model_dump(mode="json", by_alias=True)
        for target in document["targets"].values():
            target.pop("transport", None)
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _default_targets() -> dict[str, LocalTarget | SageMakerTarget | AksTarget]:
    return {"local": LocalTarget(kind="local")}


@dataclass(frozen=True)
class Deployment:
    """A spec resolved for one target: what an adapter deploys."""

    spec: Spec
    target_name: str
    target: LocalTarget | SageMakerTarget | AksTarget
    variants: tuple[Variant, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def repository(self) -> str:
        """The repository as given, with a relative folder resolved against the spec file's folder."""
        repository = self.spec.model.repository
        if "://" in repository:
            return repository
        return str((self.spec.base_dir / repository).resolve())

    def spec_hash(self) -> str:
        """sha256 of the spec for this target (12 hex digits); the repository's content is hashed separately."""
        digest = hashlib.sha256(self.spec.canonical_json())
        digest.update(self.target_name.encode())
        return digest.hexdigest()[:12]


def _apply_override(variant: Variant, override: VariantOverride | None) -> Variant:
    if override is None:
        return variant
    changes = override.model_dump(exclude_none=True)
    return Variant.model_validate({**variant.model_dump(), **changes})


def _check_variants(deployment: Deployment) -> None:
    target = deployment.target
    prefix = "variants" if not target.variants else f"targets.{deployment.target_name}.variants"
    for index, variant in enumerate(deployment.variants):
        field = f"variants[{index}]"
        if isinstance(target, SageMakerTarget) and target.serverless is None:
            if variant.instance_type is None and variant.accelerator == "fpga":
                # SageMaker has no FPGA type to name here; plan's capability check reports that, with the
                # alternatives, which beats asking for an instance type that cannot exist.
                continue
            if variant.instance_type is None:
                raise SpecError(
                    f"{field}.instance_type is required for SageMaker real-time hosting, e.g. ml.g4dn.xlarge "
                    f"(or set it under {prefix}.{variant.name})",
                    field=f"{field}.instance_type",
                )
            info = sagemaker_instance(variant.instance_type)
            if info is None:
                raise SpecError(
                    f"{field}.instance_type {variant.instance_type!r} is not a SageMaker instance type: "
                    "they look like ml.g4dn.xlarge",
                    field=f"{field}.instance_type",
                )
            if variant.accelerator in ("gpu", "inferentia") and info.accelerator != variant.accelerator:
                raise SpecError(
                    f"{field} asks for accelerator {variant.accelerator} but {variant.instance_type} has "
                    f"{'no accelerator' if info.accelerator == 'cpu' else info.accelerator}: pick a "
                    f"{'GPU type such as ml.g5.xlarge' if variant.accelerator == 'gpu' else 'type such as ml.inf2.xlarge'}",
                    field=f"{field}.accelerator",
                )
        if isinstance(target, AksTarget):
            pool = azure_vm_size(target.node_pool.vm_size)
            if variant.accelerator in ("gpu", "fpga") and pool.accelerator != variant.accelerator:
                raise SpecError(
                    f"{field} asks for accelerator {variant.accelerator} but node pool vm_size "
                    f"{target.node_pool.vm_size} has {'no accelerator' if pool.accelerator == 'cpu' else pool.accelerator}: "
                    f"pick a {'GPU size such as Standard_NC4as_T4_v3' if variant.accelerator == 'gpu' else 'NP-series size such as Standard_NP10s'}",
                    field=f"targets.{deployment.target_name}.node_pool.vm_size",
                )


# ---------------------------------------------------------------------------------------------------- loading


def load_spec(path: str | os.PathLike[str], *, check_repository: bool = True) -> Spec:
    """Read and validate a spec file (YAML).

    ``check_repository=False`` skips loading the local model repository (``status`` and ``destroy`` must work
    after it is gone).

    Raises:
        SpecError: the file is missing, is not YAML, or breaks a rule; the message names the field path, the
            line, the bad value and the fix.
    """
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {spec_path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" line {line}" if line else ""
        raise SpecError(f"{spec_path}:{where}: not valid YAML: {problem}", line=line) from None
    if not isinstance(data, dict):
        raise SpecError(f"{spec_path}: a spec is a YAML mapping with name, model, variants and targets")
    return spec_from_dict(
        data,
        base_dir=spec_path.resolve().parent,
        source=str(spec_path),
        lines=line_index(node),
        check_repository=check_repository,
    )


def spec_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    source: str = "spec",
    lines: Mapping[tuple[str | int, ...], int] | None = None,
    check_repository: bool = True,
) -> Spec:
    """Validate a spec given as a mapping (what ``load_spec`` does after reading YAML)."""
    try:
        spec = Spec.model_validate({**data, "base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise spec_error(exc, data, source, lines or {}, _allowed_keys) from None
    for target in spec.targets:  # cross-field rules of every target are checked at load, not at deploy time
        spec.deployment(target)
    if check_repository:
        _check_repository(spec)
    return spec


def _check_repository(spec: Spec) -> None:
    """A local repository must exist and load the way Triton would load it; an explicit default model must be in it."""
    if is_remote_repository(spec.model.repository):
        return
    path = (spec.base_dir / spec.model.repository).resolve()
    if not path.is_dir():
        raise SpecError(
            f"model.repository: {spec.model.repository!r} is not a folder (looked in {path}); point it at a Triton "
            "model repository, or at an s3:// / as:// URI of one already uploaded",
            field="model.repository",
        )
    repository = load_repository(path)
    if spec.model.default_model is not None:
        repository.default_model(spec.model.default_model)


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "model": ModelSection,
    "variants": Variant,
    "autoscaling": Autoscaling,
    "timeouts": Timeouts,
}


def _allowed_keys(parent: tuple[str | int, ...], data: Mapping[str, Any]) -> list[str]:
    model: type[BaseModel] | None = None
    if not parent:
        model = Spec
    elif parent[0] in _SECTION_MODELS and len(parent) <= 2:
        model = _SECTION_MODELS[str(parent[0])]
    elif parent[0] == "targets" and len(parent) == 2:
        raw = data.get("targets", {}).get(parent[1], {})
        kind = raw.get("kind") if isinstance(raw, dict) else None
        kinds: dict[str, type[BaseModel]] = {
            "local": LocalTarget,
            "sagemaker": SageMakerTarget,
            "aks": AksTarget,
        }
        model = kinds.get(str(kind))
    elif parent[0] == "targets" and len(parent) == 3:
        nested: dict[str, type[BaseModel]] = {
            "node_pool": AksNodePool,
            "vpc": SageMakerVpc,
            "serverless": SageMakerServerless,
            "async": SageMakerAsync,
            "fpga": AksFpga,
        }
        model = nested.get(str(parent[2]))
    elif parent[0] == "targets" and len(parent) == 4 and parent[2] == "variants":
        model = VariantOverride
    if model is None:
        return []
    return [
        (info.alias or name)
        for name, info in model.model_fields.items()
        if name != "base_dir" and not info.exclude
    ]
