"""Recording expectations: each check's inputs sent once, the answer written to the files its ``expect`` names."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from endpointkit._wait import Progress
from endpointkit.errors import SpecError, VerificationError
from endpointkit.verification._loading import LoadedCheck
from endpointkit.verification._running import CheckResult, Invoke, VerificationReport, report_event

__all__ = ["record_checks", "write_expectation"]


def record_checks(
    checks: Iterable[LoadedCheck],
    invoke: Invoke,
    *,
    subject: str,
    progress: Progress | None = None,
) -> VerificationReport:
    """Send the inputs of every check that has ``expect`` once and write each expected output from the answer,
    replacing what the files held. Checks without ``expect`` are skipped. Blocks for the requests.

    Returns a report with one result per recorded check and the paths written, in order.

    Raises:
        VerificationError: the answer lacks an output that ``expect`` names.
        SpecError: an output cannot be written in the file's format (text that is not UTF-8, or NaN or
            infinity, in a ``.json`` file); nothing is written for it.
        EndpointKitError: a request failed, as ``invoke`` raised it.
    """
    started = time.monotonic()
    results: list[CheckResult] = []
    written: list[Path] = []
    for loaded in checks:
        if not loaded.expect_paths:
            continue
        check_started = time.monotonic()
        outputs = invoke(loaded.inputs, loaded.check.model)
        for name, path in loaded.expect_paths.items():
            if name not in outputs:
                detail = f"is not in the answer (its outputs: {', '.join(outputs) or 'none'})"
                raise VerificationError(
                    f"check {loaded.name!r} cannot be recorded from {subject}: output {name} {detail}",
                    check=loaded.name,
                    detail=detail,
                    output=name,
                    subject=subject,
                )
            write_expectation(path, np.asarray(outputs[name]), field=f"{loaded.field}.expect.{name}")
            written.append(path)
        detail = ", ".join(f"{name} -> {path}" for name, path in loaded.expect_paths.items())
        result = CheckResult(loaded.name, True, detail, time.monotonic() - check_started)
        report_event(progress, subject, result, verdict="recorded")
        results.append(result)
    return VerificationReport(
        subject=subject, results=tuple(results), seconds=time.monotonic() - started, written=tuple(written)
    )


def write_expectation(path: Path, array: npt.NDArray[Any], *, field: str) -> None:
    """Write ``array`` to ``path`` in the format its suffix names, atomically (a reader sees the old file or the
    new one): ``.npy`` with ``numpy.save`` (text as fixed-width bytes, so it loads without pickle), ``.json`` as a
    nested list (text as UTF-8 strings). Creates missing folders.

    Raises:
        SpecError: the array cannot be held by a ``.json`` file (see :func:`record_checks`).
    """
    content = _json(array, path, field) if path.suffix == ".json" else _npy(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def _npy(array: npt.NDArray[Any]) -> bytes:
    if array.dtype == object:
        array = np.array([bytes(item) for item in array.reshape(-1)], dtype=bytes).reshape(array.shape)
    buffer = BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _json(array: npt.NDArray[Any], path: Path, field: str) -> bytes:
    if array.dtype.kind in "OS":
        try:
            texts = [bytes(item).decode("utf-8") for item in array.reshape(-1)]
        except UnicodeDecodeError:
            raise SpecError(
                f"{field}: the output holds bytes that are not UTF-8 text, which {path} (JSON) cannot hold: "
                "name a .npy file",
                field=field,
            ) from None
        return orjson.dumps(np.array(texts, dtype=object).reshape(array.shape).tolist())
    if array.dtype.kind == "f" and not bool(np.isfinite(array).all()):
        raise SpecError(
            f"{field}: the output holds NaN or infinity, which {path} (JSON) cannot hold: name a .npy file",
            field=field,
        )
    return orjson.dumps(array.tolist())
