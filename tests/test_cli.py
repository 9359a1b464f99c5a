"""The CLI as a user runs it: exit codes, messages without tracebacks, JSON documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from endpointkit.cli import main

SPEC = """\
name: clidemo
model: {repository: "s3://models/demo/model.tar.gz"}
variants: [{name: primary}]
targets:
  local: {kind: local}
  aws: {kind: sagemaker, region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/x", bucket: models,
        variants: {primary: {instance_type: ml.m5.large}}}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "endpoint.yaml"
    path.write_text(SPEC)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "endpointkit", *args], capture_output=True, text=True, timeout=60, check=False
    )


QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "endpoint.yaml"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(QUICKSTART)]) == 0
    assert "valid (local, aws, azure)" in capsys.readouterr().out


def test_validate_runs_the_targets_own_checks(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(spec_file), "--target", "aws"]) == 0
    capsys.readouterr()
    # the local target cannot read a model repository in S3: plan would say so, and now validate does too
    assert main(["validate", str(spec_file)]) == 2
    assert "local target does not read" in capsys.readouterr().err


def test_validate_catches_an_instance_type_sagemaker_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("botocore")
    path = tmp_path / "typo.yaml"
    path.write_text(SPEC.replace("ml.m5.large", "ml.g4dn.hugexlarge"))
    assert main(["validate", str(path), "--target", "aws", "--json"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["error"] == "SpecError"
    assert document["field"] == "targets.aws.variants.primary.instance_type"
    assert "ml.g4dn.hugexlarge" in captured.err and "nearest valid types: ml.g4dn.xlarge" in captured.err


def test_validate_says_which_checks_a_missing_extra_skipped(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from endpointkit import adapters

    entry = adapters.AdapterEntry("endpointkit_not_installed.sagemaker:SageMakerAdapter", "sagemaker")
    monkeypatch.setitem(adapters._REGISTRY, "sagemaker", entry)
    assert main(["validate", str(spec_file), "--target", "aws"]) == 0
    out = capsys.readouterr().out
    assert "valid (aws)" in out
    assert "sagemaker checks skipped" in out and "pip install 'endpointkit[sagemaker]'" in out
    assert main(["validate", str(spec_file), "--target", "aws", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["checks"] == {"aws": "skipped"} and "endpointkit[sagemaker]" in document["skipped"]["aws"]


def test_bad_spec_exits_2_with_the_field_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: demo\nmodel: {repository: r}\nvariants: [{name: a, instanse_type: x}]\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert "variants[0].instanse_type" in result.stderr
    assert "did you mean 'instance_type'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_target_exits_2(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(spec_file), "--target", "gcp", "--dry-run"]) == 2
    assert "unknown target 'gcp'" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_dry_run_plan_json(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(spec_file), "--target", "aws", "--dry-run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [change["action"] for change in document["changes"]] == ["create", "create", "create"]
    assert {change["resource"] for change in document["changes"]} == {"model", "endpoint_config", "endpoint"}


def test_dry_run_apply_prints_state(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(spec_file), "--target", "aws", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "IN_SERVICE"


def test_json_error_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.yaml"), "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"] == "SpecError"


def test_a_usage_error_of_a_json_run_prints_the_json_error(
    spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(spec_file), "--json", "--parallel", "0"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document == {"error": "UsageError", "message": "argument --parallel: must be at least 1"}
    assert "usage:" in captured.err


def test_an_unknown_option_of_a_json_run_prints_the_json_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json", "--colour"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "UsageError"


def test_json_after_a_double_dash_is_not_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--", "--json"]) == 2
    assert capsys.readouterr().out == ""


def test_invoke_needs_an_input(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", str(spec_file), "--target", "local"]) == 2
    assert "--input" in capsys.readouterr().err


def test_invoke_input_must_be_name_equals_file(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", str(spec_file), "--target", "local", "--input", "IMAGE"]) == 2
    assert "NAME=FILE" in capsys.readouterr().err


# ---- cost, ttl and the commands added with them -------------------------------------------------------------

PRICED = SPEC.replace("name: clidemo", "name: clidemo\nttl: 2h")
UNPRICED = SPEC.replace("ml.m5.large", "ml.inf2.xlarge")


@pytest.fixture
def priced_spec(tmp_path: Path) -> Path:
    path = tmp_path / "priced.yaml"
    path.write_text(PRICED)
    return path


def test_plan_json_carries_the_hourly_cost_and_the_price_table(
    priced_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(priced_spec), "--target", "aws", "--dry-run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["hourly_cost"] == pytest.approx(0.115)
    assert document["costs"]["prices"]["region"] == "us-east-1"
    assert document["costs"]["prices"]["as_of"] and document["costs"]["prices"]["sources"]


def test_plan_text_shows_the_cost_its_date_and_sources(
    priced_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(priced_spec), "--target", "aws", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "$0.115/h" in out and "as of 20" in out and "https://aws.amazon.com/sagemaker/pricing/" in out


def test_apply_refuses_a_plan_above_the_cost_limit(
    priced_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["apply", str(priced_spec), "--target", "aws", "--dry-run", "--max-hourly-cost", "0.10", "--json"]
    )
    assert code == 2
    captured = capsys.readouterr()
    assert "$0.115/h" in captured.err and "$0.1/h" in captured.err
    document = json.loads(captured.out)
    assert document["error"] == "CostLimitExceeded"
    assert document["estimate"] == pytest.approx(0.115) and document["limit"] == pytest.approx(0.10)


def test_apply_refuses_an_unknown_cost_when_a_limit_is_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unpriced.yaml"
    path.write_text(UNPRICED)
    assert main(["apply", str(path), "--target", "aws", "--dry-run", "--max-hourly-cost", "1000"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_apply_under_the_cost_limit_goes_ahead(priced_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(priced_spec), "--target", "aws", "--dry-run", "--max-hourly-cost", "1"]) == 0
    assert "IN_SERVICE" in capsys.readouterr().out


def test_a_negative_cost_limit_is_a_usage_error(
    priced_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", str(priced_spec), "--dry-run", "--max-hourly-cost", "-1"]) == 2
    assert "zero or more" in capsys.readouterr().err


def test_the_state_shows_the_time_left_before_the_ttl(
    priced_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", str(priced_spec), "--target", "aws", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "expires in 1h59m" in out or "expires in 2h00m" in out


@pytest.mark.parametrize(
    "command", ["validate", "plan", "apply", "status", "destroy", "invoke", "reap", "terraform"]
)
def test_every_command_has_json(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--json" in capsys.readouterr().out


def test_fleet_commands_document_parallel(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["apply", "--help"])
    text = capsys.readouterr().out
    assert "--parallel N" in text and "--max-hourly-cost USD" in text
