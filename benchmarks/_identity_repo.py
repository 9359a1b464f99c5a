"""A one-model Python-backend repository for benchmarks: ``INPUT0`` FP32 [-1] comes back as ``OUTPUT0``.

The same model the local-adapter tests use (``tests/adapters/conftest.py``), kept here so that benchmarks do not
import the test suite.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["IDENTITY_MODEL", "write_identity_repository"]

IDENTITY_MODEL = "identity"

_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

_MODEL = textwrap.dedent(
    """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy())
                    ]
                )
                for request in requests
            ]
    """
)


def write_identity_repository(root: Path, name: str = IDENTITY_MODEL) -> Path:
    """Write the identity model under ``root`` (created if missing) and return ``root``."""
    (root / name / "1").mkdir(parents=True, exist_ok=True)
    (root / name / "config.pbtxt").write_text(_CONFIG.format(name=name))
    (root / name / "1" / "model.py").write_text(_MODEL)
    return root
