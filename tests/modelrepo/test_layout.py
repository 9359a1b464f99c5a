"""Model folders, config.pbtxt and version folders are checked the way Triton loads them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from endpointkit.errors import MissingDependencyError, SpecError
from endpointkit.modelrepo import TensorInfo, is_remote_repository, load_repository
from tests.modelrepo.builders import model_config, write_model

ONNX = {"1/model.onnx": b"onnx bytes"}


def test_a_single_onnx_model_loads_with_its_tensors(tmp_path: Path) -> None:
    write_model(
        tmp_path,
        "resnet",
        model_config(
            "resnet",
            platform="onnxruntime_onnx",
            inputs=[("input", "TYPE_FP32", [3, 224, 224])],
            outputs=[("logits", "TYPE_FP16", [1000])],
            max_batch_size=4,
        ),
        ONNX,
    )
    repository = load_repository(tmp_path)
    info = repository.models["resnet"]
    assert repository.path == tmp_path.resolve()
    assert info.platform == "onnxruntime_onnx"
    assert info.versions == (1,)
    assert info.inputs == (TensorInfo("input", "FP32", (3, 224, 224)),)
    assert info.outputs == (TensorInfo("logits", "FP16", (1000,)),)
    assert (info.max_batch_size, info.is_ensemble, info.steps, info.has_config) == (4, False, (), True)


def test_a_python_model_reports_its_backend_and_bytes_tensors(tmp_path: Path) -> None:
    write_model(
        tmp_path,
        "tokenizer",
        model_config(
            "tokenizer", inputs=[("TEXT", "TYPE_STRING", [1])], outputs=[("IDS", "TYPE_INT64", [-1])]
        ),
    )
    info = load_repository(tmp_path).models["tokenizer"]
    assert info.platform == "python"
    assert info.inputs == (TensorInfo("TEXT", "BYTES", (1,)),)
    assert info.outputs == (TensorInfo("IDS", "INT64", (-1,)),)


def test_the_name_in_the_config_may_be_left_out(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m").replace('name: "m"\n', ""))
    assert load_repository(tmp_path).models["m"].name == "m"


def test_a_config_name_that_differs_from_the_folder_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("other"))
    with pytest.raises(SpecError, match="name 'other' differs from the folder name 'm'"):
        load_repository(tmp_path)


def test_a_bad_config_names_the_file_line_and_column(tmp_path: Path) -> None:
    folder = write_model(tmp_path, "m", 'name: "m"\nbackend: "python"\ninput [ { nme: "x" } ]\n')
    with pytest.raises(SpecError) as caught:
        load_repository(tmp_path)
    assert f"{folder / 'config.pbtxt'}:3:" in str(caught.value)
    assert 'no field named "nme"' in str(caught.value)
    assert caught.value.field == "model.repository"


def test_a_missing_model_file_names_the_file_expected(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m", platform="onnxruntime_onnx"), {"1/weights.bin": b"x"})
    with pytest.raises(SpecError, match=r"version 1: .* has no model\.onnx .*it holds: weights\.bin"):
        load_repository(tmp_path)


def test_a_python_model_needs_model_py(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m"), {"1/helper.py": ""})
    with pytest.raises(SpecError, match=r"has no model\.py"):
        load_repository(tmp_path)


def test_default_model_filename_overrides_the_default(tmp_path: Path) -> None:
    extra = 'default_model_filename: "resnet.onnx"\n'
    write_model(tmp_path, "m", model_config("m", backend="onnxruntime", extra=extra), {"1/resnet.onnx": b""})
    assert load_repository(tmp_path).models["m"].platform == "onnxruntime"
    (tmp_path / "m" / "1" / "resnet.onnx").rename(tmp_path / "m" / "1" / "model.onnx")
    with pytest.raises(SpecError, match=r"has no resnet\.onnx"):
        load_repository(tmp_path)


def test_a_backend_whose_files_are_unknown_is_not_second_guessed(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m", backend="identity"), {"1/": b""})
    assert load_repository(tmp_path).models["m"].platform == "identity"


def test_non_numeric_and_zero_prefixed_folders_are_ignored(tmp_path: Path) -> None:
    files = {"1/model.py": "", "notes/readme.txt": "", "01/model.py": "", "warmup/sample": ""}
    write_model(tmp_path, "m", model_config("m"), files)
    assert load_repository(tmp_path).models["m"].versions == (1,)


def test_a_folder_triton_would_read_as_a_version_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m"), {"1/model.py": "", "2_old/model.py": ""})
    with pytest.raises(SpecError, match="reads this folder as version 2"):
        load_repository(tmp_path)


def test_a_model_without_a_version_folder_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m"), {})
    with pytest.raises(SpecError, match="has no version folder"):
        load_repository(tmp_path)


def test_only_the_latest_version_is_served_and_checked_by_default(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m"), {"1/": b"", "2/model.py": "", "10/model.py": ""})
    assert load_repository(tmp_path).models["m"].versions == (10,)


def test_version_policy_all_serves_and_checks_every_version(tmp_path: Path) -> None:
    config = model_config("m", extra="version_policy: { all {} }\n")
    write_model(tmp_path, "m", config, {"1/model.py": "", "3/model.py": ""})
    assert load_repository(tmp_path).models["m"].versions == (1, 3)
    (tmp_path / "m" / "1" / "model.py").unlink()
    with pytest.raises(SpecError, match="version 1"):
        load_repository(tmp_path)


def test_version_policy_naming_a_missing_version_is_refused(tmp_path: Path) -> None:
    config = model_config("m", extra="version_policy: { specific { versions: [1, 4] } }\n")
    write_model(tmp_path, "m", config, {"1/model.py": ""})
    with pytest.raises(SpecError, match=r"names versions \[4\]"):
        load_repository(tmp_path)


def test_a_model_triton_can_describe_itself_needs_no_config(tmp_path: Path) -> None:
    write_model(tmp_path, "m", None, ONNX)
    info = load_repository(tmp_path).models["m"]
    assert (info.platform, info.has_config, info.inputs, info.outputs) == ("onnxruntime_onnx", False, (), ())


def test_a_python_model_without_config_needs_auto_complete_config(tmp_path: Path) -> None:
    write_model(tmp_path, "m", None)
    with pytest.raises(SpecError, match="auto_complete_config"):
        load_repository(tmp_path)
    model_py = "class TritonPythonModel:\n    @staticmethod\n    def auto_complete_config(config):\n        return config\n"
    (tmp_path / "m" / "1" / "model.py").write_text(model_py)
    assert load_repository(tmp_path).models["m"].platform == "python"


def test_a_torchscript_model_without_config_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", None, {"1/model.pt": b""})
    with pytest.raises(SpecError, match="has no config.pbtxt"):
        load_repository(tmp_path)


def test_a_folder_with_nothing_triton_recognises_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", None, {"1/weights.bin": b""})
    with pytest.raises(SpecError, match="tells Triton the backend"):
        load_repository(tmp_path)


@pytest.mark.parametrize(
    ("dims", "message"), [("[ 0 ]", "each must be >= 1"), ("[ ]", "needs dims")], ids=["zero", "empty"]
)
def test_invalid_dims_are_refused(tmp_path: Path, dims: str, message: str) -> None:
    write_model(tmp_path, "m", model_config("m").replace("dims: [ 4 ]", f"dims: {dims}", 1))
    with pytest.raises(SpecError, match=message):
        load_repository(tmp_path)


def test_junk_folders_and_top_level_files_are_not_models(tmp_path: Path) -> None:
    write_model(tmp_path, "m", model_config("m"))
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "README.md").write_text("models")
    assert list(load_repository(tmp_path).models) == ["m"]


def test_an_empty_or_missing_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="holds no model folder"):
        load_repository(tmp_path)
    with pytest.raises(SpecError, match="does not exist"):
        load_repository(tmp_path / "absent")


def test_remote_repositories_are_recognised_and_not_loaded() -> None:
    assert is_remote_repository("s3://bucket/models")
    assert is_remote_repository("as://account/container/models")
    assert is_remote_repository("GS://bucket")
    assert not is_remote_repository("./model_repository")
    assert not is_remote_repository("/data/s3://odd")
    with pytest.raises(SpecError, match="cloud storage"):
        load_repository("s3://bucket/models")


def test_without_tritonclient_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_model(tmp_path, "m", model_config("m"))
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'endpointkit\[local\]'"):
        load_repository(tmp_path)
