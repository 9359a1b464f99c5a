"""Triton Python-backend model: decode encoded images into normalised FP32 tensors.

Input ``IMAGE`` (UINT8, dims [-1]) holds the bytes of one encoded image (JPEG, PNG, anything Pillow
reads) per batch row. Output ``PREPROCESSED`` (FP32, dims [3, 32, 32]) is the image converted to RGB,
resized to 32x32 and normalised per channel, in CHW order.

Rows of one request share a length, so a client batching images of different sizes pads them with
trailing zero bytes: JPEG and PNG decoders stop at their end marker and ignore the padding.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils
from PIL import Image

SIZE = 32
# CIFAR-10 channel statistics, the data set the classifier's labels come from.
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(3, 1, 1)


def preprocess(encoded: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Decode one encoded image and return it as a normalised [3, SIZE, SIZE] FP32 array."""
    if encoded.size == 0:
        raise ValueError("the image is empty")
    try:
        opened = Image.open(io.BytesIO(encoded.tobytes()))
    except Image.UnidentifiedImageError:
        raise ValueError(f"{encoded.size} bytes that are not an image format Pillow reads") from None
    with opened as image:
        # Let the JPEG decoder downscale while decoding: much less work for large photos.
        image.draft("RGB", (SIZE, SIZE))
        rgb = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    normalised: npt.NDArray[np.float32] = ((pixels - MEAN) / STD).astype(np.float32)
    return normalised


class TritonPythonModel:
    """Entry point the Python backend looks for."""

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer every request in the batch; a bad image fails only its own request."""
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            rows = images.reshape(1, -1) if images.ndim == 1 else images
            try:
                batch = np.stack([preprocess(row) for row in rows])
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                # INVALID_ARG makes Triton answer 400: the client sent a bad image.
                error = pb_utils.TritonError(
                    f"IMAGE is not a readable image: {exc}", pb_utils.TritonError.INVALID_ARG
                )
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            output = pb_utils.Tensor("PREPROCESSED", batch)
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
