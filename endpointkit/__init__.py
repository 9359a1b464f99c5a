"""endpointkit: NVIDIA Triton model endpoints on a local Triton, Amazon SageMaker and Azure Kubernetes Service
from one declarative spec.

>>> import endpointkit as ek
>>> spec = ek.load_spec("examples/quickstart/endpoint.yaml")   # doctest: +SKIP
>>> state = ek.apply(spec, target="local")                      # doctest: +SKIP
"""

from __future__ import annotations

from endpointkit._api import (
    ReapProgress,
    ReapReport,
    ValidationReport,
    apply,
    destroy,
    logs,
    metrics,
    plan,
    reap,
    status,
    validate,
    verify,
)
from endpointkit._observations import Drift, EndpointMetrics, LogRecord, VariantMetrics
from endpointkit._wait import ProgressEvent
from endpointkit.adapters.base import Capability, EndpointState, EndpointStatus, VariantState
from endpointkit.errors import (
    AuthError,
    CapacityError,
    ConflictError,
    CostLimitExceeded,
    EndpointKitError,
    FleetCancelled,
    InvalidRequestError,
    MissingDependencyError,
    NotFoundError,
    PayloadError,
    ProviderError,
    ProvisionTimeout,
    QuotaError,
    SpecError,
    TerraformQueryError,
    UnsupportedCapabilityError,
    UsageError,
    VerificationError,
)
from endpointkit.invoke import ainvoke_endpoint, ainvoke_stream, invoke_endpoint, invoke_stream
from endpointkit.payloads import InferRequest, InferResponse, RequestedOutput, Tensor
from endpointkit.provisioners import Change, Plan
from endpointkit.spec import Deployment, Spec, load_spec
from endpointkit.verification import VerificationReport

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Capability",
    "CapacityError",
    "Change",
    "ConflictError",
    "CostLimitExceeded",
    "Deployment",
    "Drift",
    "EndpointKitError",
    "EndpointMetrics",
    "EndpointState",
    "EndpointStatus",
    "FleetCancelled",
    "InferRequest",
    "InferResponse",
    "InvalidRequestError",
    "LogRecord",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadError",
    "Plan",
    "ProgressEvent",
    "ProviderError",
    "ProvisionTimeout",
    "QuotaError",
    "ReapProgress",
    "ReapReport",
    "RequestedOutput",
    "Spec",
    "SpecError",
    "Tensor",
    "TerraformQueryError",
    "UnsupportedCapabilityError",
    "UsageError",
    "ValidationReport",
    "VariantMetrics",
    "VariantState",
    "VerificationError",
    "VerificationReport",
    "ainvoke_endpoint",
    "ainvoke_stream",
    "apply",
    "destroy",
    "invoke_endpoint",
    "invoke_stream",
    "load_spec",
    "logs",
    "metrics",
    "plan",
    "reap",
    "status",
    "validate",
    "verify",
]
