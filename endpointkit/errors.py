"""The one exception tree of endpointkit, and the one mapping of errors to exit codes.

::

    EndpointKitError
     ├── SpecError (ValueError)              bad spec: names the field path, the value and the fix
     ├── PayloadError (ValueError)           bad or undecodable Triton payload: names the field or byte offset
     ├── UsageError (ValueError)             a malformed call or command line: options that do not go together
     │    └── TerraformQueryError            the query on stdin breaks Terraform's external program protocol
     ├── CostLimitExceeded                   an apply's estimated hourly cost is above its limit, or unknown
     ├── MissingDependencyError (ImportError) an optional extra is not installed: names the pip command
     ├── UnsupportedCapabilityError          the target cannot do what the spec asks; raised before any cloud call
     ├── ProviderError                       a cloud or Triton call failed: .provider .operation .code .retryable
     │    ├── QuotaError                     an account quota is exhausted
     │    ├── CapacityError                  the provider has no capacity for the instance type right now
     │    ├── NotFoundError                  the resource does not exist
     │    ├── ConflictError                  the resource exists and is not ours, or is busy
     │    ├── InvalidRequestError            the endpoint refused the request's inputs or model (HTTP 400 or 404)
     │    └── AuthError                      credentials missing, expired or not allowed
     ├── ProvisionTimeout                    a bounded wait ran out: .last_state
 ├── VerificationError                   a golden check or rollout alarm failed on a new version: .check .detail
     └── FleetCancelled                      a fleet was interrupted: raised inside its running jobs so they unwind

SDK exceptions never escape an adapter: each adapter maps them to this tree in one place.

Exit codes, for the CLI and the Terraform hook alike (:func:`exit_code`): ``EXIT_OK`` 0; ``EXIT_FAILURE`` 1, a
provider or runtime failure; ``EXIT_BAD_INPUT`` 2, bad input (spec, payload, a request the endpoint refused,
usage, unsupported capability, cost limit); ``EXIT_TIMEOUT`` 3; ``EXIT_INTERRUPTED`` 130 (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from endpointkit._endpoint_state import EndpointState

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "AuthError",
    "CapacityError",
    "ConflictError",
    "CostLimitExceeded",
    "EndpointKitError",
    "FleetCancelled",
    "InvalidRequestError",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadError",
    "ProviderError",
    "ProvisionTimeout",
    "QuotaError",
    "SpecError",
    "TerraformQueryError",
    "UnsupportedCapabilityError",
    "UsageError",
    "VerificationError",
    "exit_code",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130


class EndpointKitError(Exception):
    """Root of every error endpointkit raises on purpose."""


class SpecError(EndpointKitError, ValueError):
    """The spec is invalid.

    ``field`` is the dotted path of the offending field (``variants[0].instance_count``) when one applies;
    ``line`` is the 1-based line in the YAML file when known.
    """

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


class PayloadError(EndpointKitError, ValueError):
    """A Triton payload cannot be encoded or decoded.

    ``offset`` is the byte offset in the body where decoding failed, when one applies.
    """

    def __init__(self, message: str, *, offset: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.field = field


class UsageError(EndpointKitError, ValueError):
    """A malformed call or command line: a missing argument, options that do not go together, a bad value."""


class TerraformQueryError(UsageError):
    """The query Terraform's ``external`` data source wrote on stdin breaks the program protocol."""


class CostLimitExceeded(EndpointKitError):
    """``apply(..., max_hourly_cost=)`` refused a plan, before any call: its estimate is above the limit or unknown.

    ``estimate`` is the estimated cost per hour in USD (None: a price is unknown); ``limit`` is the limit.
    """

    def __init__(self, message: str, *, estimate: float | None, limit: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


class MissingDependencyError(EndpointKitError, ImportError):
    """An optional dependency is missing; the message names the pip extra that installs it."""


class UnsupportedCapabilityError(EndpointKitError):
    """The target lacks capabilities the spec needs.

    ``missing`` maps each missing capability name to the reason and an alternative.
    """

    def __init__(self, message: str, *, missing: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.missing: dict[str, str] = dict(missing or {})


class ProviderError(EndpointKitError):
    """A provider (SageMaker, Azure, Kubernetes, Triton) call failed, with the provider's own reason."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        operation: str = "",
        code: str | None = None,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.code = code
        self.retryable = retryable
        self.details: dict[str, Any] = dict(details or {})


class QuotaError(ProviderError):
    """An account quota (instances, vCPUs, GPUs) is exhausted; the message says how to raise it."""


class CapacityError(ProviderError):
    """The provider has no capacity for the requested instance type right now."""


class NotFoundError(ProviderError):
    """The resource does not exist."""


class ConflictError(ProviderError):
    """The resource exists already and is not managed by endpointkit, or is in a state that forbids the call."""


class InvalidRequestError(ProviderError):
    """The endpoint refused the request itself: an unknown input, output or model, a wrong datatype or shape, data
    the model cannot read. Triton's HTTP 400 (404 for a model it does not serve) or gRPC ``INVALID_ARGUMENT``; the
    message is Triton's, naming the tensor or model.

    Bad input like a :class:`PayloadError` (exit code 2), but found by the server rather than the encoder.
    """


class AuthError(ProviderError):
    """Credentials are missing, expired or lack a permission."""


class ProvisionTimeout(EndpointKitError):
    """A bounded wait ended before the endpoint reached the wanted state.

    ``last_state`` is the last :class:`~endpointkit.adapters.base.EndpointState` observed, if any.
    """

    def __init__(self, message: str, *, last_state: EndpointState | None = None) -> None:
        super().__init__(message)
        self.last_state = last_state


class VerificationError(EndpointKitError):
    """A check of the spec's ``verify`` section (or a rollout alarm) failed against a new version.

    ``check`` names the check, ``output`` the output it compared (None for latency, alarms and ``python:``
    checks), ``detail`` what was seen: the largest difference and where, the p99 against its bound, or the
    check's own message. ``subject`` says which version was checked (``candidate of endpoint X on local``).
    The rollout that raised it left the previous version serving.
    """

    def __init__(
        self,
        message: str,
        *,
        check: str,
        detail: str,
        output: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message)
        self.check = check
        self.detail = detail
        self.output = output
        self.subject = subject


class FleetCancelled(EndpointKitError):
    """Raised inside a running fleet job when the fleet was interrupted: the job unwinds (and rolls back)."""


_BAD_INPUT: tuple[type[BaseException], ...] = (
    SpecError,
    PayloadError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    UsageError,
    CostLimitExceeded,
)


def exit_code(error: BaseException) -> int:
    """The process exit code for ``error``: the one mapping the CLI and the Terraform hook share.

    Bad input is ``EXIT_BAD_INPUT``, a bounded wait that ran out ``EXIT_TIMEOUT``, an interrupt (or a fleet job it
    cancelled) ``EXIT_INTERRUPTED``, anything else ``EXIT_FAILURE``.
    """
    if isinstance(error, _BAD_INPUT):
        return EXIT_BAD_INPUT
    if isinstance(error, ProvisionTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, (KeyboardInterrupt, FleetCancelled)):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE
