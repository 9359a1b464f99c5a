"""``endpointkit terraform`` run the way Terraform's external data source runs it.

A subprocess with an argv list (no shell), the query as JSON on stdin (no TTY), the environment passed
through, the current directory being the module's: checked against the protocol of
https://registry.terraform.io/providers/hashicorp/external/latest/docs/data-sources/external.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from endpointkit.adapters.base import EndpointState, EndpointStatus, VariantState
from endpointkit.errors import FleetCancelled, ProvisionTimeout, UnsupportedCapabilityError, exit_code
from endpointkit.spec import spec_from_dict
from endpointkit.terraform import QueryError, parse_query, state_result

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: tfdemo
model: {repository: "s3://models/demo/model.tar.gz"}
variants: [{name: primary}]
ttl: 8h
targets:
  here: {kind: local, state_dir: "%s"}
  aws: {kind: sagemaker, region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/x", bucket: models,
        variants: {primary: {instance_type: ml.m5.large}}}
"""


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    """A Terraform module folder holding a spec whose local target keeps its state inside the test's folder."""
    folder = tmp_path / "module"
    folder.mkdir()
    (folder / "endpoint.yaml").write_text(SPEC % (tmp_path / "state"))
    return folder


def run_program(stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "endpointkit", "terraform"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def assert_protocol_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("endpointkit terraform: ")
    for word in words:
        assert word in lines[0]


def test_status_of_a_never_applied_local_endpoint(module_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("endpointkit.adapters.local")
    result = run_program(json.dumps({"spec": "endpoint.yaml", "target": "here"}), module_dir)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert all(isinstance(value, str) for value in answer.values())
    assert answer["status"] == "NOT_FOUND"
    assert answer["name"] == "tfdemo" and answer["target"] == "here" and answer["kind"] == "local"
    assert answer["url"] == "" and answer["expires_at"] == "" and answer["deployed_spec_hash"] == ""
    assert json.loads(answer["variants"]) == []
    assert answer["hourly_cost"] == "0.0"
    assert len(answer["spec_hash"]) == 12
    assert answer["action"] == "status"
    assert result.stderr == ""
    assert not (tmp_path / "state" / "tfdemo").exists()  # a status read writes nothing


def test_an_absolute_spec_path_works_from_any_directory(module_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("endpointkit.adapters.local")
    query = {"spec": str(module_dir / "endpoint.yaml"), "target": "here", "action": "status"}
    result = run_program(json.dumps(query), tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "NOT_FOUND"


def test_a_bad_spec_fails_with_one_line(module_dir: Path) -> None:
    (module_dir / "bad.yaml").write_text("name: Bad\nvariants: []\n")
    assert_protocol_failure(run_program(json.dumps({"spec": "bad.yaml"}), module_dir), "bad.yaml")


def test_an_unknown_target_fails_with_one_line(module_dir: Path) -> None:
    result = run_program(json.dumps({"spec": "endpoint.yaml", "target": "gcp"}), module_dir)
    assert_protocol_failure(result, "unknown target 'gcp'")
    assert result.returncode == 2


def test_a_missing_spec_key_fails_with_one_line(module_dir: Path) -> None:
    assert_protocol_failure(run_program(json.dumps({"target": "here"}), module_dir), '"spec"')


def test_a_non_string_value_fails_with_one_line(module_dir: Path) -> None:
    query = json.dumps({"spec": "endpoint.yaml", "target": ["here"]})
    assert_protocol_failure(run_program(query, module_dir), "'target'", "array", "strings only")


def test_invalid_json_fails_with_one_line(module_dir: Path) -> None:
    assert_protocol_failure(run_program("{spec: endpoint.yaml", module_dir), "not JSON")


def test_a_missing_spec_file_fails_with_one_line(module_dir: Path) -> None:
    assert_protocol_failure(run_program(json.dumps({"spec": "nowhere.yaml"}), module_dir), "nowhere.yaml")


# ---- in-process: the query and the answer ------------------------------------------------------------------


def test_an_unknown_action_or_key_is_refused() -> None:
    with pytest.raises(QueryError, match="unknown action 'destroy'"):
        parse_query(json.dumps({"spec": "a.yaml", "action": "destroy"}))
    with pytest.raises(QueryError, match="unknown query key"):
        parse_query(json.dumps({"spec": "a.yaml", "region": "us-east-1"}))
    with pytest.raises(QueryError, match="one JSON object"):
        parse_query(json.dumps(["a.yaml"]))


def test_defaults_fill_target_and_action() -> None:
    assert parse_query('{"spec": "a.yaml"}') == {"spec": "a.yaml", "target": "", "action": "status"}


def test_a_deployed_state_flattens_to_strings_only() -> None:
    spec = spec_from_dict(
        {
            "name": "demo",
            "model": {"repository": "s3://m/x.tar.gz"},
            "variants": [{"name": "primary", "instance_type": "ml.m5.large"}],
            "targets": {
                "aws": {
                    "kind": "sagemaker",
                    "region": "us-east-1",
                    "role_arn": "arn:aws:iam::123456789012:role/x",
                    "bucket": "models",
                }
            },
        }
    )
    state = EndpointState(
        "demo",
        "aws",
        "sagemaker",
        EndpointStatus.IN_SERVICE,
        url="https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/demo/invocations",
        variants=(VariantState("primary", "ml.m5.large", 2, 1.0, "InService"),),
        spec_hash="abc123abc123",
        region="us-east-1",
        expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        extra={"arn": "arn:aws:sagemaker:…", "nested": {"not": "flat"}},
    )
    answer = state_result(spec.deployment(), state, hourly_cost=0.23)
    assert all(isinstance(value, str) for value in answer.values())
    assert answer["status"] == "IN_SERVICE" and answer["region"] == "us-east-1"
    assert answer["expires_at"] == "2030-01-02T03:04:05Z"
    assert answer["deployed_spec_hash"] == "abc123abc123"
    assert answer["hourly_cost"] == "0.23"
    assert json.loads(answer["variants"])[0]["instance_count"] == 2


def test_an_unknown_cost_is_an_empty_string_not_zero() -> None:
    spec = spec_from_dict(
        {"name": "demo", "model": {"repository": "s3://m/x.tar.gz"}, "variants": [{"name": "a"}]}
    )
    assert state_result(spec.deployment(), None, hourly_cost=None)["hourly_cost"] == ""


def test_the_example_module_uses_the_documented_pattern() -> None:
    main_tf = (REPOSITORY_ROOT / "examples" / "terraform" / "main.tf").read_text()
    for construct in (
        'data "external"',
        '"terraform_data"',
        "when        = destroy",
        "triggers_replace",
        "filesha256(",
        "path.module",
        '"terraform"]',
    ):
        assert construct in main_tf, construct
    assert (REPOSITORY_ROOT / "examples" / "terraform" / "README.md").is_file()


def test_third_party_logs_and_warnings_never_reach_stderr(
    module_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SDK that logs (as azure.identity does when DefaultAzureCredential finds nothing) leaves one line."""
    import io
    import logging
    import warnings

    from endpointkit import _api
    from endpointkit.errors import AuthError
    from endpointkit.terraform import run_external

    def noisy_status(*args: object, **kwargs: object) -> None:
        logger = logging.getLogger("azure.identity._credentials.chained")
        logger.warning("DefaultAzureCredential failed to retrieve a token.\nAttempted credentials:\n\t...")
        logging.getLogger("urllib3.connectionpool").error("Retrying after connection broken")
        warnings.warn("a deprecation inside an SDK", DeprecationWarning, stacklevel=1)
        print("an SDK printing on stderr", file=sys.stderr)
        raise AuthError("no Azure credential found", provider="aks", operation="read")

    # Outside pytest an unconfigured logger reaches stderr through logging.lastResort; pytest's own root handlers
    # would hide that, so one SDK logger skips them (propagate off, no handler) and another has a stream handler.
    monkeypatch.setattr(logging.getLogger("azure.identity"), "propagate", False)
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("urllib3").addHandler(handler)
    monkeypatch.setattr(_api, "status", noisy_status)
    monkeypatch.chdir(module_dir)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        code = run_external(
            io.StringIO(json.dumps({"spec": "endpoint.yaml", "target": "here"})), stdout, stderr
        )
    finally:
        logging.getLogger("urllib3").removeHandler(handler)
    assert code == 1
    assert stderr.getvalue() == "endpointkit terraform: no Azure credential found\n"
    assert capsys.readouterr().err == ""  # nothing on the process's own stderr either
    assert logging.getLogger("azure.identity").isEnabledFor(logging.WARNING)  # logging is back afterwards


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProvisionTimeout("endpoint tfdemo did not finish within 5m"), 3),
        (UnsupportedCapabilityError("target 'here' (local) cannot serve this spec"), 2),
        (FleetCancelled("interrupted"), 130),
    ],
)
def test_the_exit_code_is_the_one_the_cli_gives(
    error: Exception, code: int, module_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from endpointkit import _api
    from endpointkit.terraform import run_external

    def failing_status(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(_api, "status", failing_status)
    monkeypatch.chdir(module_dir)
    stderr = io.StringIO()
    query = io.StringIO(json.dumps({"spec": "endpoint.yaml", "target": "here"}))
    assert run_external(query, io.StringIO(), stderr) == code == exit_code(error)
    assert stderr.getvalue() == f"endpointkit terraform: {error}\n"
