"""``endpointkit invoke``: inputs from files, the batch dimension a batching model needs, human and JSON output.

The last test is the README's shell quickstart on a real local tritonserver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit import _api
from endpointkit.cli import main
from endpointkit.cli._invoke import _batched, _describe_response, _model_info, _read_input
from endpointkit.payloads import InferResponse, Tensor
from tests.adapters.conftest import servers_under

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
SPEC = QUICKSTART / "endpoint.yaml"
SAMPLE = QUICKSTART / "sample.jpg"


@pytest.fixture(scope="module")
def ensemble() -> Any:
    """The quickstart ensemble as its config.pbtxt declares it: IMAGE UINT8 dims [-1], max_batch_size 8."""
    return _model_info(_api.resolve(SPEC, "local"), None)


# ---- the batch dimension ----------------------------------------------------------------------------------


def test_raw_bytes_get_the_batch_dimension_a_batching_model_needs(ensemble: Any) -> None:
    name, image = _read_input(f"IMAGE={SAMPLE}")
    assert image.shape == (SAMPLE.stat().st_size,)
    assert _batched(name, image, ensemble, force=False).shape == (1, SAMPLE.stat().st_size)


def test_an_input_that_already_has_its_batch_dimension_is_left_alone(ensemble: Any) -> None:
    image = np.zeros((2, 100), dtype=np.uint8)
    assert _batched("IMAGE", image, ensemble, force=False) is image


def test_a_json_tensor_keeps_its_datatype_when_batched(ensemble: Any, tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    path.write_text(json.dumps({"data": [1, 2, 3], "datatype": "UINT8"}))
    name, tensor = _read_input(f"IMAGE={path}")
    batched = _batched(name, tensor, ensemble, force=False)
    assert isinstance(batched, Tensor)
    assert np.asarray(batched.data).shape == (1, 3) and batched.datatype == "UINT8"


def test_a_model_that_does_not_batch_or_an_unknown_input_gets_nothing_added(ensemble: Any) -> None:
    vector = np.zeros(4, dtype=np.uint8)
    assert _batched("OTHER", vector, ensemble, force=False) is vector
    assert _batched("IMAGE", vector, None, force=False) is vector


def test_batch_adds_the_dimension_when_the_config_cannot_be_read() -> None:
    assert _batched("IMAGE", np.zeros(4, dtype=np.uint8), None, force=True).shape == (1, 4)


# ---- what it prints -----------------------------------------------------------------------------------------


def test_outputs_are_shown_with_name_datatype_shape_and_values() -> None:
    response = InferResponse(
        {"SCORES": np.array([[0.25, 0.75]], dtype=np.float32)}, "ensemble", "1", datatypes={"SCORES": "FP32"}
    )
    assert _describe_response(response, []).splitlines() == [
        "ensemble version 1: 1 output(s)",
        "SCORES: FP32 [1, 2]",
        "  [[0.25 0.75]]",
    ]


def test_a_big_tensor_is_summarised_not_dumped() -> None:
    array = np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32)
    text = _describe_response(InferResponse({"OUT": array}, "m", "1", datatypes={"OUT": "FP32"}), [])
    lines = text.splitlines()
    assert lines[1] == "OUT: FP32 [1, 3, 32, 32]"
    assert lines[2] == "  3072 values: min 0, max 3071, mean 1536"
    assert lines[3].startswith("  [0. 1. 2.") and lines[3].endswith("3070. 3071.] (flattened)")
    assert len(lines) == 4


def test_classification_outputs_read_as_ranked_labels() -> None:
    scores = np.array([[b"0.716185:0:airplane", b"0.125340:5:dog", b"0.094135:3"]], dtype=object)
    text = _describe_response(InferResponse({"SCORES": scores}, "ensemble", "1"), ["SCORES"])
    assert text.splitlines()[1:] == [
        "SCORES: object [1, 3], top 3 classes",
        "  1. airplane  0.7162  (class 0)",
        "  2. dog       0.1253  (class 5)",
        "  3. class 3   0.0941",
    ]


def test_bytes_outputs_are_text_cut_short_or_a_byte_count() -> None:
    values = np.array([b"ok", b"\xff\xfe", b"x" * 100], dtype=object)
    text = _describe_response(InferResponse({"TEXT": values}, "m", "", datatypes={"TEXT": "BYTES"}), [])
    assert text.splitlines()[2] == "  ['ok' <2 bytes> '" + "x" * 48 + "…']"


# ---- end to end on a real tritonserver ----------------------------------------------------------------------


@pytest.fixture
def quickstart_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The quickstart applied on the local target with its state under the test's folder; destroyed after."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert main(["apply", str(SPEC), "--target", "local"]) == 0
    try:
        yield tmp_path / "xdg"
    finally:
        assert main(["destroy", str(SPEC), "--target", "local"]) == 0
        assert servers_under(tmp_path / "xdg", program=None) == []


@pytest.mark.triton
def test_the_readme_invoke_command_works_on_the_quickstart(
    quickstart_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # exactly the README's command line, run from the repository's folder
    arguments = ["invoke", "examples/quickstart/endpoint.yaml", "--target", "local"]
    arguments += ["--input", "IMAGE=examples/quickstart/sample.jpg"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(QUICKSTART.parents[1])
        assert main(arguments) == 0
        plain = capsys.readouterr().out.splitlines()
        assert main([*arguments, "--classes", "3"]) == 0
        ranked = capsys.readouterr().out.splitlines()
        assert main([*arguments, "--classes", "1", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
    assert plain[:2] == ["ensemble version 1: 1 output(s)", "SCORES: FP32 [1, 10]"]
    assert ranked[1] == "SCORES: BYTES [1, 3], top 3 classes"
    assert ranked[2].split()[:2] == ["1.", "airplane"]
    assert document["outputs"]["SCORES"]["classes"][0]["label"] == "airplane"
