"""An ``apply`` killed (SIGKILL) while its tritonserver starts: the server keeps running, and every later command
finds it and stops it: ``status`` reports it, ``destroy``, ``reap`` and a new ``apply`` stop it.

The apply runs in another process whose launcher holds it right after the server process exists (its pid
recorded), so the kill always lands while the server starts. The orphan is not this process's child: the tests
wait for its exit, and its Python backend stub's, on pidfds, with a bound. They first let the orphan finish
loading its model, so that the stub exists to be watched.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import endpointkit as ek
from endpointkit.adapters.base import EndpointStatus
from endpointkit.adapters.local import LocalAdapter
from endpointkit.adapters.local._state import (
    EndpointPaths,
    ServerRecord,
    StartingServer,
    process_start_ticks,
    write_starting,
)
from endpointkit.adapters.local._tritonserver import health_status
from endpointkit.provisioners.reap import reap
from endpointkit.spec import LocalTarget, load_spec
from tests.adapters.conftest import servers_under
from tests.adapters.test_local import REPO_ROOT

# Applies the spec file argv[1]; the launcher prints the server's pid once it is recorded, then holds the run.
_HELD_APPLY = """
import sys, threading
import endpointkit as ek
from endpointkit.adapters.local import LocalAdapter, TritonServerProcess
from endpointkit.spec import load_spec

def launcher(*args, on_spawn, **options):
    def record_then_hold(server):
        on_spawn(server)
        print(server.pid, flush=True)
        threading.Event().wait(120)  # the test kills this process long before
    return TritonServerProcess.start(*args, on_spawn=record_then_hold, **options)

spec = load_spec(sys.argv[1])
ek.apply(spec, adapter=LocalAdapter(spec.deployment("local").target, launcher=launcher))
"""


def write_spec(folder: Path, name: str, repository: Path, state_root: Path) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {{repository: {repository}}}\nvariants: [{{name: primary}}]\n"
        "timeouts: {create: 60s, update: 60s, delete: 60s}\n"
        f"targets: {{local: {{kind: local, state_dir: {state_root}}}}}\n"
    )
    return path


def kill_apply_while_its_server_starts(spec_file: Path) -> int:
    """Run ``apply`` in another process and SIGKILL it once its server's process exists; the server's pid."""
    applying = subprocess.Popen(
        [sys.executable, "-c", _HELD_APPLY, str(spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert applying.stdout is not None and applying.stderr is not None
    try:
        readable, _, _ = select.select([applying.stdout], [], [], 120)
        line = applying.stdout.readline() if readable else ""
    finally:
        applying.send_signal(signal.SIGKILL)
        applying.wait(timeout=30)
    assert line.strip().isdigit(), f"the apply printed no pid: {applying.stderr.read()}"
    return int(line)


def http_port_of(pid: int) -> int:
    """The ``--http-port`` on tritonserver ``pid``'s command line."""
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    (port,) = [argument.split("=", 1)[1] for argument in arguments if argument.startswith("--http-port=")]
    return int(port)


def wait_ready(http_port: int, bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while health_status("127.0.0.1", http_port, "/v2/health/ready") != 200:
        assert time.monotonic() < deadline, f"the orphan on port {http_port} never became ready"
        time.sleep(0.1)


@contextlib.contextmanager
def exit_watch(pids: list[int]) -> Iterator[Callable[[float], bool]]:
    """``exited(bound)``: whether all of ``pids`` (not our children) exit within ``bound`` seconds in total."""
    descriptors = [os.pidfd_open(pid) for pid in pids]

    def exited(bound: float) -> bool:
        deadline = time.monotonic() + bound
        for descriptor in descriptors:
            poller = select.poll()
            poller.register(descriptor, select.POLLIN)  # readable once the process has exited
            if not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                return False
        return True

    try:
        yield exited
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


@pytest.fixture
def orphan(identity_repository: Path, state_root: Path, tmp_path: Path) -> tuple[Path, int, list[int]]:
    """A spec file, the pid of the tritonserver its killed apply left running (no endpoint was recorded), and
    the pids of that server and its Python backend stub."""
    spec_file = write_spec(tmp_path, "orphaned", identity_repository, state_root)
    pid = kill_apply_while_its_server_starts(spec_file)
    assert pid in servers_under(state_root)
    wait_ready(http_port_of(pid))
    processes = servers_under(state_root, program=None)
    assert pid in processes and len(processes) > 1, processes
    return spec_file, pid, processes


@pytest.mark.triton
def test_status_reports_the_orphan_and_destroy_stops_it(
    orphan: tuple[Path, int, list[int]], state_root: Path
) -> None:
    spec_file, pid, processes = orphan
    with exit_watch(processes) as exited:
        seen = ek.status(spec_file)
        assert seen is not None and seen.status is EndpointStatus.FAILED
        assert seen.reason is not None and str(pid) in seen.reason and "interrupted" in seen.reason

        assert ek.destroy(spec_file) is True

        assert exited(30)
    assert not (state_root / "orphaned").exists()  # the model copy went only after the server had stopped
    assert ek.status(spec_file) is None


@pytest.mark.triton
def test_reap_finds_the_orphan_and_stops_it(orphan: tuple[Path, int, list[int]], state_root: Path) -> None:
    _, _, processes = orphan
    adapter = LocalAdapter(LocalTarget(kind="local", state_dir=str(state_root)))
    with exit_watch(processes) as exited:
        (listed,) = adapter.list_endpoints()
        assert (listed.name, listed.status) == ("orphaned", EndpointStatus.FAILED)
        assert listed.expires_at is not None and listed.expires_at <= datetime.now(timezone.utc)

        report = reap(adapter)

        assert [(outcome.state.name, outcome.action) for outcome in report.outcomes] == [
            ("orphaned", "destroyed")
        ]
        assert exited(30)
    assert not (state_root / "orphaned").exists()
    adapter.close()


@pytest.mark.triton
def test_apply_again_stops_the_orphan_and_serves(
    orphan: tuple[Path, int, list[int]], state_root: Path
) -> None:
    spec_file, _, processes = orphan
    spec = load_spec(spec_file)
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target)
    try:
        with exit_watch(processes) as exited:
            state = ek.apply(spec, adapter=adapter)
            assert exited(30)
        assert state.status is EndpointStatus.IN_SERVICE
        assert servers_under(state_root) == [state.extra["servers"][0]["pid"]]
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


def waiting_process() -> subprocess.Popen[bytes]:
    """A process that runs until its stdin is closed (or it is signalled)."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def test_a_starting_server_is_its_applys_while_that_runs_and_an_orphan_after(tmp_path: Path) -> None:
    root = tmp_path / "state"
    server, applying = waiting_process(), waiting_process()
    try:
        record = ServerRecord(
            "primary", server.pid, process_start_ticks(server.pid), 1, 2, 3, None, "-", 1.0, 1
        )
        entry = StartingServer(
            record, "pending-00000000", applying.pid, process_start_ticks(applying.pid), "20300101T000000Z"
        )
        write_starting(EndpointPaths(root.resolve(), "pending"), entry)
        adapter = LocalAdapter(LocalTarget(kind="local", state_dir=str(root)))

        (listed,) = adapter.list_endpoints()
        assert (listed.status, listed.expires_at) == (EndpointStatus.CREATING, None)  # reap leaves it alone
        assert listed.reason is not None and f"pid {applying.pid}" in listed.reason

        assert applying.stdin is not None
        applying.stdin.close()
        applying.wait(timeout=30)
        (listed,) = adapter.list_endpoints()
        assert listed.status is EndpointStatus.FAILED
        assert listed.expires_at == datetime(2030, 1, 1, tzinfo=timezone.utc)

        adapter.destroy_by_state(listed)
        assert server.wait(timeout=30) == -signal.SIGTERM
        assert not (root / "pending").exists() and adapter.list_endpoints() == []
    finally:
        for process in (server, applying):
            process.kill()
            process.wait(timeout=30)
