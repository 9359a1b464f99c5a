"""Reading a spec's ``verify`` checks: their files, their ``python:`` functions, and what the model declares.

Everything a check needs is read here, once, before any endpoint call: a missing file or a name the model does
not have is a :class:`SpecError` before a rollout starts, not a failed check after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from endpointkit._spec_errors import suggest
from endpointkit.errors import PayloadError, SpecError
from endpointkit.modelrepo import (
    ModelInfo,
    ModelRepository,
    TensorInfo,
    is_remote_repository,
    load_repository,
)
from endpointkit.payloads import Tensor, read_tensor_file
from endpointkit.spec import Deployment, VerifyCheck
from endpointkit.verification._python_checks import PythonCheck, import_check

__all__ = ["EXPECT_SUFFIXES", "LoadedCheck", "load_checks"]

#: The file formats an expectation is read from and recorded to.
EXPECT_SUFFIXES = (".npy", ".json")


@dataclass(frozen=True)
class LoadedCheck:
    """One check of the spec's ``verify`` section with everything it needs read: it runs without the disk.

    Attributes:
        index: its position in ``verify``; ``field`` is ``verify[INDEX]``.
        check: the check as the spec states it (name, tolerances, repeat, max_p99, model).
        inputs: the input tensors, in the spec's order, with the batch dimension a batching model needs.
        expected: output name -> expected array (empty when loaded without expectations, for recording).
        expect_paths: output name -> the expectation's file, absolute or relative to the current folder.
        function: the imported ``python:`` function, or None.
    """

    index: int
    check: VerifyCheck
    inputs: tuple[Tensor, ...]
    expected: Mapping[str, npt.NDArray[Any]]
    expect_paths: Mapping[str, Path]
    function: PythonCheck | None = None

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def field(self) -> str:
        return f"verify[{self.index}]"


def load_checks(deployment: Deployment, *, read_expectations: bool = True) -> tuple[LoadedCheck, ...]:
    """Read every check of ``deployment``'s spec: input and expect files (relative to the spec file's folder),
    ``python:`` functions, and, when the model repository is local, each name and shape against the model's
    config. Makes no endpoint call. ``read_expectations=False`` leaves the expect files unread (recording
    writes them).

    Inputs are read as ``endpointkit invoke --input`` reads them (``.npy``, ``.json``, other files as raw bytes),
    and like there, an input (or expectation) of the rank of the config's ``dims`` gets a leading batch
    dimension of 1 when the model batches.

    Raises:
        SpecError: a file cannot be read, an expect file is not ``.npy`` or ``.json`` or its shape is not the
            output's, an input or output the model does not have, a ``python:`` function that cannot be imported;
            ``field`` names the check's field (``verify[1].expect.SCORES``), the message the file and the fix.
    """
    if not deployment.spec.verify:
        return ()
    repository = _local_repository(deployment)
    return tuple(
        _load(index, check, deployment, repository, read_expectations=read_expectations)
        for index, check in enumerate(deployment.spec.verify)
    )


def _local_repository(deployment: Deployment) -> ModelRepository | None:
    if is_remote_repository(deployment.spec.model.repository):
        return None
    return load_repository(deployment.repository)


def _load(
    index: int,
    check: VerifyCheck,
    deployment: Deployment,
    repository: ModelRepository | None,
    *,
    read_expectations: bool,
) -> LoadedCheck:
    field = f"verify[{index}]"
    base = deployment.spec.base_dir
    model = _model(field, check, deployment, repository)
    if model is not None:
        _check_names(field, "inputs", check.inputs, model.inputs, model)
        _check_names(field, "expect", check.expect, model.outputs, model)
    inputs = tuple(
        _batched(_read(f"{field}.inputs.{name}", name, base / file), model)
        for name, file in check.inputs.items()
    )
    expect_paths = {name: base / file for name, file in check.expect.items()}
    for name, path in expect_paths.items():
        if path.suffix not in EXPECT_SUFFIXES:
            raise SpecError(
                f"{field}.expect.{name}: {path} is neither .npy nor .json: name a .npy or .json file (record it "
                "with `endpointkit verify --record`)",
                field=f"{field}.expect.{name}",
            )
    expected: dict[str, npt.NDArray[Any]] = {}
    if read_expectations:
        for name, path in expect_paths.items():
            label = f"{field}.expect.{name}"
            array = np.asarray(
                _read(label, name, path, hint="record it with `endpointkit verify --record`").data
            )
            if model is not None:
                _check_shape(label, name, path, array, model)
            expected[name] = np.asarray(_batched(Tensor(name, array), model, output=True).data)
    function = import_check(f"{field}.python", check.python, base) if check.python else None
    return LoadedCheck(
        index=index,
        check=check,
        inputs=inputs,
        expected=MappingProxyType(expected),
        expect_paths=MappingProxyType(expect_paths),
        function=function,
    )


def _read(label: str, name: str, path: Path, *, hint: str = "") -> Tensor:
    try:
        return read_tensor_file(name, path, label=label)
    except PayloadError as error:
        fix = hint or "fix the file"
        raise SpecError(
            f"{error}; paths are relative to the spec file's folder: {fix}", field=label
        ) from None


def _model(
    field: str, check: VerifyCheck, deployment: Deployment, repository: ModelRepository | None
) -> ModelInfo | None:
    """The model the check calls, as its config declares it; None when that is not known here."""
    if repository is None:
        return None
    if check.model is not None:
        if check.model not in repository.models:
            raise SpecError(
                f"{field}.model: {check.model!r} is not a model of {repository.path}"
                f"{suggest(check.model, repository.models)}; its models are: {', '.join(repository.models)}",
                field=f"{field}.model",
            )
        name = check.model
    else:
        try:
            name = repository.default_model(deployment.spec.model.default_model)
        except SpecError:  # no single default: the endpoint decides, and the names cannot be checked here
            return None
    model = repository.models[name]
    return model if model.has_config else None


def _check_names(
    field: str, section: str, given: Mapping[str, str], declared: tuple[TensorInfo, ...], model: ModelInfo
) -> None:
    if not declared:
        return
    names = [tensor.name for tensor in declared]
    kind = "input" if section == "inputs" else "output"
    for name in given:
        if name not in names:
            raise SpecError(
                f"{field}.{section}.{name}: model {model.name!r} has no {kind} {name!r}"
                f"{suggest(name, names)}; its {kind}s are: {', '.join(names)}",
                field=f"{field}.{section}.{name}",
            )


def _check_shape(label: str, name: str, path: Path, array: npt.NDArray[Any], model: ModelInfo) -> None:
    dims = next((tensor.dims for tensor in model.outputs if tensor.name == name), None)
    if dims is None:
        return
    fits = _fits(array.shape, dims) or (model.max_batch_size > 0 and _fits(array.shape[1:], dims))
    if not fits:
        shown = "[" + ", ".join(str(dim) for dim in dims) + "]"
        batch = (
            f" after a batch dimension (max_batch_size {model.max_batch_size})"
            if model.max_batch_size > 0
            else ""
        )
        raise SpecError(
            f"{label}: {path} holds shape {list(array.shape)} but model {model.name!r} declares output {name} "
            f"with dims {shown}{batch}: point expect.{name} at this output's file, or record it again with "
            "`endpointkit verify --record`",
            field=label,
        )


def _fits(shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    return len(shape) == len(dims) and all(
        dim == -1 or dim == size for size, dim in zip(shape, dims, strict=True)
    )


def _batched(tensor: Tensor, model: ModelInfo | None, *, output: bool = False) -> Tensor:
    """``tensor`` with a leading batch dimension of 1 when the model batches and the file left it out."""
    array = np.asarray(tensor.data)
    if model is None or not model.lacks_batch_dimension(tensor.name, array.ndim, output=output):
        return tensor
    return Tensor(tensor.name, array[np.newaxis, ...], datatype=tensor.datatype)
