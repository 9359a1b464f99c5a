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
    "AksTls",
    "Autoscaling",
    "Deployment",
    "LocalTarget",
    "ModelSection",
    "RolloutSteps",
    "RolloutStrategy",
    "SageMakerTarget",
    "Spec",
    "Target",
    "Timeouts",
    "Variant",
    "VariantOverride",
    "VerifyCheck",
    "load_spec",
    "format_duration",
    "parse_duration",
    "parse_percent",
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


def format_duration(seconds: float) -> str:
    """A duration as a spec writes it, and :func:`parse_duration` reads it back: ``0.25`` -> ``250ms``, ``90`` ->
    ``90s``, ``300`` -> ``5m``, ``7200`` -> ``2h``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def parse_percent(value: object) -> float:
    """A share in percent from ``10``, ``"10%"`` or ``"12.5 %"``.

    Raises:
        ValueError: the value is not a number of percent (pydantic turns it into a field error).
    """
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as 10%")
    if isinstance(value, int | float):
        return float(value)
    match = _PERCENT.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a percentage: write a number with %, such as 10%")
    return float(match.group(1))


Percent = Annotated[float, BeforeValidator(parse_percent)]
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


class AksTls(_Model):
    """A certificate the user brings: a PEM pair (``cert_file``, ``key_file``, relative to the spec file's
    folder), or a certificate kept in Azure Key Vault for a Gateway class that reads Key Vault itself."""

    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)
    key_vault_certificate: str | None = Field(
        default=None,
        pattern=r"^https://[a-zA-Z0-9-]{3,24}\.vault\.azure\.(net|cn|us)/(certificates|secrets)/[a-zA-Z0-9-]{1,127}(/[0-9a-f]{32})?/?$",
        description="https://VAULT.vault.azure.net/certificates/NAME[/VERSION]",
    )

    @model_validator(mode="after")
    def _one_source(self) -> AksTls:
        files = self.cert_file is not None or self.key_file is not None
        if files and self.key_vault_certificate is not None:
            raise ValueError("tls takes cert_file and key_file, or key_vault_certificate, not both")
        if not files and self.key_vault_certificate is None:
            raise ValueError(
                "tls needs cert_file and key_file, or key_vault_certificate (or write tls: auto)"
            )
        if files and (self.cert_file is None or self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"tls.{missing} is missing: give both cert_file and key_file (PEM files)")
        return self

    @property
    def from_files(self) -> bool:
        return self.cert_file is not None


_DNS_NAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"


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
    #: the Gateway API class that terminates TLS and routes to the variants
    gateway_class: str = Field(default="approuting-istio", pattern=_NAME, max_length=253)
    #: an existing Gateway (``NAME`` or ``NAMESPACE/NAME``) to attach the routes to, instead of creating one
    gateway: str | None = Field(
        default=None, pattern=r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?/)?[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
    )
    tls: Literal["auto", "off"] | AksTls = "auto"
    #: the DNS name clients call; default: the Azure DNS label of the Gateway's public IP
    host: str | None = Field(default=None, pattern=_DNS_NAME, max_length=253)
    exposure: Literal["public", "internal"] = "public"
    #: whether endpointkit may enable the Gateway API add-on on an existing cluster that lacks it
    allow_addon_changes: bool = False

    @model_validator(mode="after")
    def _location(self) -> AksTarget:
        if self.create_cluster and not self.location:
            raise ValueError("location is required when create_cluster is true, e.g. location: eastus")
        if self.exposure == "internal" and self.host is None and self.gateway is None:
            raise ValueError(
                "exposure: internal needs host: an internal load balancer has no Azure DNS label, so name the "
                "DNS name you point at it (e.g. host: triton.corp.example.com)"
            )
        if isinstance(self.tls, AksTls) and self.tls.from_files and self.host is None:
            raise ValueError(
                "tls.cert_file needs host: the DNS name the certificate covers (e.g. host: triton.example.com)"
            )
        return self


Target = Annotated[LocalTarget | SageMakerTarget | AksTarget, Field(discriminator="kind")]


class VerifyCheck(_Model):
    """A golden check run against a new version before it takes traffic (and by ``endpointkit verify``).

    ``inputs`` and ``expect`` name files relative to the spec file: inputs are read as ``invoke --input`` reads
    them, expectations are ``.npy`` or ``.json`` and compared with ``rtol`` / ``atol``. ``repeat`` with
    ``max_p99`` bounds the latency; ``python: module:function`` is called with an ``invoke(inputs)`` function
    and fails the check by raising.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    model: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    expect: dict[str, str] = Field(default_factory=dict)
    rtol: float = Field(default=1.0e-3, ge=0)
    atol: float = Field(default=1.0e-5, ge=0)
    repeat: int = Field(default=1, ge=1, le=10000)
    max_p99: Duration | None = None
    python: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    @model_validator(mode="after")
    def _something_to_check(self) -> VerifyCheck:
        if self.python is None and not self.inputs:
            raise ValueError(
                f"check {self.name!r} checks nothing: give it inputs (with expect or max_p99) or python: module:function"
            )
        if self.expect and not self.inputs:
            raise ValueError(f"check {self.name!r} has expect but no inputs: add the inputs that produce it")
        if self.max_p99 is not None and not self.inputs:
            raise ValueError(f"check {self.name!r} has max_p99 but no inputs to time: add inputs")
        return self


class RolloutSteps(_Model):
    """Traffic moved to the new version in steps: ``step`` percent at a time, ``wait`` between steps, rolled
    back when the checks fail or an alarm (``max_error_rate``, ``max_p99``) fires on the endpoint."""

    step: Percent = Field(ge=1, le=100)
    wait: Duration = 300.0
    max_error_rate: Percent | None = Field(default=None, ge=0, le=100)
    max_p99: Duration | None = None

    @property
    def alarms(self) -> tuple[str, ...]:
        """The alarm conditions as plan writes them: ``error rate > 1%``, ``p99 > 250ms``."""
        conditions = []
        if self.max_error_rate is not None:
            conditions.append(f"error rate > {self.max_error_rate:g}%")
        if self.max_p99 is not None:
            conditions.append(f"p99 > {format_duration(self.max_p99)}")
        return tuple(conditions)


class RolloutStrategy(_Model):
    """``canary``: one step, then the rest; ``linear``: equal steps until 100 %."""

    canary: RolloutSteps | None = None
    linear: RolloutSteps | None = None

    @model_validator(mode="after")
    def _one(self) -> RolloutStrategy:
        if (self.canary is None) == (self.linear is None):
            raise ValueError("rollout takes one of canary: {step, wait} or linear: {step, wait}")
        return self

    @property
    def kind(self) -> Literal["canary", "linear"]:
        return "canary" if self.canary is not None else "linear"

    @property
    def steps(self) -> RolloutSteps:
        chosen = self.canary or self.linear
        assert chosen is not None
        return chosen

    def describe_shares(self) -> str:
        """The new version's share after each step, as plan writes it: ``10% -> 100%``."""
        return " -> ".join(f"{share:g}%" for share in self.percentages())

    def percentages(self) -> tuple[float, ...]:
        """The new version's share of traffic after each step, ending at 100."""
        step = self.steps.step
        if self.kind == "canary":
            return (step, 100.0) if step < 100 else (100.0,)
        shares: list[float] = []
        share = step
        while share < 100:
            shares.append(round(share, 6))
            share += step
        return (*shares, 100.0)


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
    verify: list[VerifyCheck] = Field(default_factory=list)
    rollout: Literal["all_at_once"] | RolloutStrategy = "all_at_once"
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
        checks = [check.name for check in self.verify]
        repeated = sorted({name for name in checks if checks.count(name) > 1})
        if repeated:
            raise ValueError(f"verify check names must be unique; repeated: {', '.join(repeated)}")
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

        A target's ``transport``, the ``verify`` checks and the ``rollout`` strategy are left out: they say how
        clients call the endpoint and how a version is proven and moved in, not what is deployed, so changing
        them (or reading a spec written before the keys existed) changes no hash and no tag.
        """
        document = self.model_dump(mode="json", by_alias=True)
        for target in document["targets"].values():
            target.pop("transport", None)
        document.pop("verify", None)
        document.pop("rollout", None)
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
    "verify": VerifyCheck,
}


def _allowed_keys(parent: tuple[str | int, ...], data: Mapping[str, Any]) -> list[str]:
    model: type[BaseModel] | None = None
    if not parent:
        model = Spec
    elif parent[0] in _SECTION_MODELS and len(parent) <= 2:
        model = _SECTION_MODELS[str(parent[0])]
    elif parent[0] == "rollout":
        model = RolloutStrategy if len(parent) == 1 else RolloutSteps
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
            "tls": AksTls,
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
