"""The invoke command: read the input files, send one request, print or save the outputs.

Batching models (``max_batch_size > 0`` in their config.pbtxt) take a leading batch dimension that the
config's ``dims`` leave out. An input read from a file whose rank equals the declared ``dims`` gets a batch
dimension of 1, so ``--input IMAGE=sample.jpg`` (raw bytes, shape ``[N]``) reaches an ensemble declared
``dims: [-1]`` as ``[1, N]``. The config is read from the spec's local model repository (the one apply
deploys); for a repository already in cloud storage, ``--batch`` adds the dimension to every input.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from endpointkit import _api
from endpointkit._api import ModelInfo
from endpointkit.cli._output import _emit
from endpointkit.errors import EXIT_OK, UsageError
from endpointkit.invoke import invoke_endpoint, invoke_stream
from endpointkit.payloads import (
    InferResponse,
    RequestedOutput,
    Tensor,
    parse_classification,
    read_tensor_file,
)
from endpointkit.spec import Deployment

# A tensor of up to _SHOWN_ELEMENTS values is shown whole; a bigger one by a preview of its first and last values.
_SHOWN_ELEMENTS = 24
_PREVIEW_HEAD, _PREVIEW_TAIL = 8, 2
_SHOWN_BYTES = 48


def _cmd_invoke(args: argparse.Namespace) -> int:
    if not args.input:
        raise UsageError("invoke needs at least one --input NAME=FILE")
    tensors = _read_inputs(args.input)
    deployment = _api.resolve(args.spec, args.target)
    model = _api.model_info(deployment, args.model)
    tensors = [_batched(tensor, model, force=args.batch) for tensor in tensors]
    classified = _classified_outputs(args, model)
    outputs: list[str | RequestedOutput] | None = None
    if classified:
        outputs = [RequestedOutput(name, class_count=args.classes) for name in classified]
    elif args.output:
        outputs = list(args.output)
    if args.stream:
        return _print_stream(args, deployment, tensors, outputs, classified)
    response = invoke_endpoint(
        deployment,
        tensors,
        outputs=outputs,
        binary=args.binary,
        model=args.model,
        timeout=args.timeout,
        transport=args.transport,
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
    if args.json:
        sys.stdout.write(orjson.dumps(_response_document(response, classified)).decode() + "\n")
    else:
        sys.stdout.write(_describe_response(response, classified) + "\n")
    return EXIT_OK


def _print_stream(
    args: argparse.Namespace,
    deployment: Deployment,
    tensors: list[Tensor],
    outputs: list[str | RequestedOutput] | None,
    classified: list[str],
) -> int:
    """Print each response of a gRPC stream as it arrives: a block each, or with --json a JSON line each."""
    if args.transport == "http":
        raise UsageError("--stream goes over gRPC: drop --transport http")
    if args.output_dir is not None:
        raise UsageError("--stream prints each response as it arrives: drop --output-dir")
    responses = invoke_stream(deployment, tensors, outputs=outputs, model=args.model, timeout=args.timeout)
    for index, response in enumerate(responses):
        if args.json:
            text = orjson.dumps(_response_document(response, classified)).decode()
        else:
            text = f"response {index}:\n" + _describe_response(response, classified)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ inputs


def _read_inputs(items: list[str]) -> list[Tensor]:
    """The ``--input NAME=FILE`` tensors, in command-line order.

    Raises:
        UsageError: an item is not ``NAME=FILE``, or names an input a second time.
        PayloadError: a file cannot be read as a tensor (names the input and the file).
    """
    files: dict[str, Path] = {}
    for item in items:
        name, separator, file_name = item.partition("=")
        if not separator or not name or not file_name:
            raise UsageError(f"--input {item!r}: write NAME=FILE, e.g. --input IMAGE=sample.jpg")
        if name in files:
            raise UsageError(
                f"--input {name} is given twice ({files[name]} and {file_name}): give each input once"
            )
        files[name] = Path(file_name)
    return [read_tensor_file(name, path, label=f"--input {name}") for name, path in files.items()]


def _batched(tensor: Tensor, model: ModelInfo | None, *, force: bool) -> Tensor:
    """``tensor`` with a leading batch dimension of 1 when the model batches and the file left it out."""
    array = np.asarray(tensor.data)
    if not (force or _batch_missing(tensor.name, array, model)):
        return tensor
    return Tensor(tensor.name, array[np.newaxis, ...], datatype=tensor.datatype)


def _batch_missing(name: str, array: np.ndarray[Any, Any], model: ModelInfo | None) -> bool:
    return model is not None and model.lacks_batch_dimension(name, array.ndim)


def _classified_outputs(args: argparse.Namespace, model: ModelInfo | None) -> list[str]:
    """The outputs to ask Triton's classification extension for (``--classes N``), or none."""
    if args.classes is None:
        return []
    if args.output:
        return list(args.output)
    if model is not None and model.outputs:
        return [tensor.name for tensor in model.outputs]
    raise UsageError("--classes needs the outputs to classify: name them with --output NAME")


# ------------------------------------------------------------------------------------------------ outputs


def _response_document(response: InferResponse, classified: list[str]) -> dict[str, Any]:
    outputs = {}
    for name, array in response.outputs.items():
        document = _output_document(array, response.datatypes.get(name))
        if name in classified:
            document["classes"] = [
                {"value": item.value, "index": item.index, "label": item.label}
                for item in parse_classification(array).reshape(-1)
            ]
        outputs[name] = document
    return {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": outputs,
    }


def _output_document(array: np.ndarray[Any, Any], datatype: str | None = None) -> dict[str, Any]:
    if array.dtype == object:
        data = [_text(item) for item in array.reshape(-1)]
    else:
        data = array.reshape(-1).tolist()
    document = {"shape": list(array.shape), "dtype": str(array.dtype), "data": data}
    if datatype:
        document["datatype"] = datatype
    return document


def _text(item: Any) -> Any:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(item).decode()}
    return item


def _describe_response(response: InferResponse, classified: list[str]) -> str:
    """Each output as ``NAME: DATATYPE [shape]`` and its values; classifications as ranked labels."""
    version = f" version {response.model_version}" if response.model_version else ""
    lines = [f"{response.model_name or 'model'}{version}: {len(response.outputs)} output(s)"]
    for name, array in response.outputs.items():
        datatype = response.datatypes.get(name) or str(array.dtype)
        shape = "[" + ", ".join(str(size) for size in array.shape) + "]"
        if name in classified:
            lines.append(f"{name}: {datatype} {shape}, top {array.shape[-1] if array.ndim else 1} classes")
            lines.extend(_describe_classes(array))
            continue
        lines.append(f"{name}: {datatype} {shape}")
        lines.extend("  " + line for line in _describe_values(array).splitlines())
    return "\n".join(lines)


def _describe_classes(array: np.ndarray[Any, Any]) -> list[str]:
    parsed = parse_classification(array)
    rows = parsed.reshape(-1, parsed.shape[-1]) if parsed.ndim else parsed.reshape(1, 1)
    lines = []
    for item_index, row in enumerate(rows):
        indent = "  "
        if len(rows) > 1:
            lines.append(f"  batch item {item_index}:")
            indent = "    "
        width = max(len(entry.label or f"class {entry.index}") for entry in row)
        for rank, entry in enumerate(row, start=1):
            label = entry.label or f"class {entry.index}"
            index = f"  (class {entry.index})" if entry.label else ""
            lines.append(f"{indent}{rank}. {label:<{width}}  {entry.value:.4f}{index}")
    return lines


def _describe_values(array: np.ndarray[Any, Any]) -> str:
    """All values of a small tensor; of a big one, its statistics and its first and last values, flattened."""
    if array.dtype == object:
        shown = np.empty(array.shape, dtype=object)
        flat = shown.reshape(-1)
        for position, item in enumerate(array.reshape(-1)):
            flat[position] = _short_text(item)
        if shown.size <= _SHOWN_ELEMENTS:
            return np.array2string(shown, formatter={"all": str}, max_line_width=100)
        head = " ".join(flat[:_PREVIEW_HEAD])
        tail = " ".join(flat[-_PREVIEW_TAIL:])
        return f"{array.size} values\n[{head} ... {tail}] (flattened)"
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        if array.size <= _SHOWN_ELEMENTS:
            return np.array2string(array)
        flat_values = array.reshape(-1)
        head = np.array2string(flat_values[:_PREVIEW_HEAD])[1:-1]
        tail = np.array2string(flat_values[-_PREVIEW_TAIL:])[1:-1]
    preview = f"[{head} ... {tail}] (flattened)"
    if array.dtype == bool:
        return f"{array.size} values, {int(array.sum())} true\n{preview}"
    return f"{array.size} values: min {array.min():.4g}, max {array.max():.4g}, mean {array.mean():.4g}\n{preview}"


def _short_text(item: Any) -> str:
    if not isinstance(item, bytes):
        return repr(item)
    try:
        text = item.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(item)} bytes>"
    if len(text) > _SHOWN_BYTES:
        text = text[:_SHOWN_BYTES] + "…"
    return repr(text)
