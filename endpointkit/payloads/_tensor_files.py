"""A tensor from a file, read the way ``endpointkit invoke --input NAME=FILE`` and the spec's ``verify`` checks read
one: ``.npy`` as saved by numpy, ``.json`` as a nested list or ``{"data", "datatype", "shape"}``, anything else as
raw bytes (a UINT8 tensor of shape ``[N]``, e.g. a JPEG for a model that decodes images itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from endpointkit.errors import PayloadError
from endpointkit.payloads.types import Tensor

__all__ = ["read_tensor_file"]


def read_tensor_file(name: str, path: Path, *, label: str) -> Tensor:
    """The tensor ``name`` held in the file at ``path``. Reads the file; no other I/O.

    Args:
        name: the tensor's name (a model input, or the output an expectation is for).
        path: a ``.npy`` file (loaded without pickle), a ``.json`` file, or any other file sent as raw UINT8 bytes.
        label: what the file was given as, starting every error message (``--input IMAGE``,
            ``verify[0].inputs.IMAGE``).

    Raises:
        PayloadError: the file cannot be read, is not JSON, is JSON without ``data``, holds ragged nested lists,
            or its ``shape`` does not fit its data; ``field`` is ``name``.
    """
    try:
        if path.suffix == ".npy":
            return Tensor(name, np.load(path, allow_pickle=False))
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise PayloadError(f"{label}: cannot read {path}: {exc}", field=name) from None
    if path.suffix == ".json":
        return _json_tensor(name, path, raw, label)
    return Tensor(name, np.frombuffer(raw, dtype=np.uint8))


def _json_tensor(name: str, path: Path, raw: bytes, label: str) -> Tensor:
    """A tensor from a JSON file: a nested list, or ``{"data", "datatype", "shape"}``."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"{label}: {path} is not JSON: {exc}", field=name) from None
    if not isinstance(value, dict):
        return Tensor(name, _json_array(name, path, value, label))
    if "data" not in value:
        raise PayloadError(f"{label}: {path} is an object without 'data'", field=name)
    array = _json_array(name, path, value["data"], label)
    if "shape" in value:
        try:
            array = array.reshape(value["shape"])
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"{label}: {path}: {exc}", field=name) from None
    return Tensor(name, array, datatype=value.get("datatype"))


def _json_array(name: str, path: Path, data: Any, label: str) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(data)
    except ValueError:  # numpy refuses nested lists of different lengths
        raise PayloadError(
            f"{label}: {path} holds ragged nested lists (rows of different lengths); a tensor needs "
            "every row of a dimension to have the same length",
            field=name,
        ) from None
