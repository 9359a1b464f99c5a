"""Which model requests go to when the spec names none."""

from __future__ import annotations

from pathlib import Path

import pytest

from endpointkit.errors import SpecError
from endpointkit.modelrepo import load_repository
from tests.modelrepo.builders import ensemble_config, model_config, write_model, write_pipeline

IDENTITY_STEP = {"model": "pipeline", "inputs": {"IMAGE": "IMAGE"}, "outputs": {"SCORES": "SCORES"}}


def test_the_only_model_is_the_default(tmp_path: Path) -> None:
    write_model(tmp_path, "solo", model_config("solo"))
    repository = load_repository(tmp_path)
    assert repository.inferred_default_model() == "solo"
    assert repository.default_model() == "solo"


def test_the_one_top_level_ensemble_is_the_default(tmp_path: Path) -> None:
    repository = load_repository(write_pipeline(tmp_path))
    assert repository.inferred_default_model() == "pipeline"


def test_an_ensemble_used_by_another_is_not_top_level(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    wrapper = ensemble_config(
        "wrapper",
        [IDENTITY_STEP],
        inputs=[("IMAGE", "TYPE_UINT8", [-1])],
        outputs=[("SCORES", "TYPE_FP32", [10])],
    )
    write_model(tmp_path, "wrapper", wrapper, {"1/": b""})
    assert load_repository(tmp_path).default_model() == "wrapper"


def test_two_top_level_ensembles_leave_the_choice_to_the_spec(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    twin = (tmp_path / "pipeline" / "config.pbtxt").read_text().replace('name: "pipeline"', 'name: "twin"')
    write_model(tmp_path, "twin", twin, {"1/": b""})
    repository = load_repository(tmp_path)
    assert repository.inferred_default_model() is None
    with pytest.raises(SpecError, match="2 ensembles could each be the entry point") as caught:
        repository.default_model()
    assert caught.value.field == "model.default_model"


def test_several_plain_models_leave_the_choice_to_the_spec(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_model(tmp_path, name, model_config(name))
    repository = load_repository(tmp_path)
    assert repository.inferred_default_model() is None
    with pytest.raises(SpecError, match=r"holds 2 models \('a', 'b'\).*set model\.default_model"):
        repository.default_model()


def test_an_explicit_default_model_wins(tmp_path: Path) -> None:
    assert load_repository(write_pipeline(tmp_path)).default_model("net") == "net"


def test_an_explicit_default_model_that_is_missing_suggests_the_nearest(tmp_path: Path) -> None:
    repository = load_repository(write_pipeline(tmp_path))
    with pytest.raises(SpecError) as caught:
        repository.default_model("pipelin")
    message = str(caught.value)
    assert "default model 'pipelin' is not in the model repository" in message
    assert "did you mean 'pipeline'?" in message
    assert "'net', 'pipeline', 'pre'" in message
    assert caught.value.field == "model.default_model"
