"""The SDK-loading check that `make contracts` runs: passes on the package, fails on each planted violation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools.check_sdk_loading import check_package, main

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "endpointkit"

# The skeleton every planted package starts from: the lazy loader and the packages the rules name.
SKELETON = {
    "__init__.py": "",
    "_lazy.py": """
        import importlib


        def require(module, *, extra):
            return importlib.import_module(module)
    """,
    "adapters/__init__.py": "",
    "adapters/sagemaker/__init__.py": "",
    "adapters/aks/__init__.py": "",
    "provisioners/__init__.py": "",
    "cli/__init__.py": "",
}


def plant(root: Path, files: dict[str, str]) -> Path:
    """Write a throw-away ``endpointkit`` package under ``root``: the skeleton plus ``files``."""
    package_dir = root / "endpointkit"
    for relative, source in {**SKELETON, **files}.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return package_dir


def test_the_package_loads_each_cloud_sdk_only_in_its_own_adapter() -> None:
    assert check_package(PACKAGE_DIR) == []


def test_the_command_passes_on_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(PACKAGE_DIR)]) == 0
    assert "each cloud SDK is loaded only inside its own adapter package" in capsys.readouterr().out


# (file, source, line of the finding, what the finding says)
PLANTED = {
    "a literal in a provisioner": (
        "provisioners/apply.py",
        """
        from endpointkit._lazy import require

        SESSION = require("boto3", extra="sagemaker")
        """,
        3,
        "require() loads 'boto3' outside endpointkit.adapters.sagemaker: boto3 may be loaded only there",
    ),
    "a module constant in the CLI": (
        "cli/_commands.py",
        """
        from endpointkit._lazy import require

        _CONFIG = "botocore.config"


        def config():
            return require(_CONFIG, extra="sagemaker")
        """,
        7,
        "require() loads 'botocore.config' outside endpointkit.adapters.sagemaker",
    ),
    "a constant imported from another module": (
        "provisioners/reap.py",
        """
        from endpointkit._lazy import require
        from endpointkit.adapters.aks._names import CLIENT

        client = require(CLIENT, extra="aks")
        """,
        4,
        "require() loads 'kubernetes.client' outside endpointkit.adapters.aks",
    ),
    "a concatenation and an f-string": (
        "terraform.py",
        """
        from endpointkit._lazy import require

        _PACKAGE = "azure"
        identity = require(f"{_PACKAGE}." + "identity", extra="aks")
        """,
        4,
        "require() loads 'azure.identity' outside endpointkit.adapters.aks",
    ),
    "another adapter's SDK through the module": (
        "adapters/sagemaker/_kube.py",
        """
        from endpointkit import _lazy

        config = _lazy.require("kubernetes.config", extra="aks")
        """,
        3,
        "require() loads 'kubernetes.config' outside endpointkit.adapters.aks",
    ),
    "a relative import under another name": (
        "provisioners/plan.py",
        """
        from .._lazy import require as load_optional

        transfer = load_optional("boto3.s3.transfer", extra="sagemaker")
        """,
        3,
        "require() loads 'boto3.s3.transfer' outside endpointkit.adapters.sagemaker",
    ),
    "the module name by keyword": (
        "fleet.py",
        """
        import endpointkit._lazy

        boto3 = endpointkit._lazy.require(module="boto3", extra="sagemaker")
        """,
        3,
        "require() loads 'boto3' outside endpointkit.adapters.sagemaker",
    ),
    "importlib in the CLI": (
        "cli/_reap.py",
        """
        import importlib

        identity = importlib.import_module("azure.identity")
        """,
        3,
        "import_module() loads 'azure.identity' outside endpointkit.adapters.aks",
    ),
    "import_module under another name, relative to a package": (
        "invoke.py",
        """
        from importlib import import_module as load

        client = load(".client", package="kubernetes")
        """,
        3,
        "import_module() loads 'kubernetes.client' outside endpointkit.adapters.aks",
    ),
    "__import__": (
        "pricing.py",
        """
        botocore = __import__("botocore")
        """,
        1,
        "__import__() loads 'botocore' outside endpointkit.adapters.sagemaker",
    ),
    "importlib inside the owner": (
        "adapters/sagemaker/_clients.py",
        """
        import importlib

        boto3 = importlib.import_module("boto3")
        """,
        3,
        "load a cloud SDK with endpointkit._lazy.require(..., extra='sagemaker')",
    ),
    "another target's pip extra": (
        "adapters/sagemaker/_clients.py",
        """
        from endpointkit._lazy import require

        boto3 = require("boto3", extra="aks")
        """,
        3,
        "require() loads 'boto3' with extra=['aks']: boto3 comes with extra 'sagemaker'",
    ),
    "a parameter, even one named like a constant": (
        "adapters/aks/_arm.py",
        """
        from endpointkit._lazy import require

        name = "azure.identity"


        def load(name):
            return require(name, extra="aks")
        """,
        7,
        "require() gets a module name that cannot be resolved from the source",
    ),
    "the loader handed to functools.partial": (
        "adapters/aks/_kube.py",
        """
        import functools

        from endpointkit._lazy import require

        load = functools.partial(require, extra="aks")
        """,
        5,
        "the lazy loader is used other than by a direct call",
    ),
}


@pytest.mark.parametrize(("relative", "source", "line", "says"), PLANTED.values(), ids=PLANTED.keys())
def test_a_planted_violation_is_reported_with_its_place_and_rule(
    tmp_path: Path, relative: str, source: str, line: int, says: str
) -> None:
    names = {"adapters/aks/_names.py": 'CLIENT = "kubernetes" + ".client"\n'}
    findings = check_package(plant(tmp_path, {**names, relative: source}))
    assert [(finding.path, finding.line) for finding in findings] == [(f"endpointkit/{relative}", line)]
    assert says in findings[0].message


def test_each_sdk_in_its_own_adapter_and_other_optional_modules_anywhere_pass(tmp_path: Path) -> None:
    package_dir = plant(
        tmp_path,
        {
            "adapters/__init__.py": """
                import importlib


                def load_adapter(path):
                    module_name, _, class_name = path.partition(":")
                    return getattr(importlib.import_module(module_name), class_name)
            """,
            "adapters/sagemaker/_clients.py": """
                from endpointkit._lazy import require

                _CONFIG = "botocore.config"
                boto3 = require("boto3", extra="sagemaker")
                config = require(_CONFIG, extra="sagemaker")
            """,
            "adapters/aks/_kube.py": """
                from ..._lazy import require

                for name in ("kubernetes.client", "azure.identity"):
                    require(name, extra="aks")
            """,
            "cli/_invoke.py": """
                from endpointkit._lazy import require

                grpc = require("tritonclient.grpc", extra="local")
            """,
        },
    )
    assert check_package(package_dir) == []


def test_the_command_prints_each_finding_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package_dir = plant(
        tmp_path, {"cli/_commands.py": 'import importlib\nimportlib.import_module("boto3")\n'}
    )
    assert main([str(package_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("endpointkit/cli/_commands.py:2: import_module() loads 'boto3' outside ")
    assert "1 finding(s)" in out


def test_a_module_that_does_not_parse_is_a_finding(tmp_path: Path) -> None:
    findings = check_package(plant(tmp_path, {"spec.py": "def broken(:\n"}))
    assert [(finding.path, finding.line) for finding in findings] == [("endpointkit/spec.py", 1)]
    assert findings[0].message.startswith("cannot be parsed")


def test_the_command_refuses_a_folder_that_is_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
