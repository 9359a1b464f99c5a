"""``endpointkit invoke``: inputs from files, the batch dimension a batching model needs, human and JSON output,
and the exit code of every way a request can be bad.

The last tests run on the quickstart served by a real local tritonserver (one for the module).
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
from endpointkit.cli._invoke import _batched, _describe_response, _read_inputs
from endpointkit.payloads import InferResponse, Tensor, decode_request, encode_request
from tests.adapters.conftest import servers_under

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
SPEC = QUICKSTART / "endpoint.yaml"
SAMPLE = QUICKSTART / "sample.jpg"


@pytest.fixture(scope="module")
def ensemble() -> Any:
    """The quickstart ensemble as its config.pbtxt declares it: IMAGE UINT8 dims [-1], max_batch_size 8."""
    return _api.model_info(_api.resolve(SPEC, "local"))


# ---- the batch dimension ----------------------------------------------------------------------------------


def test_raw_bytes_get_the_batch_dimension_a_batching_model_needs(ensemble: Any) -> None:
    (image,) = _read_inputs([f"IMAGE={SAMPLE}"])
    assert np.asarray(image.data).shape == (SAMPLE.stat().st_size,)
    assert np.asarray(_batched(image, ensemble, force=False).data).shape == (1, SAMPLE.stat().st_size)


def test_an_input_that_already_has_its_batch_dimension_is_left_alone(ensemble: Any) -> None:
    image = Tensor("IMAGE", np.zeros((2, 100), dtype=np.uint8))
    assert _batched(image, ensemble, force=False) is image


def test_a_json_tensor_keeps_its_datatype_when_batched(ensemble: Any, tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    path.write_text(json.dumps({"data": [1, 2, 3], "datatype": "UINT8"}))
    (tensor,) = _read_inputs([f"IMAGE={path}"])
    batched = _batched(tensor, ensemble, force=False)
    assert np.asarray(batched.data).shape == (1, 3) and batched.datatype == "UINT8"


def test_a_model_that_does_not_batch_or_an_unknown_input_gets_nothing_added(ensemble: Any) -> None:
    other = Tensor("OTHER", np.zeros(4, dtype=np.uint8))
    image = Tensor("IMAGE", np.zeros(4, dtype=np.uint8))
    assert _batched(other, ensemble, force=False) is other
    assert _batched(image, None, force=False) is image


def test_batch_adds_the_dimension_when_the_config_cannot_be_read() -> None:
    image = Tensor("IMAGE", np.zeros(4, dtype=np.uint8))
    assert np.asarray(_batched(image, None, force=True).data).shape == (1, 4)


# ---- input files --------------------------------------------------------------------------------------------


def test_the_documented_json_object_form_is_one_tensor_of_its_datatype_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "pixels.json"
    path.write_text(json.dumps({"data": [1, 2, 3, 4, 5, 6], "datatype": "UINT8", "shape": [2, 3]}))
    tensors = _read_inputs([f"IMAGE={path}"])
    sent = decode_request(encode_request(tensors, binary=False).to_bytes())
    assert sent.inputs["IMAGE"].dtype == np.uint8
    assert sent.inputs["IMAGE"].tolist() == [[1, 2, 3], [4, 5, 6]]


def test_ragged_json_lists_are_bad_input_naming_the_input_and_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for content in ([[1, 2], [3]], {"data": [[1, 2], [3]], "datatype": "UINT8"}):
        path = tmp_path / "ragged.json"
        path.write_text(json.dumps(content))
        assert main(["invoke", str(SPEC), "--target", "local", "--input", f"IMAGE={path}"]) == 2
        error = capsys.readouterr().err
        assert "--input IMAGE" in error and str(path) in error and "ragged" in error


def test_the_same_input_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first.npy", tmp_path / "second.npy"
    np.save(first, np.zeros(3, dtype=np.uint8))
    np.save(second, np.ones(3, dtype=np.uint8))
    arguments = [
        "invoke",
        str(SPEC),
        "--target",
        "local",
        "--input",
        f"IMAGE={first}",
        "--input",
        f"IMAGE={second}",
    ]
    assert main(arguments) == 2
    assert f"--input IMAGE is given twice ({first} and {second})" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_a_usage_error(
    seconds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["invoke", str(SPEC), "--target", "local", "--input", f"IMAGE={SAMPLE}", "--timeout", seconds]
    assert main(arguments) == 2
    assert "argument --timeout" in capsys.readouterr().err


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


@pytest.fixture(scope="module")
def served_quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quickstart applied on the local target, its state in a folder of this module; destroyed after.

    One server for every test of the module: the invocations here do not change it.
    """
    state = tmp_path_factory.mktemp("invoke-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(state))
        assert main(["apply", str(SPEC), "--target", "local"]) == 0
        try:
            yield state
        finally:
            assert main(["destroy", str(SPEC), "--target", "local"]) == 0
            assert servers_under(state, program=None) == []


@pytest.mark.triton
def test_the_readme_invoke_command_works_on_the_quickstart(
    served_quickstart: Path, capsys: pytest.CaptureFixture[str]
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


@pytest.mark.triton
def test_an_image_in_the_documented_json_form_is_classified(
    served_quickstart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = np.fromfile(SAMPLE, dtype=np.uint8)
    path = tmp_path / "image.json"
    path.write_text(json.dumps({"data": image.tolist(), "datatype": "UINT8", "shape": [image.size]}))
    capsys.readouterr()
    assert main(["invoke", str(SPEC), "--target", "local", "--input", f"IMAGE={path}", "--classes", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "SCORES: BYTES [1, 1], top 1 classes"
    assert lines[2].split()[:2] == ["1.", "airplane"]


def _refused_inputs(folder: Path) -> dict[str, Path]:
    """Inputs the quickstart ensemble (IMAGE, UINT8, dims [-1], max_batch_size 8) refuses, one way each."""
    files = {
        "noise.bin": np.random.default_rng(7).integers(0, 256, 100, dtype=np.uint8),
        "floats.npy": np.zeros((1, 3), dtype=np.float32),
        "rank3.npy": np.zeros((1, 2, 3), dtype=np.uint8),
    }
    paths = {}
    for name, array in files.items():
        paths[name] = folder / name
        if name.endswith(".npy"):
            np.save(paths[name], array)
        else:
            array.tofile(paths[name])
    return paths


# Each way Triton answers 4xx to a request it cannot run: the CLI says bad input (exit 2) with Triton's words.
BAD_REQUESTS = {
    "an unknown input": (["--input", "PIXELS={sample}"], "unexpected inference input 'PIXELS'"),
    "an unknown output": (["--input", "IMAGE={sample}", "--output", "LOGITS"], "unexpected inference output"),
    "a wrong datatype": (
        ["--input", "IMAGE={floats.npy}"],
        "data-type is 'FP32', but model 'ensemble' expects",
    ),
    "a wrong shape": (["--input", "IMAGE={rank3.npy}"], "unexpected shape for input 'IMAGE'"),
    "bytes that are not an image": (["--input", "IMAGE={noise.bin}"], "IMAGE is not a readable image"),
    "an unknown model": (["--input", "IMAGE={sample}", "--model", "ensembel"], "unknown model: 'ensembel'"),
}


@pytest.mark.triton
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_request_triton_refuses_is_bad_input_with_tritons_message(
    case: str, served_quickstart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options, triton_says = BAD_REQUESTS[case]
    paths = {"sample": SAMPLE, **_refused_inputs(tmp_path)}
    arguments = [_fill(option, paths) for option in options]
    capsys.readouterr()
    assert main(["invoke", str(SPEC), "--target", "local", *arguments, "--json"]) == 2
    captured = capsys.readouterr()
    assert triton_says in captured.err
    assert json.loads(captured.out)["error"] == "InvalidRequestError"


def _fill(option: str, paths: dict[str, Path]) -> str:
    for name, path in paths.items():
        option = option.replace("{" + name + "}", str(path))
    return option
