"""``endpointkit verify`` against a real local tritonserver: record the expectations, pass, fail on an edited one.

One server for the module (a Python-backend model that doubles ``INPUT0``), destroyed at the end.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit import adapters
from endpointkit.cli import main
from endpointkit.verification import verify_hook
from tests.adapters.conftest import servers_under

INPUT = np.array([1.0, 2.5, -3.0, 4.0], dtype=np.float32)

_CONFIG = """\
name: "doubler"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

_MODEL = textwrap.dedent(
    """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data * 2)]))
            return responses
    """
)

_SPEC = """\
name: verify-cli
model: {{repository: ./models}}
variants: [{{name: primary}}]
timeouts: {{create: 120s, update: 120s, delete: 60s}}
targets: {{local: {{kind: local, state_dir: "{state}"}}}}
verify:
  - name: doubles
    inputs: {{INPUT0: ./input.json}}
    expect: {{OUTPUT0: ./expected/doubled.npy}}
  - name: as-json
    inputs: {{INPUT0: ./input.npy}}
    expect: {{OUTPUT0: ./expected/doubled.json}}
    rtol: 0
    atol: 0
  - name: latency
    inputs: {{INPUT0: ./input.json}}
    repeat: 5
    max_p99: 1h
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The spec file of the doubler, applied on the local target with ``ek.apply``; destroyed after the module."""
    folder = tmp_path_factory.mktemp("verify-cli")
    (folder / "models" / "doubler" / "1").mkdir(parents=True)
    (folder / "models" / "doubler" / "config.pbtxt").write_text(_CONFIG)
    (folder / "models" / "doubler" / "1" / "model.py").write_text(_MODEL)
    write_inputs(folder)
    state = folder / "state"
    spec = folder / "endpoint.yaml"
    spec.write_text(_SPEC.format(state=state))
    (folder / "expected").mkdir()
    ek.apply(spec, target="local", record_checks=True)  # the first version is the reference: it writes them
    assert np.load(folder / "expected" / "doubled.npy").tolist() == (INPUT * 2).tolist()
    try:
        yield spec
    finally:
        ek.destroy(spec, target="local")
        assert servers_under(state, program=None) == []


def write_inputs(folder: Path) -> None:
    """The input as JSON (a JSON list alone would be FP64: the documented object form says FP32) and as .npy."""
    document = {"data": INPUT.tolist(), "datatype": "FP32"}
    (folder / "input.json").write_text(json.dumps(document))
    np.save(folder / "input.npy", INPUT)


def write_expectations(spec: Path, doubled: np.ndarray[Any, Any]) -> None:
    """Both expectation files of ``spec``: ``doubled`` as .npy, the true answer as .json."""
    folder = expectations(spec)
    np.save(folder / "doubled.npy", doubled)
    (folder / "doubled.json").write_text(json.dumps((INPUT * 2).tolist()))


def expectations(spec: Path) -> Path:
    """The expectation folder of ``spec``, emptied."""
    folder = spec.parent / "expected"
    folder.mkdir(exist_ok=True)
    for path in folder.glob("*"):
        path.unlink()
    return folder


@pytest.mark.triton
def test_record_writes_what_the_endpoint_answers_then_verify_passes(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = expectations(served)
    capsys.readouterr()
    assert main(["verify", str(served), "--record"]) == 0
    recorded = capsys.readouterr().out
    assert f"doubles  recorded  OUTPUT0 -> {folder / 'doubled.npy'}" in recorded
    assert "recorded 2 checks from endpoint verify-cli on local: 2 files written" in recorded
    assert np.load(folder / "doubled.npy").tolist() == (INPUT * 2).tolist()
    assert json.loads((folder / "doubled.json").read_text()) == (INPUT * 2).tolist()

    assert main(["verify", str(served)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("doubles  passed  OUTPUT0: largest difference 0")
    assert lines[1].startswith("as-json  passed  OUTPUT0: largest difference 0")
    assert lines[2].startswith("latency  passed  p99 ") and "over 5 calls (max_p99 3600 s)" in lines[2]
    assert lines[3].startswith("3 checks passed on endpoint verify-cli on local in ")


@pytest.mark.triton
def test_an_edited_expectation_fails_naming_the_check_and_the_largest_difference(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = INPUT * 2
    edited[2] += 0.5
    write_expectations(served, edited)
    capsys.readouterr()
    assert main(["verify", str(served)]) == 1
    captured = capsys.readouterr()
    assert "traceback" not in captured.err.lower()
    assert captured.out.startswith("doubles  failed  1 of 4 elements out of tolerance")
    assert (
        "endpointkit: error: check 'doubles' failed on endpoint verify-cli on local: output OUTPUT0 1 of 4 "
        "elements out of tolerance; largest difference 0.5 at [2] (got -6, expected -5.5;"
    ) in captured.err


@pytest.mark.triton
def test_the_json_report_lists_every_check(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_expectations(served, INPUT * 2)
    capsys.readouterr()
    assert main(["verify", str(served), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is True and document["subject"] == "endpoint verify-cli on local"
    assert [check["name"] for check in document["checks"]] == ["doubles", "as-json", "latency"]


@pytest.mark.triton
def test_the_hook_a_rollout_calls_passes_on_the_serving_version(served: Path) -> None:
    write_expectations(served, INPUT * 2)
    deployment = ek.load_spec(served).deployment("local")
    state = ek.status(served, "local")
    assert state is not None
    adapter = adapters.create_adapter(deployment)
    try:
        hook = verify_hook(deployment, adapter)
        assert hook is not None
        hook(state)
        write_expectations(served, INPUT * 3)
        reloaded = verify_hook(deployment, adapter)  # the checks' files are read when a hook is made
        assert reloaded is not None
        with pytest.raises(ek.VerificationError, match="failed on candidate of endpoint verify-cli on local"):
            reloaded(state)
    finally:
        adapter.close()


@pytest.mark.triton
def test_a_missing_file_is_bad_input_before_the_endpoint_is_called(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_expectations(served, INPUT * 2)
    broken = served.with_name("broken.yaml")
    broken.write_text(served.read_text().replace("./input.npy", "./missing.npy"))
    capsys.readouterr()
    assert main(["verify", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "verify[1].inputs.INPUT0" in error and str(served.parent / "missing.npy") in error
    assert "traceback" not in error.lower()


def test_verify_of_an_endpoint_that_does_not_exist_says_to_apply_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models" / "doubler" / "1").mkdir(parents=True)
    (tmp_path / "models" / "doubler" / "config.pbtxt").write_text(_CONFIG)
    (tmp_path / "models" / "doubler" / "1" / "model.py").write_text(_MODEL)
    write_inputs(tmp_path)
    spec = tmp_path / "endpoint.yaml"
    spec.write_text(_SPEC.format(state=tmp_path / "state"))
    assert main(["verify", str(spec), "--record"]) == 1
    assert (
        "is NOT_FOUND: verify checks a serving endpoint; run `endpointkit apply` first"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda text: text, "verify[0].expect.OUTPUT0"),  # the expectation was never recorded
        (
            lambda text: text.replace(
                "expect: {OUTPUT0: ./expected/doubled.npy}", "expect: {SCORES: ./x.npy}"
            ),
            "verify[0].expect.SCORES",
        ),
        (
            lambda text: text.replace("name: latency", "name: latency\n    python: no_such_module:check"),
            "verify[2].python",
        ),
        (lambda text: text + "rollout: {canary: {step: 0%}}\n", "rollout.canary.step"),
    ],
    ids=["missing-expectation", "unknown-output", "python-not-importable", "step-out-of-range"],
)
def test_validate_names_a_bad_check_and_exits_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, named: str
) -> None:
    (tmp_path / "models" / "doubler" / "1").mkdir(parents=True)
    (tmp_path / "models" / "doubler" / "config.pbtxt").write_text(_CONFIG)
    (tmp_path / "models" / "doubler" / "1" / "model.py").write_text(_MODEL)
    write_inputs(tmp_path)
    spec = tmp_path / "endpoint.yaml"
    spec.write_text(edit(_SPEC.format(state=tmp_path / "state")))
    if named != "verify[0].expect.OUTPUT0":
        write_expectations(spec, INPUT * 2)
    assert main(["validate", str(spec)]) == 2
    error = capsys.readouterr().err
    assert named in error and "traceback" not in error.lower()
    assert not (tmp_path / "state").exists()  # nothing started
