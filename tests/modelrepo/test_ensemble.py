"""Ensemble steps are checked against the models they name, before anything reaches Triton."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from endpointkit.errors import SpecError
from endpointkit.modelrepo import load_repository
from tests.modelrepo.builders import ensemble_config, model_config, write_model, write_pipeline

PRE_STEP: dict[str, Any] = {"model": "pre", "inputs": {"RAW": "IMAGE"}, "outputs": {"PIXELS": "pixels"}}
NET_STEP: dict[str, Any] = {"model": "net", "inputs": {"PIXELS": "pixels"}, "outputs": {"SCORES": "SCORES"}}


def rewrite_pipeline(root: Path, *steps: dict[str, Any], **options: Any) -> None:
    """Replace the pipeline ensemble's config with these steps (IMAGE in, SCORES out unless overridden)."""
    options.setdefault("inputs", [("IMAGE", "TYPE_UINT8", [-1])])
    options.setdefault("outputs", [("SCORES", "TYPE_FP32", [10])])
    (root / "pipeline" / "config.pbtxt").write_text(ensemble_config("pipeline", steps, **options))


def test_a_connected_ensemble_loads_with_its_steps(tmp_path: Path) -> None:
    info = load_repository(write_pipeline(tmp_path)).models["pipeline"]
    assert (info.platform, info.is_ensemble, info.steps, info.versions) == (
        "ensemble",
        True,
        ("pre", "net"),
        (1,),
    )


def test_steps_may_be_listed_in_any_order(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, NET_STEP, PRE_STEP)
    assert load_repository(tmp_path).models["pipeline"].steps == ("net", "pre")


def test_a_step_naming_a_missing_model_suggests_the_nearest(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "model": "nett"})
    with pytest.raises(SpecError) as caught:
        load_repository(tmp_path)
    message = str(caught.value)
    assert "ensemble 'pipeline' step 1 names model 'nett'" in message
    assert "did you mean 'net'?" in message
    assert "'net', 'pipeline', 'pre'" in message


def test_an_input_map_key_that_is_not_an_input_lists_the_inputs(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "inputs": {"PIXEL": "pixels"}})
    with pytest.raises(SpecError) as caught:
        load_repository(tmp_path)
    message = str(caught.value)
    assert (
        "ensemble 'pipeline' step 1 ('net'): input_map key 'PIXEL' is not an input of model 'net'" in message
    )
    assert "its inputs are: 'PIXELS'" in message


def test_an_output_map_key_that_is_not_an_output_lists_the_outputs(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, {**PRE_STEP, "outputs": {"OUT": "pixels"}}, NET_STEP)
    with pytest.raises(
        SpecError, match=r"step 0 \('pre'\): output_map key 'OUT' .*its outputs are: 'PIXELS'"
    ):
        load_repository(tmp_path)


def test_every_required_input_of_a_step_must_be_fed(tmp_path: Path) -> None:
    write_model(
        tmp_path,
        "net",
        model_config("net", inputs=[("A", "TYPE_FP32", [4]), ("B", "TYPE_FP32", [4])]),
    )
    step = {"model": "net", "inputs": {"A": "INPUT0"}, "outputs": {"OUTPUT0": "OUTPUT0"}}
    write_model(tmp_path, "ens", ensemble_config("ens", [step]), {"1/": b""})
    with pytest.raises(SpecError, match="does not feed input.*'B'"):
        load_repository(tmp_path)


def test_a_step_version_must_be_one_triton_loads(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "version": 1})
    load_repository(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "version": 2})
    with pytest.raises(SpecError, match=r"asks for version 2, but Triton loads only versions \[1\]"):
        load_repository(tmp_path)


def test_steps_on_self_describing_models_skip_the_tensor_check(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    (tmp_path / "net" / "config.pbtxt").unlink()
    (tmp_path / "net" / "1" / "model.py").unlink()
    (tmp_path / "net" / "1" / "model.onnx").write_bytes(b"onnx")
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "inputs": {"anything": "pixels"}})
    assert load_repository(tmp_path).models["net"].has_config is False


def test_an_ensemble_output_no_step_writes_is_refused(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "outputs": {"SCORES": "scores"}})
    with pytest.raises(SpecError, match="output 'SCORES' is not written by any step"):
        load_repository(tmp_path)


def test_a_step_reading_a_tensor_nobody_writes_is_refused(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, {**NET_STEP, "inputs": {"PIXELS": "pixel"}})
    with pytest.raises(SpecError, match=r"step 1 \('net'\) reads tensor\(s\) 'pixel'"):
        load_repository(tmp_path)


def test_an_unused_ensemble_input_is_refused(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(
        tmp_path, PRE_STEP, NET_STEP, inputs=[("IMAGE", "TYPE_UINT8", [-1]), ("X", "TYPE_FP32", [1])]
    )
    with pytest.raises(SpecError, match="input 'X' is not used by any step"):
        load_repository(tmp_path)


def test_a_tensor_with_two_data_types_is_refused(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    write_model(
        tmp_path,
        "net",
        model_config(
            "net", inputs=[("PIXELS", "TYPE_FP16", [3, 8, 8])], outputs=[("SCORES", "TYPE_FP32", [10])]
        ),
    )
    with pytest.raises(SpecError, match="tensor 'pixels' is FP32 for model 'pre' but FP16 for model 'net'"):
        load_repository(tmp_path)


def test_a_tensor_with_two_shapes_is_refused(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    write_model(
        tmp_path,
        "net",
        model_config(
            "net", inputs=[("PIXELS", "TYPE_FP32", [3, 16, 16])], outputs=[("SCORES", "TYPE_FP32", [10])]
        ),
    )
    with pytest.raises(
        SpecError, match=r"tensor 'pixels' has shape \[-1, 3, 8, 8\] for model 'pre' but \[-1, 3, 16, 16\]"
    ):
        load_repository(tmp_path)


def test_an_ensemble_may_not_batch_more_than_its_steps(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    rewrite_pipeline(tmp_path, PRE_STEP, NET_STEP, max_batch_size=16)
    with pytest.raises(SpecError, match="max_batch_size 16 exceeds the max_batch_size 8 of 'pre'"):
        load_repository(tmp_path)


def test_ensembles_that_use_each_other_in_a_cycle_are_refused(tmp_path: Path) -> None:
    step_b = {"model": "b", "inputs": {"INPUT0": "INPUT0"}, "outputs": {"OUTPUT0": "OUTPUT0"}}
    step_a = {"model": "a", "inputs": {"INPUT0": "INPUT0"}, "outputs": {"OUTPUT0": "OUTPUT0"}}
    write_model(tmp_path, "a", ensemble_config("a", [step_b]), {"1/": b""})
    write_model(tmp_path, "b", ensemble_config("b", [step_a]), {"1/": b""})
    with pytest.raises(SpecError, match="ensembles form a cycle: a -> b -> a"):
        load_repository(tmp_path)


def test_an_ensemble_needs_a_version_folder_even_if_empty(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    (tmp_path / "pipeline" / "1").rmdir()
    with pytest.raises(SpecError, match="'pipeline' has no version folder"):
        load_repository(tmp_path)
