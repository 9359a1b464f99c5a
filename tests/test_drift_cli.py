"""``plan --detailed-exitcode`` (Terraform's convention) and the Terraform hook's drift keys, without a target."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from endpointkit.cli import main
from endpointkit.terraform import run_external
from tests.adapters.sagemaker_fixtures import write_echo_repository


def _spec_file(tmp_path: Path, name: str = "cli-drift", **extra: object) -> Path:
    write_echo_repository(tmp_path / "repo")
    spec = {
        "name": name,
        "model": {"repository": str(tmp_path / "repo")},
        "variants": [{"name": "primary"}],
        "targets": {"local": {"kind": "local", "state_dir": str(tmp_path / "state")}},
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_detailed_exitcode_is_2_when_the_plan_has_changes(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path)
    assert main(["plan", str(spec), "--dry-run"]) == 0
    assert main(["plan", str(spec), "--dry-run", "--detailed-exitcode"]) == 2


def test_bad_input_under_detailed_exitcode_is_1_not_2(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, unknown_key=True)
    assert main(["plan", str(spec)]) == 2
    assert main(["plan", str(spec), "--detailed-exitcode"]) == 1
    assert main(["plan", str(spec), "--detailed-exitcode", "--no-such-option"]) == 1


def test_a_fleet_is_1_if_any_failed_else_2_if_any_has_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _spec_file(tmp_path, "good")
    other = _spec_file(tmp_path, "other")
    bad = _spec_file(tmp_path, "bad", unknown_key=True)
    assert main(["plan", str(good), str(other), "--dry-run", "--detailed-exitcode"]) == 2
    capsys.readouterr()
    assert main(["plan", str(good), str(bad), "--dry-run", "--detailed-exitcode", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["exit_code"] == 1


def test_terraform_status_reports_no_drift_for_an_endpoint_not_deployed(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path)
    stdin = io.StringIO(json.dumps({"spec": str(spec)}))
    stdout, stderr = io.StringIO(), io.StringIO()

    assert run_external(stdin, stdout, stderr) == 0, stderr.getvalue()

    result = json.loads(stdout.getvalue())
    assert (result["status"], result["drift"], json.loads(result["drift_fields"])) == (
        "NOT_FOUND",
        "false",
        [],
    )
