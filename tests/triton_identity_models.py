"""A Triton model repository of Python-backend identity models, one per datatype, for live codec tests.

``write_identity_models(root)`` writes, for every Triton datatype ``DT``, a model ``identity_<dt>`` whose
optional inputs ``INPUT0`` (dims ``[-1]``) and ``INPUT1`` (dims ``[-1, -1]``) come back unchanged as
``OUTPUT0`` and ``OUTPUT1``, plus ``identity_mixed`` with one optional input per datatype (``IN_<DT>`` to
``OUT_<DT>``), plus ``identity_scalar``, whose ``[1]`` inputs come back as shape ``[]`` outputs (Triton
refuses ``dims: [ ]`` in a config, so a scalar can only travel in a response). Models emit outputs in
reverse input order, so a client that matches outputs by position instead of by name fails.

The Python backend cannot turn BF16 into numpy (``as_numpy`` raises "Tensor dtype is BF16 and cannot be
converted to NumPy. Use to_dlpack() and from_dlpack() instead."), so tensors other than BYTES pass through
DLPack, which also keeps them independent of the numpy the stub imports.

The stub's pybind11 is built for the numpy 1 ABI. It runs isolated (``PYTHONPATH`` is ignored) and finds its
``site-packages`` from the ``python3`` on ``PATH``, so unless the virtualenv's ``bin`` comes first it imports
the base interpreter's numpy; with numpy 2 there, BYTES inputs arrive as garbage (every byte equal to the
first) and numpy float16 outputs come back with ``binary_data_size: 0``. :func:`stub_environment` gives the
server the ``PATH`` that avoids this.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "CONFIG_TYPES",
    "MIXED_MODEL",
    "SCALAR_DATATYPES",
    "SCALAR_MODEL",
    "identity_model_name",
    "stub_environment",
    "write_identity_models",
]

CONFIG_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BF16": "TYPE_BF16",
    "BYTES": "TYPE_STRING",
}
"""Triton wire datatype -> model config ``data_type``."""

MIXED_MODEL = "identity_mixed"
SCALAR_MODEL = "identity_scalar"
SCALAR_DATATYPES = tuple(datatype for datatype in CONFIG_TYPES if datatype != "BF16")
"""Datatypes of ``identity_scalar``: BF16 has no numpy form in the Python backend to reshape."""

_MODEL_PY = textwrap.dedent(
    '''
    """Identity: every input present comes back as its paired output, in reverse order."""

    import json

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            config = json.loads(args["model_config"])
            parameters = config.get("parameters", {})
            self.scalar = parameters.get("scalar_outputs", {}).get("string_value") == "true"
            self.pairs = [
                (source["name"], target["name"], source["data_type"])
                for source, target in zip(config["input"], config["output"])
            ]

        def execute(self, requests):
            responses = []
            for request in requests:
                outputs = []
                for input_name, output_name, data_type in reversed(self.pairs):
                    tensor = pb_utils.get_input_tensor_by_name(request, input_name)
                    if tensor is None:
                        continue
                    if self.scalar:
                        outputs.append(pb_utils.Tensor(output_name, tensor.as_numpy().reshape(())))
                    elif data_type == "TYPE_STRING":
                        outputs.append(pb_utils.Tensor(output_name, tensor.as_numpy()))
                    else:
                        # DLPack, not numpy: as_numpy() refuses BF16.
                        outputs.append(pb_utils.Tensor.from_dlpack(output_name, tensor.to_dlpack()))
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            return responses
    '''
).lstrip()


def identity_model_name(datatype: str) -> str:
    """The name of the identity model for ``datatype`` (``"FP32"`` -> ``"identity_fp32"``)."""
    return f"identity_{datatype.lower()}"


def _tensor(name: str, datatype: str, dims: str) -> str:
    return f'  {{ name: "{name}" data_type: {CONFIG_TYPES[datatype]} dims: {dims} optional: true }}'


def _config(name: str, pairs: list[tuple[str, str, str, str]], scalar: bool) -> str:
    inputs = ",\n".join(_tensor(source, datatype, dims) for source, _, datatype, dims in pairs)
    outputs = ",\n".join(
        _tensor(target, datatype, dims).replace(" optional: true", "") for _, target, datatype, dims in pairs
    )
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
        + ('parameters: { key: "scalar_outputs" value: { string_value: "true" } }\n' if scalar else "")
    )


def _write_model(root: Path, name: str, pairs: list[tuple[str, str, str, str]], scalar: bool = False) -> None:
    version = root / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "model.py").write_text(_MODEL_PY)
    (root / name / "config.pbtxt").write_text(_config(name, pairs, scalar))


def write_identity_models(root: Path, datatypes: Iterable[str] = tuple(CONFIG_TYPES)) -> Path:
    """Write the identity models for ``datatypes`` (all by default) and ``identity_mixed`` under ``root``.

    Returns ``root``, ready to pass as ``--model-repository``.
    """
    root.mkdir(parents=True, exist_ok=True)
    for datatype in datatypes:
        pairs = [("INPUT0", "OUTPUT0", datatype, "[ -1 ]"), ("INPUT1", "OUTPUT1", datatype, "[ -1, -1 ]")]
        _write_model(root, identity_model_name(datatype), pairs)
    mixed = [(f"IN_{datatype}", f"OUT_{datatype}", datatype, "[ -1 ]") for datatype in CONFIG_TYPES]
    _write_model(root, MIXED_MODEL, mixed)
    scalar = [(f"IN_{datatype}", f"OUT_{datatype}", datatype, "[ 1 ]") for datatype in SCALAR_DATATYPES]
    _write_model(root, SCALAR_MODEL, scalar, scalar=True)
    return root


def stub_environment() -> dict[str, str]:
    """Server environment that makes the Python backend stub use this interpreter's packages (``PATH``)."""
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
