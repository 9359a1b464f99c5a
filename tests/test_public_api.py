from __future__ import annotations

import subprocess
import sys

import pytest

import endpointkit as ek
from endpointkit import errors


def test_all_is_sorted_and_complete() -> None:
    assert ek.__all__ == sorted(ek.__all__)
    for name in ek.__all__:
        assert getattr(ek, name) is not None
    for name in (
        "load_spec",
        "plan",
        "apply",
        "status",
        "destroy",
        "invoke_endpoint",
        "InferResponse",
        "SpecError",
        "validate",
        "verify",
        "VerificationReport",
        "reap",
        "UsageError",
    ):
        assert name in ek.__all__


def test_error_tree_matches_the_design() -> None:
    assert issubclass(ek.SpecError, ValueError) and issubclass(ek.SpecError, ek.EndpointKitError)
    assert issubclass(ek.PayloadError, ValueError)
    assert issubclass(ek.MissingDependencyError, ImportError)
    for error in (ek.QuotaError, ek.CapacityError, ek.NotFoundError, ek.ConflictError, ek.AuthError):
        assert issubclass(error, ek.ProviderError)
    assert issubclass(ek.ProvisionTimeout, ek.EndpointKitError)
    assert issubclass(ek.InvalidRequestError, ek.ProviderError)
    assert issubclass(ek.UsageError, ek.EndpointKitError) and issubclass(ek.UsageError, ValueError)
    assert issubclass(ek.TerraformQueryError, ek.UsageError)
    for error in (ek.CostLimitExceeded, ek.FleetCancelled):
        assert issubclass(error, ek.EndpointKitError)


def test_errors_that_lived_elsewhere_keep_their_old_import_paths() -> None:
    import endpointkit.cli
    import endpointkit.fleet
    import endpointkit.terraform

    assert endpointkit.cli.CostLimitExceeded is ek.CostLimitExceeded
    assert endpointkit.fleet.FleetCancelled is ek.FleetCancelled
    assert endpointkit.terraform.QueryError is ek.TerraformQueryError


def test_every_error_class_is_drawn_in_the_tree_of_the_errors_docstring() -> None:
    drawn = errors.__doc__ or ""
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert f" {name}" in drawn, name


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ek.SpecError("bad"), errors.EXIT_BAD_INPUT),
        (ek.PayloadError("bad"), errors.EXIT_BAD_INPUT),
        (ek.InvalidRequestError("unexpected inference input"), errors.EXIT_BAD_INPUT),
        (ek.UnsupportedCapabilityError("no fpga"), errors.EXIT_BAD_INPUT),
        (ek.UsageError("--input NAME=FILE"), errors.EXIT_BAD_INPUT),
        (ek.TerraformQueryError("not JSON"), errors.EXIT_BAD_INPUT),
        (ek.CostLimitExceeded("dear", estimate=2.0, limit=1.0), errors.EXIT_BAD_INPUT),
        (ek.ProvisionTimeout("slow"), errors.EXIT_TIMEOUT),
        (ek.FleetCancelled("interrupted"), errors.EXIT_INTERRUPTED),
        (KeyboardInterrupt(), errors.EXIT_INTERRUPTED),
        (ek.ProviderError("throttled"), errors.EXIT_FAILURE),
        (ek.NotFoundError("gone"), errors.EXIT_FAILURE),
        (ek.MissingDependencyError("pip install"), errors.EXIT_FAILURE),
        (RuntimeError("a bug"), errors.EXIT_FAILURE),
    ],
)
def test_one_mapping_of_errors_to_exit_codes(error: BaseException, code: int) -> None:
    assert errors.exit_code(error) == code
    assert (errors.EXIT_OK, errors.EXIT_FAILURE, errors.EXIT_BAD_INPUT) == (0, 1, 2)
    assert (errors.EXIT_TIMEOUT, errors.EXIT_INTERRUPTED) == (3, 130)


def test_importing_endpointkit_imports_no_cloud_sdk() -> None:
    code = (
        "import sys, endpointkit, endpointkit.cli\n"
        "loaded = [m for m in ('boto3', 'botocore', 'azure', 'kubernetes', 'tritonclient') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
