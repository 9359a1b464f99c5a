"""One real tritonserver for a benchmark: a repository of the benchmark's own beside the quickstart's models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["QUICKSTART", "serve_beside_quickstart"]

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


@contextlib.contextmanager
def serve_beside_quickstart(repository: Path) -> Iterator[Any]:
    """A ``TritonServerProcess`` serving ``repository`` and the quickstart's repository; stopped on exit."""
    from endpointkit.adapters.local._tritonserver import TritonServerProcess

    server = TritonServerProcess.start(
        repository,
        extra_arguments=[f"--model-repository={QUICKSTART / 'model_repository'}"],
        ready_timeout=180.0,
    )
    try:
        yield server
    finally:
        server.stop()
