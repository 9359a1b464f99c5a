"""moto in server mode on 127.0.0.1 for the SageMaker benchmarks, and the tiny model repository they deploy.

``moto_server`` points every boto3 client made inside it at moto through ``AWS_ENDPOINT_URL`` (with dummy
credentials), as a user would point the adapter at LocalStack, and restores the environment afterwards. moto runs
on a thread of this process by default; ``separate_process=True`` runs it in a child Python instead, so that its
request handling does not take this process's GIL from the threads being measured (a real cloud never does).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BUCKET", "REGION", "ROLE_ARN", "moto_server", "write_repository"]

REGION = "us-east-1"
BUCKET = "endpointkit-bench"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"

_CONFIG = """name: "echo"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
"""
_MODEL = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"

# The child: a ThreadedMotoServer on a free port, which it prints, until its stdin closes.
_CHILD = """\
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def write_repository(folder: Path) -> Path:
    """A one-model Python-backend repository (``echo``) in ``folder``; returns ``folder``."""
    (folder / "echo" / "1").mkdir(parents=True)
    (folder / "echo" / "config.pbtxt").write_text(_CONFIG)
    (folder / "echo" / "1" / "model.py").write_text(_MODEL)
    return folder


@contextmanager
def moto_server(*, separate_process: bool = False) -> Iterator[str]:
    """Run moto in server mode on 127.0.0.1 and point AWS clients at it; yields its URL."""
    with _in_child() if separate_process else _in_thread() as (host, port):
        saved = dict(os.environ)
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
        )
        os.environ.pop("AWS_PROFILE", None)
        try:
            yield f"http://{host}:{port}"
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextmanager
def _in_thread() -> Iterator[tuple[str, int]]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield server.get_host_and_port()
    finally:
        server.stop()


@contextmanager
def _in_child() -> Iterator[tuple[str, int]]:
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            line = child.stdout.readline()  # '' when the child died before listening
            if not line.strip().isdigit():
                child.wait(timeout=10)
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"moto server did not start: {message[-1] if message else line!r}")
            yield "127.0.0.1", int(line)
        finally:
            child.stdin.close()  # the child stops its server and exits
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.stdout.close()
