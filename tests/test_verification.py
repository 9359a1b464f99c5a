"""The spec's ``verify`` checks: loading them (every file and name checked before any call), running them through
an invoke function, recording expectations, and the facade around them on the in-memory target.

A real tritonserver runs them in ``tests/test_cli_verify.py``; here ``invoke`` is a plain function.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.base import RawResponse
from endpointkit.adapters.memory import MemoryAdapter
from endpointkit.payloads import Tensor, decode_request, encode_response
from endpointkit.spec import Deployment, VerifyCheck, spec_from_dict
from endpointkit.verification import (
    Invoke,
    LoadedCheck,
    load_checks,
    p99,
    record_checks,
    run_checks,
    verify_hook,
)

SCORES = np.array([0.5, 0.25, 0.125], dtype=np.float32)

_SCORER_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: {batch}
input [ {{ name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1 ] }} ]
output [ {{ name: "SCORES" data_type: TYPE_FP32 dims: [ 3 ] }} ]
"""


def write_scorer(root: Path, name: str = "scorer", *, batch: int = 0) -> Path:
    """A one-model repository: ``IMAGE`` UINT8 [-1] in, ``SCORES`` FP32 [3] out (the model file is never run)."""
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(_SCORER_CONFIG.format(name=name, batch=batch))
    (root / name / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    return root


def make_deployment(
    folder: Path, checks: list[dict[str, Any]], *, repository: str = "./models"
) -> Deployment:
    """A spec in ``folder`` (its files relative to it) with the given verify checks, resolved for ``local``."""
    data = {
        "name": "verified",
        "model": {"repository": repository},
        "variants": [{"name": "primary"}],
        "verify": checks,
    }
    return spec_from_dict(data, base_dir=folder, check_repository=False).deployment("local")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A spec folder with the scorer repository, an image and the expected scores as .npy and .json."""
    write_scorer(tmp_path / "models")
    (tmp_path / "sample.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    np.save(tmp_path / "expected.npy", SCORES)
    (tmp_path / "expected.json").write_text(json.dumps(SCORES.tolist()))
    return tmp_path


def cat_check(**changes: Any) -> dict[str, Any]:
    return {
        "name": "cat",
        "inputs": {"IMAGE": "./sample.jpg"},
        "expect": {"SCORES": "./expected.npy"},
        **changes,
    }


def load_one(folder: Path, **changes: Any) -> LoadedCheck:
    (check,) = load_checks(make_deployment(folder, [cat_check(**changes)]))
    return check


def answering(outputs: Mapping[str, Any], calls: list[Sequence[Tensor]] | None = None) -> Invoke:
    """An invoke function that answers every request with ``outputs`` and records the tensors it was sent."""

    def invoke(tensors: Sequence[Tensor], model: str | None) -> Mapping[str, Any]:
        if calls is not None:
            calls.append(tensors)
        return {name: np.asarray(value) for name, value in outputs.items()}

    return invoke


# ---- loading: every file and name checked before any call -----------------------------------------------------


def test_inputs_and_expectations_are_read_relative_to_the_spec_file(folder: Path) -> None:
    check = load_one(folder)
    (image,) = check.inputs
    assert image.name == "IMAGE" and bytes(np.asarray(image.data)) == (folder / "sample.jpg").read_bytes()
    assert check.expected["SCORES"].tolist() == SCORES.tolist()
    assert check.expect_paths["SCORES"] == folder / "expected.npy" and check.field == "verify[0]"


def test_a_json_expectation_reads_like_a_npy_one(folder: Path) -> None:
    check = load_one(folder, expect={"SCORES": "./expected.json"})
    assert check.expected["SCORES"].tolist() == SCORES.tolist()


def test_a_missing_input_file_names_the_field_the_file_and_where_paths_start(folder: Path) -> None:
    with pytest.raises(ek.SpecError) as error:
        load_one(folder, inputs={"IMAGE": "./nowhere.jpg"})
    assert error.value.field == "verify[0].inputs.IMAGE"
    assert str(folder / "nowhere.jpg") in str(error.value)
    assert "relative to the spec file's folder" in str(error.value)


def test_an_unreadable_input_file_is_refused_with_the_reason(folder: Path) -> None:
    (folder / "ragged.json").write_text("[[1, 2], [3]]")
    with pytest.raises(ek.SpecError, match=r"verify\[0\]\.inputs\.IMAGE: .*ragged") as error:
        load_one(folder, inputs={"IMAGE": "./ragged.json"})
    assert error.value.field == "verify[0].inputs.IMAGE"


def test_a_missing_expect_file_says_how_to_record_it(folder: Path) -> None:
    with pytest.raises(ek.SpecError) as error:
        load_one(folder, expect={"SCORES": "./unrecorded.npy"})
    assert error.value.field == "verify[0].expect.SCORES"
    assert str(folder / "unrecorded.npy") in str(error.value) and "verify --record" in str(error.value)


def test_an_expect_file_that_is_neither_npy_nor_json_is_refused(folder: Path) -> None:
    (folder / "expected.txt").write_text("0.5 0.25 0.125")
    with pytest.raises(ek.SpecError, match="neither .npy nor .json") as error:
        load_one(folder, expect={"SCORES": "./expected.txt"})
    assert error.value.field == "verify[0].expect.SCORES"


def test_an_expectation_whose_shape_is_not_the_outputs_dims_is_refused(folder: Path) -> None:
    np.save(folder / "wrong.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ek.SpecError) as error:
        load_one(folder, expect={"SCORES": "./wrong.npy"})
    assert error.value.field == "verify[0].expect.SCORES"
    message = str(error.value)
    assert "shape [2, 2]" in message and "dims [3]" in message and str(folder / "wrong.npy") in message


def test_an_output_the_model_does_not_have_is_refused_with_its_outputs(folder: Path) -> None:
    with pytest.raises(ek.SpecError) as error:
        load_one(folder, expect={"SCORE": "./expected.npy"})
    assert error.value.field == "verify[0].expect.SCORE"
    assert "model 'scorer' has no output 'SCORE' (did you mean 'SCORES'?)" in str(error.value)


def test_an_input_the_model_does_not_have_is_refused(folder: Path) -> None:
    with pytest.raises(ek.SpecError) as error:
        load_one(folder, inputs={"IMAGES": "./sample.jpg"})
    assert error.value.field == "verify[0].inputs.IMAGES"
    assert "its inputs are: IMAGE" in str(error.value)


def test_a_model_not_in_the_repository_is_refused(folder: Path) -> None:
    with pytest.raises(ek.SpecError, match="'scorr' is not a model") as error:
        load_one(folder, model="scorr")
    assert error.value.field == "verify[0].model"


def test_names_are_not_checked_when_the_repository_is_in_cloud_storage(folder: Path) -> None:
    checks = [cat_check(expect={"ANYTHING": "./expected.npy"})]
    (check,) = load_checks(make_deployment(folder, checks, repository="s3://models/scorer.tar.gz"))
    assert list(check.expected) == ["ANYTHING"]


def test_a_batching_model_gets_the_batch_dimension_the_files_leave_out(tmp_path: Path) -> None:
    write_scorer(tmp_path / "models", batch=4)
    (tmp_path / "sample.jpg").write_bytes(b"12345")
    np.save(tmp_path / "expected.npy", SCORES)
    check = load_one(tmp_path)
    assert np.asarray(check.inputs[0].data).shape == (1, 5)
    assert check.expected["SCORES"].shape == (1, 3)


def test_a_python_check_that_cannot_be_imported_is_a_spec_error(folder: Path) -> None:
    checks = [{"name": "custom", "python": "no_such_package.checks:check"}]
    with pytest.raises(ek.SpecError, match="cannot import no_such_package.checks") as error:
        load_checks(make_deployment(folder, checks))
    assert error.value.field == "verify[0].python"


def test_a_python_check_is_imported_from_the_spec_files_folder(folder: Path) -> None:
    package = folder / "verify_checks_beside_spec"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "labels.py").write_text("def check(invoke):\n    return None\n")
    (check,) = load_checks(
        make_deployment(folder, [{"name": "custom", "python": f"{package.name}.labels:check"}])
    )
    assert check.function is not None and check.function.__name__ == "check"


def test_a_python_check_naming_a_missing_function_suggests_the_nearest(folder: Path) -> None:
    (folder / "verify_checks_misnamed.py").write_text("def check_labels(invoke):\n    return None\n")
    checks = [{"name": "custom", "python": "verify_checks_misnamed:check_label"}]
    with pytest.raises(ek.SpecError, match="did you mean 'check_labels'") as error:
        load_checks(make_deployment(folder, checks))
    assert error.value.field == "verify[0].python"


def test_a_spec_without_checks_loads_none_and_has_no_hook(folder: Path) -> None:
    deployment = make_deployment(folder, [])
    assert load_checks(deployment) == ()
    assert verify_hook(deployment, MemoryAdapter()) is None


def test_the_hook_loads_the_checks_when_it_is_made(folder: Path) -> None:
    deployment = make_deployment(folder, [cat_check(inputs={"IMAGE": "./nowhere.jpg"})])
    with pytest.raises(ek.SpecError, match="nowhere.jpg"):
        verify_hook(deployment, MemoryAdapter())


# ---- running ----------------------------------------------------------------------------------------------


def test_outputs_within_tolerance_pass_with_the_largest_difference(folder: Path) -> None:
    report = run_checks([load_one(folder)], answering({"SCORES": SCORES + 2**-20}), subject="endpoint v")
    (result,) = report.results
    assert report.passed and result.name == "cat" and result.passed
    assert "SCORES: largest difference 9.54e-07 (rtol 0.001, atol 1e-05)" in result.detail


def test_a_difference_beyond_tolerance_names_the_check_output_largest_difference_and_index(
    folder: Path,
) -> None:
    answer = SCORES.copy()
    answer[1] += 0.5
    answer[2] += 0.1
    with pytest.raises(ek.VerificationError) as failed:
        run_checks(
            [load_one(folder)], answering({"SCORES": answer}), subject="candidate of endpoint v on local"
        )
    error = failed.value
    assert (
        error.check == "cat"
        and error.output == "SCORES"
        and error.subject == "candidate of endpoint v on local"
    )
    message = str(error)
    assert message.startswith("check 'cat' failed on candidate of endpoint v on local: output SCORES")
    assert "2 of 3 elements out of tolerance; largest difference 0.5 at [1]" in message
    assert "got 0.75, expected 0.25" in message and "atol 1e-05 + rtol 0.001" in message
    assert error.detail in message


def test_a_wider_tolerance_lets_the_same_answer_pass(folder: Path) -> None:
    check = load_one(folder, rtol=0.0, atol=1.0)
    assert run_checks([check], answering({"SCORES": SCORES + 0.5}), subject="v").passed


def test_a_different_shape_or_kind_of_dtype_fails(folder: Path) -> None:
    with pytest.raises(ek.VerificationError, match=r"has shape \[1, 3\] where \[3\] was expected"):
        run_checks([load_one(folder)], answering({"SCORES": SCORES[np.newaxis]}), subject="v")
    with pytest.raises(ek.VerificationError, match=r"holds text \(object\) where numbers \(float32\)"):
        run_checks(
            [load_one(folder)], answering({"SCORES": np.array([b"a", b"b", b"c"], dtype=object)}), subject="v"
        )


def test_an_output_missing_from_the_answer_fails_naming_what_came(folder: Path) -> None:
    with pytest.raises(
        ek.VerificationError, match=r"output SCORES is not in the answer \(its outputs: LOGITS\)"
    ):
        run_checks([load_one(folder)], answering({"LOGITS": SCORES}), subject="v")


def test_the_first_failing_check_stops_the_run(folder: Path) -> None:
    deployment = make_deployment(folder, [cat_check(), cat_check(name="dog")])
    calls: list[Sequence[Tensor]] = []
    with pytest.raises(ek.VerificationError) as failed:
        run_checks(load_checks(deployment), answering({"SCORES": SCORES * 2}, calls), subject="v")
    assert failed.value.check == "cat" and len(calls) == 1


def test_latency_above_an_impossible_bound_fails_with_the_p99_seen(folder: Path) -> None:
    calls: list[Sequence[Tensor]] = []
    check = load_one(folder, expect={}, repeat=5, max_p99=1e-9)
    with pytest.raises(ek.VerificationError) as failed:
        run_checks([check], answering({"SCORES": SCORES}, calls), subject="v")
    assert len(calls) == 5 and failed.value.output is None
    assert "over 5 calls is above max_p99 1 ns" in str(failed.value) and "p99 " in failed.value.detail


def test_latency_under_a_generous_bound_passes_with_the_p99_seen(folder: Path) -> None:
    calls: list[Sequence[Tensor]] = []
    check = load_one(folder, repeat=3, max_p99="1h")
    (result,) = run_checks([check], answering({"SCORES": SCORES}, calls), subject="v").results
    assert len(calls) == 3 and result.passed
    assert (
        "over 3 calls (max_p99 3600 s)" in result.detail and "SCORES: largest difference 0" in result.detail
    )


def test_p99_is_the_nearest_rank() -> None:
    assert p99([float(value) for value in range(1, 101)]) == 99.0
    assert p99([float(value) for value in range(50, 0, -1)]) == 50.0
    assert p99([0.25]) == 0.25


def test_a_python_check_gets_an_invoke_of_arrays_or_tensors_by_name(folder: Path) -> None:
    seen: list[dict[str, Any]] = []

    def check(invoke: Any) -> None:
        seen.append(invoke({"IMAGE": np.zeros(3, dtype=np.uint8)}))
        seen.append(invoke({"IMAGE": Tensor("IMAGE", np.zeros(2, dtype=np.uint8), datatype="UINT8")}))

    loaded = _python_check(folder, check)
    calls: list[Sequence[Tensor]] = []
    (result,) = run_checks([loaded], answering({"SCORES": SCORES}, calls), subject="v").results
    assert result.passed and [list(answer) for answer in seen] == [["SCORES"], ["SCORES"]]
    assert [tensor.name for tensors in calls for tensor in tensors] == ["IMAGE", "IMAGE"]
    assert calls[1][0].datatype == "UINT8"


def test_a_python_check_that_raises_fails_with_its_own_message(folder: Path) -> None:
    def check(invoke: Any) -> None:
        raise AssertionError("label 281 expected, got 282")

    with pytest.raises(ek.VerificationError) as failed:
        run_checks([_python_check(folder, check)], answering({}), subject="v")
    assert failed.value.check == "custom"
    assert "checks:function raised AssertionError: label 281 expected, got 282" in str(failed.value)


def test_a_python_check_that_returns_false_fails(folder: Path) -> None:
    with pytest.raises(ek.VerificationError, match="returned False"):
        run_checks([_python_check(folder, lambda invoke: False)], answering({}), subject="v")


def test_a_request_that_fails_inside_a_python_check_is_not_the_checks_verdict(folder: Path) -> None:
    def refused(tensors: Sequence[Tensor], model: str | None) -> Mapping[str, Any]:
        raise ek.InvalidRequestError("unexpected inference input 'IMAGE'")

    def check(invoke: Any) -> None:
        invoke({"IMAGE": np.zeros(1, dtype=np.uint8)})

    with pytest.raises(ek.InvalidRequestError):
        run_checks([_python_check(folder, check)], refused, subject="v")


def test_progress_hears_once_per_check_as_it_ends(folder: Path) -> None:
    events: list[ek.ProgressEvent] = []
    deployment = make_deployment(folder, [cat_check(), cat_check(name="dog")])
    run_checks(load_checks(deployment), answering({"SCORES": SCORES}), subject="v", progress=events.append)
    assert [event.subject for event in events] == ["v: check cat", "v: check dog"]
    assert all(event.status.startswith("passed: SCORES: largest difference") for event in events)


def _python_check(folder: Path, function: Any) -> LoadedCheck:
    """A loaded ``python:`` check that calls ``function`` (as if imported from the spec's folder)."""
    return LoadedCheck(0, VerifyCheck(name="custom", python="checks:function"), (), {}, {}, function)


# ---- recording --------------------------------------------------------------------------------------------


def test_recording_writes_npy_and_json_expectations_that_then_pass(folder: Path) -> None:
    checks = [
        cat_check(expect={"SCORES": "./recorded/scores.npy"}),
        cat_check(name="as-json", expect={"SCORES": "./recorded/scores.json"}),
        {"name": "latency", "inputs": {"IMAGE": "./sample.jpg"}, "max_p99": "1h"},
    ]
    deployment = make_deployment(folder, checks)
    report = record_checks(
        load_checks(deployment, read_expectations=False), answering({"SCORES": SCORES}), subject="v"
    )
    assert report.written == (folder / "recorded" / "scores.npy", folder / "recorded" / "scores.json")
    assert [result.name for result in report.results] == ["cat", "as-json"]
    assert np.load(folder / "recorded" / "scores.npy").dtype == np.float32
    assert json.loads((folder / "recorded" / "scores.json").read_text()) == SCORES.tolist()
    assert run_checks(load_checks(deployment), answering({"SCORES": SCORES}), subject="v").passed


def test_text_outputs_are_recorded_so_that_they_load_without_pickle(folder: Path) -> None:
    labels = np.array([b"tabby", b"tiger", "\u00e9clair".encode()], dtype=object)
    checks = [
        {"name": "npy", "inputs": {"IMAGE": "./sample.jpg"}, "expect": {"LABELS": "./labels.npy"}},
        {"name": "json", "inputs": {"IMAGE": "./sample.jpg"}, "expect": {"LABELS": "./labels.json"}},
    ]
    deployment = make_deployment(folder, checks, repository="s3://models/labeller.tar.gz")
    record_checks(
        load_checks(deployment, read_expectations=False), answering({"LABELS": labels}), subject="v"
    )
    assert json.loads((folder / "labels.json").read_text()) == ["tabby", "tiger", "\u00e9clair"]
    assert run_checks(load_checks(deployment), answering({"LABELS": labels}), subject="v").passed
    with pytest.raises(ek.VerificationError, match=r"first at \[1\] \(got b'lion', expected b'tiger'\)"):
        changed = labels.copy()
        changed[1] = b"lion"
        run_checks(load_checks(deployment), answering({"LABELS": changed}), subject="v")


def test_recording_refuses_nan_in_a_json_file(folder: Path) -> None:
    deployment = make_deployment(folder, [cat_check(expect={"SCORES": "./nan.json"})])
    with pytest.raises(ek.SpecError, match="NaN or infinity.*name a .npy file"):
        record_checks(
            load_checks(deployment, read_expectations=False),
            answering({"SCORES": np.array([np.nan, 0, 0], dtype=np.float32)}),
            subject="v",
        )
    assert not (folder / "nan.json").exists()


# ---- the facade, on the in-memory target ------------------------------------------------------------------


def _scorer(body: bytes, headers: Mapping[str, str]) -> RawResponse:
    """A memory target's model: SCORES from any IMAGE; an unknown input refused the way Triton refuses it."""
    request = decode_request(body, headers)
    if set(request.inputs) != {"IMAGE"}:
        return RawResponse(
            400, {"Content-Type": "application/json"}, b'{"error": "unexpected inference input"}'
        )
    encoded = encode_response({"SCORES": SCORES}, model_name="scorer")
    return RawResponse(200, dict(encoded.headers), encoded.to_bytes())


def test_verify_runs_the_checks_against_the_serving_endpoint(folder: Path) -> None:
    deployment = make_deployment(folder, [cat_check()])
    adapter = MemoryAdapter(target_name="local", responder=_scorer)
    ek.apply(deployment, adapter=adapter)
    report = ek.verify(deployment, adapter=adapter)
    assert isinstance(report, ek.VerificationReport)
    assert report.subject == "endpoint verified on local" and [r.name for r in report.results] == ["cat"]
    assert report.to_dict()["checks"][0]["passed"] is True


def test_verify_records_through_the_facade(folder: Path) -> None:
    deployment = make_deployment(folder, [cat_check(expect={"SCORES": "./fresh.json"})])
    adapter = MemoryAdapter(target_name="local", responder=_scorer)
    with pytest.raises(ek.SpecError, match=r"fresh\.json.*record it"):
        ek.apply(deployment, adapter=adapter)  # the expectation is missing: nothing is created
    assert adapter.mutating_calls == []
    ek.apply(deployment, adapter=adapter, record_checks=True)  # the first version becomes the reference
    assert json.loads((folder / "fresh.json").read_text()) == SCORES.tolist()
    (folder / "fresh.json").unlink()
    report = ek.verify(deployment, record=True, adapter=adapter)
    assert report.written == (folder / "fresh.json",)
    assert json.loads((folder / "fresh.json").read_text()) == SCORES.tolist()


def test_verify_refuses_an_endpoint_that_is_not_serving(folder: Path) -> None:
    with pytest.raises(ek.NotFoundError, match="is NOT_FOUND: verify checks a serving endpoint"):
        ek.verify(make_deployment(folder, [cat_check()]), adapter=MemoryAdapter(target_name="local"))


def test_verify_refuses_a_spec_without_checks(folder: Path) -> None:
    with pytest.raises(ek.SpecError, match="has no verify checks") as error:
        ek.verify(make_deployment(folder, []), adapter=MemoryAdapter(target_name="local"))
    assert error.value.field == "verify"


def test_the_hook_maps_a_refused_request_like_invoke_endpoint(folder: Path) -> None:
    (folder / "other.json").write_text("[1, 2]")
    deployment = make_deployment(
        folder,
        [{"name": "odd", "inputs": {"OTHER": "./other.json"}, "max_p99": "1h"}],
        repository="s3://models/wide.tar.gz",
    )
    adapter = MemoryAdapter(target_name="local", responder=_scorer)
    with pytest.raises(ek.InvalidRequestError, match="answered 400: unexpected inference input"):
        ek.apply(deployment, adapter=adapter)  # the new endpoint fails its check: it is removed again
    assert adapter.cloud.resources["endpoint"] == {}
    state = ek.apply(make_deployment(folder, [], repository="s3://models/wide.tar.gz"), adapter=adapter)
    hook = verify_hook(deployment, adapter)
    assert hook is not None
    with pytest.raises(ek.InvalidRequestError, match="answered 400: unexpected inference input"):
        hook(state)


def test_a_python_check_module_written_as_a_file_next_to_the_spec(folder: Path) -> None:
    (folder / "verify_checks_top.py").write_text(
        textwrap.dedent(
            """
            def check_scores(invoke):
                scores = invoke({"IMAGE": b"x"})["SCORES"]
                assert scores.argmax() == 0, f"top class {scores.argmax()}"
            """
        )
    )
    deployment = make_deployment(folder, [{"name": "custom", "python": "verify_checks_top:check_scores"}])
    adapter = MemoryAdapter(target_name="local", responder=_scorer)
    ek.apply(deployment, adapter=adapter)
    (result,) = ek.verify(deployment, adapter=adapter).results
    assert result.passed and result.detail == "verify_checks_top:check_scores passed"
