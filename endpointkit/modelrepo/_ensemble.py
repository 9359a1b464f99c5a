"""Ensemble checks across the models of one repository.

The same rules Triton applies when it loads an ensemble (triton-inference-server/core,
``ValidateEnsembleSchedulingConfig`` in ``src/model_config_utils.cc`` and ``ValidateEnsembleConfig`` in
``src/ensemble_scheduler/ensemble_utils.cc``), run before anything is uploaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from endpointkit.errors import SpecError
from endpointkit.modelrepo._config import REPOSITORY_FIELD, LoadedModel, TensorInfo

__all__ = ["check_ensembles"]


def check_ensembles(models: Mapping[str, LoadedModel]) -> None:
    """Check every ensemble's steps, tensor mappings and data flow, and that ensembles do not nest in a cycle.

    Raises:
        SpecError: naming the ensemble, the step index, the offending key and the valid choices.
    """
    for loaded in models.values():
        if loaded.info.is_ensemble:
            _check_ensemble(loaded, models)
    _check_nesting(models)


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names) or "none"


def _suggestion(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True, slots=True)
class _Tensor:
    """An ensemble tensor as one model sees it, for the type and shape consistency check."""

    model: str
    datatype: str
    dims: tuple[int, ...]
    batching: bool

    def full_dims(self) -> tuple[int, ...]:
        return (-1, *self.dims) if self.batching else self.dims


def _dims_match(left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    return len(left) == len(right) and all(a == b or -1 in (a, b) for a, b in zip(left, right, strict=True))


def _consistent(tensor: str, seen: _Tensor, other: _Tensor, ensemble: str) -> None:
    where = f"ensemble '{ensemble}': tensor '{tensor}'"
    if seen.datatype != other.datatype:
        raise SpecError(
            f"{where} is {seen.datatype} for model '{seen.model}' but {other.datatype} for model '{other.model}'",
            field=REPOSITORY_FIELD,
        )
    # A batching and a non-batching model may share a tensor when the full shapes agree (Triton does the same).
    if not (_dims_match(seen.dims, other.dims) or _dims_match(seen.full_dims(), other.full_dims())):
        raise SpecError(
            f"{where} has shape {list(seen.full_dims())} for model '{seen.model}' but "
            f"{list(other.full_dims())} for model '{other.model}'",
            field=REPOSITORY_FIELD,
        )


def _check_ensemble(ensemble: LoadedModel, models: Mapping[str, LoadedModel]) -> None:
    name = ensemble.info.name
    config = ensemble.config
    batching = ensemble.info.max_batch_size > 0
    tensors: dict[str, _Tensor] = {}
    # The ensemble's own tensors count with their reshape, when they have one, as in Triton.
    reshaped = {
        tensor.name: tuple(tensor.reshape.shape)
        for tensor in (*config.input, *config.output)
        if tensor.HasField("reshape")
    }
    for tensor in (*ensemble.info.inputs, *ensemble.info.outputs):
        dims = reshaped.get(tensor.name, tensor.dims)
        tensors[tensor.name] = _Tensor(name, tensor.datatype, dims, batching)

    for index, step in enumerate(config.ensemble_scheduling.step):
        where = f"ensemble '{name}' step {index}"
        if not step.model_name:
            raise SpecError(f"{where} has no model_name", field=REPOSITORY_FIELD)
        target = models.get(step.model_name)
        if target is None:
            raise SpecError(
                f"{where} names model '{step.model_name}', which is not in the repository"
                f"{_suggestion(step.model_name, models)}; the models are: {_names(sorted(models))}",
                field=REPOSITORY_FIELD,
            )
        if step.model_name == name:
            raise SpecError(f"{where} names the ensemble itself", field=REPOSITORY_FIELD)
        where = f"{where} ('{step.model_name}')"
        versions = target.info.versions
        if step.model_version != -1 and step.model_version not in versions:
            raise SpecError(
                f"{where} asks for version {step.model_version}, but Triton loads only versions "
                f"{list(versions)} of '{step.model_name}'; use -1 for the latest",
                field=REPOSITORY_FIELD,
            )
        if not step.input_map or not step.output_map:
            raise SpecError(f"{where} needs both an input_map and an output_map", field=REPOSITORY_FIELD)
        step_batching = target.info.max_batch_size > 0
        if step_batching and target.info.max_batch_size < ensemble.info.max_batch_size:
            raise SpecError(
                f"{where}: ensemble max_batch_size {ensemble.info.max_batch_size} exceeds the "
                f"max_batch_size {target.info.max_batch_size} of '{step.model_name}'",
                field=REPOSITORY_FIELD,
            )
        if target.inputs_known:
            _check_map(where, "input_map", step.input_map, target.info.inputs, step.model_name)
            _check_all_inputs_mapped(where, step.input_map, target)
        if target.outputs_known:
            _check_map(where, "output_map", step.output_map, target.info.outputs, step.model_name)
        declared = {
            tensor.name: tensor
            for known, side in (
                (target.inputs_known, target.info.inputs),
                (target.outputs_known, target.info.outputs),
            )
            if known
            for tensor in side
        }
        for model_tensor, ensemble_tensor in (*step.input_map.items(), *step.output_map.items()):
            if model_tensor not in declared:
                continue
            info = declared[model_tensor]
            seen = _Tensor(step.model_name, info.datatype, info.dims, step_batching)
            if ensemble_tensor in tensors:
                _consistent(ensemble_tensor, tensors[ensemble_tensor], seen, name)
            else:
                tensors[ensemble_tensor] = seen

    _check_data_flow(ensemble)


def _check_map(where: str, kind: str, mapping: Any, declared: tuple[TensorInfo, ...], model: str) -> None:
    valid = [tensor.name for tensor in declared]
    side = "an input" if kind == "input_map" else "an output"
    for key in mapping:
        if key not in valid:
            raise SpecError(
                f"{where}: {kind} key '{key}' is not {side} of model '{model}'{_suggestion(key, valid)}; "
                f"its {side.split()[1]}s are: {_names(valid)}",
                field=REPOSITORY_FIELD,
            )


def _check_all_inputs_mapped(where: str, input_map: Any, target: LoadedModel) -> None:
    optional = {tensor.name for tensor in target.config.input if tensor.optional}
    unmapped = [t.name for t in target.info.inputs if t.name not in input_map and t.name not in optional]
    if unmapped:
        raise SpecError(
            f"{where}: input_map does not feed input(s) {_names(unmapped)} of model '{target.info.name}'",
            field=REPOSITORY_FIELD,
        )


def _check_data_flow(ensemble: LoadedModel) -> None:
    """Every step can run, every output is written once, and no tensor is left unused."""
    name = ensemble.info.name
    steps = list(ensemble.config.ensemble_scheduling.step)
    inputs = [tensor.name for tensor in ensemble.info.inputs]
    outputs = [tensor.name for tensor in ensemble.info.outputs]
    producers: dict[str, int] = {}
    for index, step in enumerate(steps):
        for tensor in step.output_map.values():
            if tensor in producers:
                raise SpecError(
                    f"ensemble '{name}' steps {producers[tensor]} and {index} both write tensor '{tensor}'; "
                    "a tensor may appear in only one output_map",
                    field=REPOSITORY_FIELD,
                )
            producers[tensor] = index
    consumed = {tensor for step in steps for tensor in step.input_map.values()}
    for tensor in inputs:
        if tensor not in consumed:
            raise SpecError(
                f"ensemble '{name}': input '{tensor}' is not used by any step", field=REPOSITORY_FIELD
            )
    available = set(inputs)
    pending = dict(enumerate(steps))
    while pending:
        runnable = [i for i, step in pending.items() if set(step.input_map.values()) <= available]
        if not runnable:
            index, step = next(iter(pending.items()))
            missing = sorted(set(step.input_map.values()) - available)
            raise SpecError(
                f"ensemble '{name}' step {index} ('{step.model_name}') reads tensor(s) {_names(missing)}, which "
                f"no ensemble input or other step provides; the ensemble inputs are: {_names(inputs)}",
                field=REPOSITORY_FIELD,
            )
        for index in runnable:
            available.update(pending.pop(index).output_map.values())
    for tensor in outputs:
        if tensor not in producers:
            raise SpecError(
                f"ensemble '{name}': output '{tensor}' is not written by any step's output_map"
                f"{_suggestion(tensor, producers)}",
                field=REPOSITORY_FIELD,
            )
    for tensor, index in producers.items():
        if tensor not in consumed and tensor not in outputs:
            raise SpecError(
                f"ensemble '{name}' step {index} writes tensor '{tensor}', which no step reads and which is not an "
                f"ensemble output; the outputs are: {_names(outputs)}",
                field=REPOSITORY_FIELD,
            )


def _check_nesting(models: Mapping[str, LoadedModel]) -> None:
    """Ensembles may use ensembles, but never in a cycle (Triton would wait on itself)."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise SpecError(f"ensembles form a cycle: {' -> '.join(cycle)}", field=REPOSITORY_FIELD)
        if name in done or name not in models:
            return
        for step in models[name].info.steps:
            visit(step, [*path, name])
        done.add(name)

    for name, loaded in models.items():
        if loaded.info.is_ensemble:
            visit(name, [])
