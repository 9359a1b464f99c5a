"""Triton model repositories of a tiny image classifier, in versions whose answers differ, for rollout tests.

Each repository holds one Python-backend model, ``classify``: ``IMAGE`` (FP32, ``[3, H, W]``, channels first)
comes back as ``SCORES`` (FP32, ``[4]``), a linear layer over the three channel means. A
:class:`Classifier` says which weights a version has and how it preprocesses its input; :meth:`Classifier.scores`
computes with numpy what the served model answers, so a test knows every version's answer to an image:

- :data:`CLASSIFIER_V1`, the version in service;
- :data:`CLASSIFIER_V2`, a retrained version: other weights, so another correct answer;
- :data:`CLASSIFIER_V2_BGR`, the same weights with the wrong preprocessing: the channels are read in reverse
  order (BGR for RGB), a classic deployment bug that serves, answers, and answers wrong.

On :func:`sample_image` the three answers are far apart, so a test can tell them apart with a tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLASSIFIER_V1",
    "CLASSIFIER_V2",
    "CLASSIFIER_V2_BGR",
    "CLASSIFY_MODEL",
    "Classifier",
    "sample_image",
    "write_classifier",
]

CLASSIFY_MODEL = "classify"

_MODEL_PY = textwrap.dedent(
    '''
    """SCORES = weights @ (channel means of IMAGE) + bias, after the configured channel order."""

    import json

    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            parameters = json.loads(args["model_config"])["parameters"]
            self.weights = np.array(json.loads(parameters["weights"]["string_value"]), dtype=np.float32)
            self.bias = np.array(json.loads(parameters["bias"]["string_value"]), dtype=np.float32)
            self.reverse_channels = parameters["channel_order"]["string_value"] == "bgr"

        def execute(self, requests):
            responses = []
            for request in requests:
                image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                if self.reverse_channels:
                    image = image[::-1]
                means = image.reshape(3, -1).mean(axis=1, dtype=np.float32)
                scores = (self.weights @ means + self.bias).astype(np.float32)
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("SCORES", scores)]))
            return responses
    '''
).lstrip()

_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }} ]
output [ {{ name: "SCORES" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters: {{ key: "weights" value: {{ string_value: "{weights}" }} }}
parameters: {{ key: "bias" value: {{ string_value: "{bias}" }} }}
parameters: {{ key: "channel_order" value: {{ string_value: "{channel_order}" }} }}
"""


@dataclasses.dataclass(frozen=True)
class Classifier:
    """One version of ``classify``: its weights (4 rows of 3), bias (4) and the channel order it reads."""

    weights: tuple[tuple[float, float, float], ...]
    bias: tuple[float, ...]
    channel_order: Literal["rgb", "bgr"] = "rgb"

    def scores(self, image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """What the served model answers for ``image`` (``[3, H, W]``), computed here with numpy."""
        if self.channel_order == "bgr":
            image = image[::-1]
        means = image.reshape(3, -1).mean(axis=1, dtype=np.float32)
        weights, bias = np.array(self.weights, dtype=np.float32), np.array(self.bias, dtype=np.float32)
        answer: npt.NDArray[np.float32] = (weights @ means + bias).astype(np.float32)
        return answer


CLASSIFIER_V1 = Classifier(
    weights=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.5)),
    bias=(0.0, 0.0, 0.0, 0.0),
)
CLASSIFIER_V2 = Classifier(
    weights=((2.0, -1.0, 0.0), (0.0, 3.0, -1.0), (1.0, 0.0, 2.0), (-0.5, 0.25, 1.0)),
    bias=(0.5, -0.5, 1.0, 0.0),
)
CLASSIFIER_V2_BGR = dataclasses.replace(CLASSIFIER_V2, channel_order="bgr")


def sample_image(height: int = 4, width: int = 5) -> npt.NDArray[np.float32]:
    """An image whose channel means differ (about 0.1, 0.5 and 0.9), so that reading its channels in reverse
    changes every version's answer."""
    ramp = np.linspace(0.0, 0.2, height * width, dtype=np.float32).reshape(height, width)
    image: npt.NDArray[np.float32] = np.stack([ramp, ramp + 0.4, ramp + 0.8]).astype(np.float32)
    return image


def write_classifier(root: Path, classifier: Classifier) -> Path:
    """Write a repository holding ``classify`` as ``classifier`` under ``root``; returns ``root``."""
    version = root / CLASSIFY_MODEL / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "model.py").write_text(_MODEL_PY)
    (root / CLASSIFY_MODEL / "config.pbtxt").write_text(
        _CONFIG.format(
            name=CLASSIFY_MODEL,
            weights=json.dumps([list(row) for row in classifier.weights]),
            bias=json.dumps(list(classifier.bias)),
            channel_order=classifier.channel_order,
        )
    )
    return root
