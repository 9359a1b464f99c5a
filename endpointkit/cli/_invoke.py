"""The invoke command: read the input files, send one request, print or save the outputs."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from endpointkit.cli._errors import EXIT_OK, _UsageError
from endpointkit.cli._output import _emit
from endpointkit.errors import PayloadError


def _cmd_invoke(args: argparse.Namespace) -> int:
    from endpointkit.invoke import invoke_endpoint

    if not args.input:
        raise _UsageError("invoke needs at least one --input NAME=FILE")
    inputs = dict(_read_input(item) for item in args.input)
    response = invoke_endpoint(
        args.spec,
        inputs,
        target=args.target,
        outputs=args.output or None,
        binary=args.binary,
        model=args.model,
        timeout=args.timeout,
    )
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, array in response.outputs.items():
            path = args.output_dir / f"{name}.npy"
            np.save(path, array, allow_pickle=array.dtype == object)
            written[name] = str(path)
        _emit(args, {"outputs": written}, "\n".join(f"{name}: {path}" for name, path in written.items()))
        return EXIT_OK
    document = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": {name: _output_document(array) for name, array in response.outputs.items()},
    }
    sys.stdout.write(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n"
    )
    return EXIT_OK


def _read_input(item: str) -> tuple[str, Any]:
    name, separator, file_name = item.partition("=")
    if not separator or not name or not file_name:
        raise _UsageError(f"--input {item!r}: write NAME=FILE, e.g. --input IMAGE=sample.jpg")
    path = Path(file_name)
    try:
        if path.suffix == ".npy":
            return name, np.load(path, allow_pickle=False)
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise PayloadError(f"--input {name}: cannot read {path}: {exc}", field=name) from None
    if path.suffix == ".json":
        return name, _json_input(name, path, raw)
    return name, np.frombuffer(raw, dtype=np.uint8)


def _json_input(name: str, path: Path, raw: bytes) -> Any:
    from endpointkit.payloads import Tensor

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"--input {name}: {path} is not JSON: {exc}", field=name) from None
    if isinstance(value, dict):
        if "data" not in value:
            raise PayloadError(f"--input {name}: {path} is an object without 'data'", field=name)
        array = np.asarray(value["data"])
        if "shape" in value:
            array = array.reshape(value["shape"])
        return Tensor(name, array, datatype=value.get("datatype"))
    return np.asarray(value)


def _output_document(array: np.ndarray[Any, Any]) -> dict[str, Any]:
    if array.dtype == object:
        data = [_text(item) for item in array.reshape(-1)]
    else:
        data = array.reshape(-1).tolist()
    return {"shape": list(array.shape), "dtype": str(array.dtype), "data": data}


def _text(item: Any) -> Any:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(item).decode()}
    return item
