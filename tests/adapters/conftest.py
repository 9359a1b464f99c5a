"""Fixtures for the local adapter tests: tiny model repositories and a state folder that leaves nothing running.

Every tritonserver a local-adapter test starts reads its models from under the test's state folder, so the
teardown of ``state_root`` finds any that a failing test left behind (by the folder in their command line)
and stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IDENTITY_MODEL = "identity"

_IDENTITY_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

_IDENTITY_PY = textwrap.dedent(
    """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy())
                    ]
                )
                for request in requests
            ]
    """
)

FAILURE_REASON = "weights are corrupt: checksum mismatch"

_FAILING_PY = textwrap.dedent(
    f"""
    class TritonPythonModel:
        def initialize(self, args):
            raise RuntimeError("{FAILURE_REASON}")

        def execute(self, requests):
            return []
    """
)


def write_model(root: Path, name: str, source: str) -> Path:
    """Write a one-model Python-backend repository (``INPUT0`` FP32 [-1] -> ``OUTPUT0``) under ``root``."""
    (root / name / "1").mkdir(parents=True, exist_ok=True)
    (root / name / "config.pbtxt").write_text(_IDENTITY_CONFIG.format(name=name))
    (root / name / "1" / "model.py").write_text(source)
    return root


@pytest.fixture(scope="session")
def identity_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with one Python-backend identity model: ``INPUT0`` comes back as ``OUTPUT0``."""
    return write_model(tmp_path_factory.mktemp("identity-repository"), IDENTITY_MODEL, _IDENTITY_PY)


@pytest.fixture(scope="session")
def failing_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository whose only model raises in ``initialize``, so Triton cannot load it."""
    return write_model(tmp_path_factory.mktemp("failing-repository"), "broken", _FAILING_PY)


def servers_under(folder: Path, *, program: str | None = "tritonserver") -> list[int]:
    """Pids of running processes (not zombies) whose command line mentions ``folder``: the tritonservers that
    serve a model repository copied under it (with ``program=None``, their Python backend stubs too)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            command = (entry / "cmdline").read_bytes()
            if needle in command and (program is None or command.split(b"\0")[0].endswith(program.encode())):
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child, so it leaves the process table
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_all(pids: list[int]) -> None:
    for sig, bound in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + bound
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _running(pid)]
            time.sleep(0.05)
        if not pids:
            return


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    """A state folder for local endpoints; any server still running from it at teardown is stopped (and fails the test)."""
    root = tmp_path / "state"
    yield root
    leftovers = servers_under(root, program=None)
    if leftovers:
        _stop_all(leftovers)
        pytest.fail(f"tritonserver processes {leftovers} were still running after the test", pytrace=False)
