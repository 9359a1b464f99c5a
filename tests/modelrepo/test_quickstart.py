"""The quickstart repository is valid, and its Python models work (run here without Triton).

The Python backend hands ``execute`` a list of requests and imports ``triton_python_backend_utils``
into the model; a small stand-in for that module lets the models' own code run in-process.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit.modelrepo import TensorInfo, load_repository

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
REPOSITORY = QUICKSTART / "model_repository"


def test_the_quickstart_repository_loads_and_defaults_to_the_ensemble() -> None:
    repository = load_repository(REPOSITORY)
    assert set(repository.models) == {"preprocess", "classifier", "ensemble"}
    assert repository.default_model() == "ensemble"
    ensemble = repository.models["ensemble"]
    assert ensemble.steps == ("preprocess", "classifier")
    assert ensemble.inputs == (TensorInfo("IMAGE", "UINT8", (-1,)),)
    assert ensemble.outputs == (TensorInfo("SCORES", "FP32", (10,)),)
    assert all(info.max_batch_size == 8 for info in repository.models.values())


def test_the_quickstart_assets_are_small_and_the_labels_match_the_scores() -> None:
    assert (QUICKSTART / "sample.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert (QUICKSTART / "sample.jpg").stat().st_size < 30 * 1024
    assert (REPOSITORY / "classifier" / "1" / "weights.npz").stat().st_size < 200 * 1024
    labels = (REPOSITORY / "classifier" / "labels.txt").read_text().splitlines()
    assert len(labels) == 10 and "ship" in labels
    assert 'label_filename: "labels.txt"' in (REPOSITORY / "classifier" / "config.pbtxt").read_text()


@dataclass
class FakeTensor:
    name: str
    array: np.ndarray[Any, Any]

    def as_numpy(self) -> np.ndarray[Any, Any]:
        return self.array


class FakeTritonError(Exception):
    INVALID_ARG = 3

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FakeResponse:
    output_tensors: list[FakeTensor] = field(default_factory=list)
    error: FakeTritonError | None = None


def load_model(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import a quickstart model.py with a stand-in triton_python_backend_utils and return the model object."""
    pytest.importorskip("PIL")
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor = FakeTensor  # type: ignore[attr-defined]
    fake.TritonError = FakeTritonError  # type: ignore[attr-defined]
    fake.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    fake.get_input_tensor_by_name = lambda request, tensor: request[tensor]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # keep __pycache__ out of the example folder
    spec = importlib.util.spec_from_file_location(f"quickstart_{name}", REPOSITORY / name / "1" / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    if hasattr(model, "initialize"):
        model.initialize({"model_repository": str(REPOSITORY / name), "model_version": "1"})
    return model


def padded(*encoded: bytes) -> np.ndarray[Any, Any]:
    """One [batch, length] UINT8 array, each image padded with zeros to the longest, as clients batch them."""
    rows = np.zeros((len(encoded), max(len(item) for item in encoded)), dtype=np.uint8)
    for row, item in zip(rows, encoded, strict=True):
        row[: len(item)] = np.frombuffer(item, dtype=np.uint8)
    return rows


def test_the_quickstart_models_turn_an_image_into_scores_that_sum_to_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PIL import Image

    preprocess = load_model("preprocess", monkeypatch)
    classifier = load_model("classifier", monkeypatch)
    jpeg = (QUICKSTART / "sample.jpg").read_bytes()
    png = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(png, format="PNG")

    batch, single = preprocess.execute(
        [
            {"IMAGE": FakeTensor("IMAGE", padded(jpeg, png.getvalue()))},
            {"IMAGE": FakeTensor("IMAGE", padded(jpeg))},
        ]
    )
    pixels = batch.output_tensors[0].array
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[0], single.output_tensors[0].array[0])

    (scored,) = classifier.execute([{"PREPROCESSED": FakeTensor("PREPROCESSED", pixels)}])
    scores = scored.output_tensors[0].array
    assert scores.shape == (2, 10) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_a_bad_image_fails_only_its_own_request(monkeypatch: pytest.MonkeyPatch) -> None:
    preprocess = load_model("preprocess", monkeypatch)
    jpeg = (QUICKSTART / "sample.jpg").read_bytes()
    bad, good = preprocess.execute(
        [
            {"IMAGE": FakeTensor("IMAGE", padded(b"not an image"))},
            {"IMAGE": FakeTensor("IMAGE", padded(jpeg))},
        ]
    )
    assert bad.error is not None and bad.error.code == FakeTritonError.INVALID_ARG
    assert "IMAGE is not a readable image" in str(bad.error)
    assert good.error is None and good.output_tensors[0].array.shape == (1, 3, 32, 32)
