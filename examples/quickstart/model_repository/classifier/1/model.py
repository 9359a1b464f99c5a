"""Triton Python-backend model: a small deterministic numpy classifier over 10 labels.

Input ``PREPROCESSED`` (FP32, dims [3, 32, 32]); output ``SCORES`` (FP32, dims [10]): softmax
probabilities in the order of ``labels.txt`` (CIFAR-10 class names), so each row sums to 1.

The model averages 4x4 pixel blocks (192 features) and applies one dense layer whose weights live in
``weights.npz`` next to this file: ``weight`` float32 [10, 192] and ``bias`` float32 [10], drawn once
from ``numpy.random.default_rng(20240611)`` (standard normal, weight scaled by 4/sqrt(192), bias by
0.1). It is a stand-in for a real network: deterministic, not trained.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

POOL = 4


def classify(
    images: npt.NDArray[np.float32], weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Return softmax scores [batch, 10] for images [batch, 3, 32, 32]."""
    batch, channels, height, width = images.shape
    pooled = images.reshape(batch, channels, height // POOL, POOL, width // POOL, POOL).mean(axis=(3, 5))
    logits = pooled.reshape(batch, -1) @ weight.T + bias
    # Subtracting the row maximum keeps exp() from overflowing without changing the softmax.
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores: npt.NDArray[np.float32] = (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(
        np.float32
    )
    return scores


class TritonPythonModel:
    """Entry point the Python backend looks for."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the weights stored in this version's folder."""
        path = os.path.join(args["model_repository"], args["model_version"], "weights.npz")
        with np.load(path) as stored:
            self.weight = stored["weight"].astype(np.float32)
            self.bias = stored["bias"].astype(np.float32)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Score every request of the batch."""
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "PREPROCESSED").as_numpy()
            scores = classify(images.astype(np.float32, copy=False), self.weight, self.bias)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("SCORES", scores)]))
        return responses
