"""One model folder of a Triton model repository: config.pbtxt, version folders, model files.

The rules follow Triton's own loader (triton-inference-server/core, ``src/model_config_utils.cc``
``AutoCompleteBackendFields`` and ``src/model_lifecycle.cc`` ``VersionsToLoad``), so that a repository this
module accepts is one Triton loads, and a mistake is reported before anything is uploaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpointkit.errors import MissingDependencyError, SpecError

__all__ = ["LoadedModel", "ModelInfo", "TensorInfo", "load_model"]

CONFIG_FILENAME = "config.pbtxt"
REPOSITORY_FIELD = "model.repository"
ENSEMBLE_PLATFORM = "ensemble"

# Model file Triton looks for in a version folder when the config sets no default_model_filename.
_FILENAME_BY_PLATFORM = {
    "tensorrt_plan": "model.plan",
    "onnxruntime_onnx": "model.onnx",
    "pytorch_libtorch": "model.pt",
    "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef",
}
_FILENAME_BY_BACKEND = {
    "tensorrt": "model.plan",
    "onnxruntime": "model.onnx",
    "pytorch": "model.pt",
    "openvino": "model.xml",
    "python": "model.py",
    "dali": "model.dali",
}
# Backends fill in a model's inputs and outputs themselves when config.pbtxt leaves them out (auto-complete:
# on unless --disable-auto-complete-config, or --strict-model-config=true on older releases). TensorRT, ONNX
# Runtime, TensorFlow SavedModel, OpenVINO and DALI do; these cannot, and a Python model can only when its
# model.py defines auto_complete_config(). Other backends (vLLM, custom ones) may, so we do not guess.
_NO_AUTOCOMPLETE_PLATFORMS = frozenset({"tensorflow_graphdef", "pytorch_libtorch"})
_NO_AUTOCOMPLETE_BACKENDS = frozenset({"pytorch"})
# What Triton's server-side auto-complete finds in a version folder when there is no config.pbtxt, in its
# order: (file name, must be a directory (True), a file (False) or either (None), backend, platform).
_DETECTABLE_FILES: tuple[tuple[str, bool | None, str, str], ...] = (
    ("model.savedmodel", True, "tensorflow", "tensorflow_savedmodel"),
    ("model.graphdef", False, "tensorflow", "tensorflow_graphdef"),
    ("model.plan", False, "tensorrt", "tensorrt_plan"),
    ("model.onnx", None, "onnxruntime", "onnxruntime_onnx"),
    ("model.xml", None, "openvino", ""),
    ("model.pt", False, "pytorch", "pytorch_libtorch"),
    ("model.py", None, "python", ""),
)
_RUNTIME_BY_FILENAME = {filename: (backend, platform) for filename, _, backend, platform in _DETECTABLE_FILES}
# Folders inside a model folder that Triton never reads as versions.
_NOT_VERSION_FOLDERS = frozenset({"warmup", "initial_state"})
_AUTO_COMPLETE_FUNCTION = re.compile(r"^\s*def\s+auto_complete_config\s*\(", re.MULTILINE)
# std::stoll, which Triton uses on a folder name, skips leading spaces and reads a sign and digits.
_STOLL_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output tensor of a model, as its config.pbtxt declares it.

    ``datatype`` is the Triton datatype string of the inference protocol (``"FP32"``, ``"BYTES"``, ``"UINT8"``);
    ``dims`` excludes the batch dimension of a batching model, and ``-1`` marks a variable-size dimension.
    """

    name: str
    datatype: str
    dims: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What endpointkit knows about one model of a repository.

    Attributes:
        name: the model's folder name, which is its Triton name.
        platform: the config's ``platform`` when set (``"ensemble"``, ``"onnxruntime_onnx"``), else its
            ``backend`` (``"python"``), else what Triton infers from the model file when there is no config.
        versions: the versions Triton loads, ascending: the numeric version folders selected by the
            config's ``version_policy`` (by default only the latest).
        inputs, outputs: the tensors the config declares; empty when Triton generates them (no config).
        max_batch_size: the config's value; 0 means the model does not batch (or, without config, unknown).
        is_ensemble: the model is an ensemble.
        steps: the model name of each ensemble step, in order; empty for other models.
        has_config: the folder holds a config.pbtxt.
    """

    name: str
    platform: str
    versions: tuple[int, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    max_batch_size: int
    is_ensemble: bool
    steps: tuple[str, ...]
    has_config: bool

    def lacks_batch_dimension(self, name: str, ndim: int, *, output: bool = False) -> bool:
        """Whether an array of ``ndim`` dimensions for the input (``output``: the output) ``name`` leaves out the
        leading batch dimension: the model batches and the rank is that of the config's ``dims``."""
        if self.max_batch_size <= 0:
            return False
        declared = {tensor.name: tensor.dims for tensor in (self.outputs if output else self.inputs)}
        return name in declared and ndim == len(declared[name])


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A validated model folder: its public info plus what the ensemble checks need."""

    info: ModelInfo
    config: Any  # model_config_pb2.ModelConfig, or None without config.pbtxt
    # False when Triton fills in that side of the model itself, so its tensor names are unknown here.
    inputs_known: bool
    outputs_known: bool


def _protobuf() -> tuple[Any, Any]:
    """The ModelConfig message class and protobuf's text_format, imported on first use."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise MissingDependencyError(
            "reading a Triton config.pbtxt needs tritonclient[grpc], which is not installed: "
            "pip install 'endpointkit[local]'"
        ) from exc
    return model_config_pb2, text_format


def _parse_config(path: Path) -> Any:
    model_config_pb2, text_format = _protobuf()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path}: {exc}", field=REPOSITORY_FIELD) from exc
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        # protobuf's message starts with "line:column : "; the location goes in front of the path instead.
        detail = re.sub(r"^\d+:\d+ : ", "", str(exc))
        location = f"{path}:{line}:{column}" if line else str(path)
        raise SpecError(f"{location}: invalid model configuration: {detail}", field=REPOSITORY_FIELD) from exc


def _datatype(config_type: int) -> str:
    model_config_pb2, _ = _protobuf()
    name: str = model_config_pb2.DataType.Name(config_type).removeprefix("TYPE_")
    # The config calls it TYPE_STRING; the inference protocol calls the same thing BYTES.
    return "BYTES" if name == "STRING" else name


def _tensors(model: str, kind: str, tensors: Any, config_path: Path) -> tuple[TensorInfo, ...]:
    result = []
    for index, tensor in enumerate(tensors):
        where = f"{config_path}: {kind} {index}"
        if not tensor.name:
            raise SpecError(f"{where} of model '{model}' has no name", field=REPOSITORY_FIELD)
        datatype = _datatype(tensor.data_type)
        if datatype == "INVALID":
            raise SpecError(f"{where} '{tensor.name}' needs a data_type", field=REPOSITORY_FIELD)
        dims = tuple(int(dim) for dim in tensor.dims)
        if not dims:
            raise SpecError(f"{where} '{tensor.name}' needs dims", field=REPOSITORY_FIELD)
        if any(dim < 1 and dim != -1 for dim in dims):
            raise SpecError(
                f"{where} '{tensor.name}' has dims {list(dims)}: each must be >= 1, or -1 for a variable size",
                field=REPOSITORY_FIELD,
            )
        result.append(TensorInfo(name=tensor.name, datatype=datatype, dims=dims))
    return tuple(result)


def _existing_versions(model_dir: Path, subfolders: list[str]) -> list[int]:
    """The version numbers Triton reads from a model's subfolder names."""
    versions = []
    for name in subfolders:
        if name in _NOT_VERSION_FOLDERS:
            continue
        # Triton ignores non-numeric folders and, with a warning, zero-prefixed ones such as "01"
        # (docs/user_guide/model_repository.md, "Model Versions").
        if len(name) > 1 and name.startswith("0"):
            continue
        match = _STOLL_PREFIX.match(name)
        if match is None:
            continue
        number = int(match.group(1))
        if match.group(0) != name:
            raise SpecError(
                f"{model_dir / name}: Triton reads this folder as version {number} (it parses the leading "
                "digits of a folder name); rename it so it does not start with a number, or remove it",
                field=REPOSITORY_FIELD,
            )
        if number < 0:
            raise SpecError(
                f"{model_dir / name}: a version folder must be a number >= 0", field=REPOSITORY_FIELD
            )
        versions.append(number)
    return sorted(versions)


def _served_versions(name: str, model_dir: Path, existing: list[int], config: Any) -> tuple[int, ...]:
    """Apply the version policy the way Triton does; the default is the latest version only."""
    # Triton loads ensembles through the same path (model_lifecycle.cc AsyncLoad: "at least one version must
    # be available"), so an ensemble needs a version folder too; nothing has to be in it.
    if not existing:
        raise SpecError(
            f"model '{name}' has no version folder: add {model_dir / '1'}/ with the model files in it "
            "(Triton needs one even for an ensemble, whose version folder may be empty)",
            field=REPOSITORY_FIELD,
        )
    policy = config.version_policy.WhichOneof("policy_choice") if config is not None else None
    if policy == "all":
        return tuple(existing)
    if policy == "specific":
        wanted = sorted(set(config.version_policy.specific.versions))
        missing = [version for version in wanted if version not in existing]
        if missing:
            raise SpecError(
                f"model '{name}': version_policy names versions {missing} but {model_dir} has no such folder; "
                f"its versions are {existing}",
                field=REPOSITORY_FIELD,
            )
        served = tuple(wanted)
    else:
        count = config.version_policy.latest.num_versions if policy == "latest" else 1
        served = tuple(existing[-count:]) if count > 0 else ()
    if not served:
        raise SpecError(
            f"model '{name}': its version_policy selects no version; Triton needs at least one",
            field=REPOSITORY_FIELD,
        )
    return served


def _detect_runtime(version_dir: Path) -> tuple[str, str] | None:
    """(backend, platform) Triton infers from a version folder's files when there is no config."""
    for filename, is_dir, backend, platform in _DETECTABLE_FILES:
        candidate = version_dir / filename
        if candidate.exists() and (is_dir is None or candidate.is_dir() == is_dir):
            return backend, platform
    return None


def _infer_runtime(name: str, model_dir: Path, config: Any, subfolders: list[str]) -> tuple[str, str]:
    """(backend, platform) Triton infers for a model whose config names neither."""
    if config is not None and config.default_model_filename:
        detected = _RUNTIME_BY_FILENAME.get(config.default_model_filename)
        reason = f"its default_model_filename '{config.default_model_filename}' names no known backend"
    else:
        # Triton inspects the first subfolder by name, numeric or not.
        first = model_dir / subfolders[0] if subfolders else model_dir
        detected = _detect_runtime(first) if subfolders else None
        known = ", ".join(filename for filename, *_ in _DETECTABLE_FILES)
        reason = f"{first} holds no model file that tells Triton the backend ({known})"
    if detected is None:
        missing = (
            f"no {CONFIG_FILENAME}" if config is None else f"{CONFIG_FILENAME} sets no backend or platform"
        )
        raise SpecError(f"model '{name}': {missing}, and {reason}", field=REPOSITORY_FIELD)
    return detected


def _check_model_files(
    name: str, model_dir: Path, versions: tuple[int, ...], filenames: tuple[str, ...] | None, runtime: str
) -> None:
    if filenames is None:
        return  # a backend whose file layout we do not know: Triton's backend will judge
    for version in versions:
        version_dir = model_dir / str(version)
        if not any((version_dir / filename).exists() for filename in filenames):
            present = ", ".join(sorted(entry.name for entry in version_dir.iterdir())) or "nothing"
            raise SpecError(
                f"model '{name}' version {version}: {version_dir} has no {' or '.join(filenames)} "
                f"(backend '{runtime}'); it holds: {present}",
                field=REPOSITORY_FIELD,
            )


def _model_filenames(config: Any, backend: str, platform: str) -> tuple[str, ...] | None:
    """Files of which one must be in each version folder, or None when we do not know the backend's layout."""
    if config is not None and config.default_model_filename:
        default = config.default_model_filename
    elif platform in _FILENAME_BY_PLATFORM:
        default = _FILENAME_BY_PLATFORM[platform]
    elif backend == "tensorflow":
        return ("model.savedmodel", "model.graphdef")
    elif backend in _FILENAME_BY_BACKEND:
        default = _FILENAME_BY_BACKEND[backend]
    else:
        return None
    # TensorRT plans may be per GPU compute capability instead of one default file.
    per_capability = tuple(config.cc_model_filenames.values()) if config is not None else ()
    return (default, *per_capability)


def _defines_auto_complete(model_file: Path) -> bool:
    try:
        return (
            _AUTO_COMPLETE_FUNCTION.search(model_file.read_text(encoding="utf-8", errors="replace"))
            is not None
        )
    except OSError:
        return False


def _can_autocomplete(backend: str, platform: str, model_dir: Path, version: int, config: Any) -> bool:
    """Whether the backend may generate the model's inputs and outputs (see _NO_AUTOCOMPLETE_*)."""
    if platform in _NO_AUTOCOMPLETE_PLATFORMS or backend in _NO_AUTOCOMPLETE_BACKENDS:
        return False
    if backend == "python":
        filename = (config.default_model_filename if config is not None else "") or "model.py"
        return _defines_auto_complete(model_dir / str(version) / filename)
    return True


def load_model(model_dir: Path, subfolders: list[str]) -> LoadedModel:
    """Validate one model folder and describe it; ensemble steps are checked later, across models.

    ``subfolders`` are the folder's subdirectory names that packaging keeps (sorted).

    Raises:
        SpecError: the folder is not a model Triton would load; the message names the file and the fix.
    """
    name = model_dir.name
    config_path = model_dir / CONFIG_FILENAME
    config = _parse_config(config_path) if config_path.is_file() else None
    if config is not None and config.name and config.name != name:
        raise SpecError(
            f"{config_path}: name '{config.name}' differs from the folder name '{name}'; Triton requires them "
            "to match (or the name to be left out)",
            field=REPOSITORY_FIELD,
        )
    served = _served_versions(name, model_dir, _existing_versions(model_dir, subfolders), config)
    backend = config.backend if config is not None else ""
    platform = config.platform if config is not None else ""
    is_ensemble = platform == ENSEMBLE_PLATFORM
    steps = tuple(step.model_name for step in config.ensemble_scheduling.step) if config is not None else ()
    if not (backend or platform):
        backend, platform = _infer_runtime(name, model_dir, config, subfolders)
    if config is not None and config.HasField("ensemble_scheduling") and not is_ensemble:
        raise SpecError(
            f"{config_path}: ensemble_scheduling is set but the platform is '{platform}', not 'ensemble'",
            field=REPOSITORY_FIELD,
        )
    if is_ensemble and not steps:
        raise SpecError(
            f"{config_path}: ensemble '{name}' needs ensemble_scheduling steps", field=REPOSITORY_FIELD
        )

    autocompletes = not is_ensemble and _can_autocomplete(backend, platform, model_dir, served[-1], config)
    if config is None and not autocompletes:
        raise SpecError(
            f"model '{name}' has no {CONFIG_FILENAME}: Triton can generate one only for TensorRT, ONNX, "
            "TensorFlow SavedModel and OpenVINO models, and for Python models whose model.py defines "
            f"auto_complete_config(); add {config_path}",
            field=REPOSITORY_FIELD,
        )
    if not is_ensemble:
        _check_model_files(
            name, model_dir, served, _model_filenames(config, backend, platform), backend or platform
        )

    inputs = _tensors(name, "input", config.input, config_path) if config is not None else ()
    outputs = _tensors(name, "output", config.output, config_path) if config is not None else ()
    info = ModelInfo(
        name=name,
        platform=platform or backend,
        versions=served,
        inputs=inputs,
        outputs=outputs,
        max_batch_size=int(config.max_batch_size) if config is not None else 0,
        is_ensemble=is_ensemble,
        steps=steps if is_ensemble else (),
        has_config=config is not None,
    )
    return LoadedModel(
        info=info,
        config=config,
        inputs_known=config is not None and (bool(inputs) or not autocompletes),
        outputs_known=config is not None and (bool(outputs) or not autocompletes),
    )
