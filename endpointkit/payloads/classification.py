"""Reading Triton classification outputs (``RequestedOutput(name, class_count=k)``).

Triton turns a classified output into BYTES elements ``"<value>:<index>[:<label>]"`` of shape
``[batch, min(k, classes)]`` or ``[min(k, classes)]`` (server ``docs/protocol/extension_classification.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from endpointkit.errors import PayloadError

__all__ = ["Classification", "parse_classification"]


@dataclass(frozen=True, slots=True)
class Classification:
    """One class of a classification output: its score, its index and its label (``None`` without labels)."""

    value: float
    index: int
    label: str | None = None


def _parse(element: object, position: int) -> Classification:
    text = element.decode("utf-8", "replace") if isinstance(element, bytes) else element
    if not isinstance(text, str):
        raise PayloadError(f"classification element {position} is not text: {element!r}")
    parts = text.split(":", 2)
    try:
        return Classification(float(parts[0]), int(parts[1]), parts[2] if len(parts) == 3 else None)
    except (IndexError, ValueError):
        raise PayloadError(
            f"classification element {position} is {text!r}, not 'value:index[:label]'"
        ) from None


def parse_classification(values: npt.ArrayLike) -> npt.NDArray[Any]:
    """Parse classification elements into an object array of :class:`Classification`, same shape.

    Raises:
        PayloadError: an element is not ``value:index[:label]``.
    """
    array = np.asarray(values, dtype=object)
    parsed = np.empty(array.shape, dtype=object)
    flat = parsed.reshape(-1)
    for position, element in enumerate(array.reshape(-1)):
        flat[position] = _parse(element, position)
    return parsed
