"""The ``endpointkit`` command: validate, plan, apply, status, invoke, destroy.

Exit codes: 0 success, 1 provider or runtime failure, 2 bad input (spec, payload, usage, unknown target,
unsupported capability), 3 timeout. Expected errors print one message, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np
import orjson

from endpointkit import _api
from endpointkit._wait import ProgressEvent
from endpointkit.adapters.base import EndpointState
from endpointkit.errors import (
    EndpointKitError,
    MissingDependencyError,
    PayloadError,
    ProviderError,
    ProvisionTimeout,
    SpecError,
    UnsupportedCapabilityError,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3


class _UsageError(Exception):
    """Bad command-line usage: exit 2 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="endpointkit",
        description="Provision NVIDIA Triton endpoints on a local Triton, SageMaker or AKS from one spec.",
    )
    parser.add_argument("--version", action="version", version=f"endpointkit {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_spec(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("spec", help="the spec file (YAML)")
        command.add_argument("--target", help="which of the spec's targets (needed when it has several)")
        command.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return command

    with_spec("validate", "Check a spec (and its model repository) without touching any target.")
    plan = with_spec("plan", "Show what apply would change. Read-only.")
    plan.add_argument("--dry-run", action="store_true", help="plan against an empty in-memory target")
    apply = with_spec("apply", "Create or update the endpoint and wait until it serves.")
    apply.add_argument("--dry-run", action="store_true", help="apply to an in-memory target: no real call")
    with_spec("status", "Show the endpoint's state. Read-only.")
    destroy = with_spec("destroy", "Delete the endpoint, its config and its model. Idempotent.")
    destroy.add_argument(
        "--purge-artifacts", action="store_true", help="also delete uploaded model archives (SageMaker)"
    )
    invoke = with_spec("invoke", "Send one inference request and print the outputs.")
    invoke.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="an input tensor: a .npy file, a .json file (a nested list, or {data, datatype, shape}), "
        "or any other file sent as raw UINT8 bytes",
    )
    invoke.add_argument("--output", action="append", default=[], metavar="NAME", help="request only these outputs")
    invoke.add_argument("--model", help="the Triton model to call (default: the repository's default model)")
    payload = invoke.add_mutually_exclusive_group()
    payload.add_argument("--binary", dest="binary", action="store_const", const=True, help="send binary+json")
    payload.add_argument("--json-payload", dest="binary", action="store_const", const=False, help="send JSON")
    invoke.add_argument("--output-dir", type=Path, help="write each output as NAME.npy here instead of printing it")
    invoke.add_argument("--timeout", type=float, default=None, help="seconds for the request")
    return parser


def _version() -> str:
    from endpointkit import __version__  # noqa: PLC0415  (avoids an import cycle at module load)

    return __version__


# ------------------------------------------------------------------------------------------------ progress


class _ProgressLine:
    """A live status line on a terminal; plain lines (on status change, or every 30 s) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last: tuple[str, str] | None = None
        self._last_time = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        text = f"{event.subject}: {event.status} ({event.elapsed:.0f}s / {event.timeout:.0f}s)"
        if self.live:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            return
        key = (event.subject, event.status)
        now = time.monotonic()
        if key != self._last or now - self._last_time >= 30:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last, self._last_time = key, now

    def finish(self) -> None:
        if self.live and self._last is not None:
            self.stream.write("\n")
        elif self.live:
            self.stream.write("\r\033[K")
        self.stream.flush()


# ------------------------------------------------------------------------------------------------ commands


def _emit(args: argparse.Namespace, document: Any, human: str) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")


def _adapter_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        from endpointkit.adapters.memory import MemoryAdapter  # noqa: PLC0415

        options["adapter"] = MemoryAdapter(target_name=args.target or "dry-run")
    if getattr(args, "purge_artifacts", False):
        options["purge_artifacts"] = True
    return options


def _describe_state(state: EndpointState | None, name: str) -> str:
    if state is None:
        return f"{name}: NOT_FOUND"
    lines = [f"{state.name} on {state.target} ({state.kind}): {state.status.value}"]
    if state.url:
        lines.append(f"  url: {state.url}")
    if state.reason:
        lines.append(f"  reason: {state.reason}")
    if state.expires_at:
        lines.append(f"  expires at: {state.expires_at.isoformat()}")
    for variant in state.variants:
        lines.append(
            f"  variant {variant.name}: {variant.instance_count} x {variant.instance_type or 'local'} "
            f"weight {variant.weight:g}" + (f" ({variant.status})" if variant.status else "")
        )
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace) -> int:
    from endpointkit.spec import load_spec  # noqa: PLC0415

    spec = load_spec(args.spec)
    targets = [args.target] if args.target else list(spec.targets)
    for target in targets:
        spec.deployment(target)
    _emit(args, {"valid": True, "name": spec.name, "targets": targets}, f"{args.spec}: valid ({', '.join(targets)})")
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    plan = _api.plan(args.spec, args.target, **_adapter_options(args))
    _emit(args, plan.to_dict(), str(plan))
    return EXIT_OK


def _cmd_apply(args: argparse.Namespace) -> int:
    progress = _ProgressLine(sys.stderr)
    try:
        state = _api.apply(args.spec, args.target, progress=progress, **_adapter_options(args))
    finally:
        progress.finish()
    _emit(args, state.to_dict(), _describe_state(state, state.name))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    state = _api.status(args.spec, args.target)
    if state is None:
        deployment = _api.resolve(args.spec, args.target)
        _emit(
            args,
            {"name": deployment.name, "target": deployment.target_name, "kind": deployment.kind, "status": "NOT_FOUND"},
            _describe_state(None, deployment.name),
        )
    else:
        _emit(args, state.to_dict(), _describe_state(state, state.name))
    return EXIT_OK


def _cmd_destroy(args: argparse.Namespace) -> int:
    deployment = _api.resolve(args.spec, args.target)
    progress = _ProgressLine(sys.stderr)
    try:
        existed = _api.destroy(deployment.spec, args.target, progress=progress, **_adapter_options(args))
    finally:
        progress.finish()
    outcome = "destroyed" if existed else "nothing to destroy"
    _emit(
        args,
        {"name": deployment.name, "target": deployment.target_name, "destroyed": existed},
        f"{deployment.name} on {deployment.target_name}: {outcome}",
    )
    return EXIT_OK


def _cmd_invoke(args: argparse.Namespace) -> int:
    from endpointkit.invoke import invoke_endpoint  # noqa: PLC0415

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
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n")
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
    from endpointkit.payloads import Tensor  # noqa: PLC0415

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


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _cmd_validate,
    "plan": _cmd_plan,
    "apply": _cmd_apply,
    "status": _cmd_status,
    "destroy": _cmd_destroy,
    "invoke": _cmd_invoke,
}


def register_command(name: str, handler: Callable[[argparse.Namespace], int]) -> None:
    """Hook for commands defined in other modules (terraform, reap)."""
    _COMMANDS[name] = handler


@contextlib.contextmanager
def _interrupts_as_errors() -> Iterator[None]:
    # SIGTERM from a CI runner or Terraform should run the same cleanup as Ctrl-C.
    previous = signal.getsignal(signal.SIGTERM)

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, (SpecError, PayloadError, UnsupportedCapabilityError, _UsageError)):
        return EXIT_BAD_INPUT
    if isinstance(error, ProvisionTimeout):
        return EXIT_TIMEOUT
    return EXIT_FAILURE


def _error_document(error: BaseException) -> dict[str, Any]:
    document: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for attribute in ("field", "line", "offset", "provider", "operation", "code", "retryable", "missing"):
        value = getattr(error, attribute, None)
        if value not in (None, "", {}):
            document[attribute] = value
    return document


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _build_parser()
    as_json = False
    try:
        args = parser.parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        with _interrupts_as_errors():
            return _COMMANDS[args.command](args)
    except (_UsageError, EndpointKitError) as error:
        if isinstance(error, MissingDependencyError):
            message = str(error)
        elif isinstance(error, ProviderError) and error.code:
            message = f"{error} [{error.provider} {error.operation}: {error.code}]"
        else:
            message = str(error)
        sys.stderr.write(f"endpointkit: error: {message}\n")
        if as_json:
            sys.stdout.write(orjson.dumps(_error_document(error)).decode() + "\n")
        return _exit_code(error)
    except KeyboardInterrupt:
        sys.stderr.write("endpointkit: interrupted\n")
        return 130

