from __future__ import annotations

import subprocess
import sys

import endpointkit as ek


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
    ):
        assert name in ek.__all__


def test_error_tree_matches_the_design() -> None:
    assert issubclass(ek.SpecError, ValueError) and issubclass(ek.SpecError, ek.EndpointKitError)
    assert issubclass(ek.PayloadError, ValueError)
    assert issubclass(ek.MissingDependencyError, ImportError)
    for error in (ek.QuotaError, ek.CapacityError, ek.NotFoundError, ek.ConflictError, ek.AuthError):
        assert issubclass(error, ek.ProviderError)
    assert issubclass(ek.ProvisionTimeout, ek.EndpointKitError)


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
