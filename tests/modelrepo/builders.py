"""Small helpers that write Triton model repositories into a temporary folder for the tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Tensor = tuple[str, str, Sequence[int]]  # (name, config data type such as "TYPE_FP32", dims)

PYTHON_MODEL = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"


def tensors(kind: str, specs: Sequence[Tensor]) -> str:
    """The ``input [...]`` or ``output [...]`` block of a config.pbtxt."""
    body = ",\n".join(
        f'  {{ name: "{name}" data_type: {data_type} dims: [ {", ".join(str(d) for d in dims)} ] }}'
        for name, data_type, dims in specs
    )
    return f"{kind} [\n{body}\n]\n"


def model_config(
    name: str,
    *,
    backend: str = "python",
    platform: str = "",
    inputs: Sequence[Tensor] = (("INPUT0", "TYPE_FP32", (4,)),),
    outputs: Sequence[Tensor] = (("OUTPUT0", "TYPE_FP32", (4,)),),
    max_batch_size: int = 8,
    extra: str = "",
) -> str:
    """A config.pbtxt for a non-ensemble model."""
    runtime = f'platform: "{platform}"\n' if platform else f'backend: "{backend}"\n'
    return (
        f'name: "{name}"\n{runtime}max_batch_size: {max_batch_size}\n'
        + tensors("input", inputs)
        + tensors("output", outputs)
        + extra
    )


def ensemble_config(
    name: str,
    steps: Sequence[Mapping[str, Any]],
    *,
    inputs: Sequence[Tensor] = (("INPUT0", "TYPE_FP32", (4,)),),
    outputs: Sequence[Tensor] = (("OUTPUT0", "TYPE_FP32", (4,)),),
    max_batch_size: int = 8,
) -> str:
    """A config.pbtxt for an ensemble; each step is {"model", "version" (optional), "inputs", "outputs"}."""
    rendered = []
    for step in steps:
        input_map = "".join(
            f' input_map {{ key: "{key}" value: "{value}" }}' for key, value in step["inputs"].items()
        )
        output_map = "".join(
            f' output_map {{ key: "{key}" value: "{value}" }}' for key, value in step["outputs"].items()
        )
        version = step.get("version", -1)
        rendered.append(
            f'  {{ model_name: "{step["model"]}" model_version: {version}{input_map}{output_map} }}'
        )
    return (
        f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {max_batch_size}\n'
        + tensors("input", inputs)
        + tensors("output", outputs)
        + "ensemble_scheduling {\n step [\n"
        + ",\n".join(rendered)
        + "\n ]\n}\n"
    )


def write_model(
    root: Path, name: str, config: str | None, files: Mapping[str, bytes | str] | None = None
) -> Path:
    """Create ``root/name`` with its config.pbtxt (unless None) and files (default: ``1/model.py``)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.pbtxt").write_text(config)
    for relative, content in (files if files is not None else {"1/model.py": PYTHON_MODEL}).items():
        path = folder / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def write_pipeline(root: Path) -> Path:
    """A preprocess -> classifier pipeline behind an ensemble named "pipeline"; returns ``root``."""
    write_model(
        root,
        "pre",
        model_config(
            "pre", inputs=[("RAW", "TYPE_UINT8", [-1])], outputs=[("PIXELS", "TYPE_FP32", [3, 8, 8])]
        ),
    )
    write_model(
        root,
        "net",
        model_config(
            "net", inputs=[("PIXELS", "TYPE_FP32", [3, 8, 8])], outputs=[("SCORES", "TYPE_FP32", [10])]
        ),
    )
    write_model(
        root,
        "pipeline",
        ensemble_config(
            "pipeline",
            [
                {"model": "pre", "inputs": {"RAW": "IMAGE"}, "outputs": {"PIXELS": "pixels"}},
                {"model": "net", "inputs": {"PIXELS": "pixels"}, "outputs": {"SCORES": "SCORES"}},
            ],
            inputs=[("IMAGE", "TYPE_UINT8", [-1])],
            outputs=[("SCORES", "TYPE_FP32", [10])],
        ),
        {"1/": b""},
    )
    return root
