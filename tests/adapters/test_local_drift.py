"""Drift on a real local tritonserver: a server killed out of band shows in ``plan --detailed-exitcode``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.local import LocalAdapter
from endpointkit.adapters.local._tritonserver import pid_alive
from endpointkit.cli import main
from endpointkit.spec import LocalTarget
from tests.adapters.test_local import INPUTS, adapter_for


def _write_spec(path: Path, repository: Path, root: Path) -> Path:
    spec = {
        "name": "drifting",
        "model": {"repository": str(repository)},
        "variants": [{"name": "blue", "weight": 0.5}, {"name": "green", "weight": 0.5}],
        "timeouts": {"create": "60s", "update": "60s", "delete": "60s"},
        "targets": {"local": {"kind": "local", "state_dir": str(root)}},
    }
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def _kill_and_reap(pid: int, *, bound: float = 30.0) -> None:
    """SIGKILL ``pid`` (a child of this test process, which applied in-process) and reap it within ``bound`` s."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return
        time.sleep(0.05)
    pytest.fail(f"tritonserver {pid} did not exit within {bound} s of SIGKILL")


def test_a_killed_server_is_drift_that_plan_names_and_apply_repairs(
    identity_repository: Path, state_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = _write_spec(tmp_path / "endpoint.yaml", identity_repository, state_root)
    assert main(["apply", str(spec_file)]) == 0
    spec = ek.load_spec(spec_file)
    try:
        state = ek.status(spec)
        assert state is not None
        servers = {server["variant"]: server["pid"] for server in state.extra["servers"]}
        _kill_and_reap(servers["green"])
        capsys.readouterr()

        assert main(["plan", str(spec_file), "--detailed-exitcode"]) == 2
        shown = capsys.readouterr().out
        assert f"! variants.green.server: live not running (pid {servers['green']}), spec running" in shown
        assert "variants.blue" not in shown
        plan = ek.plan(spec)
        assert [item.field for item in plan.drift] == ["variants.green.server"]

        assert main(["apply", str(spec_file)]) == 0
        repaired = ek.status(spec)
        assert repaired is not None and repaired.status is ek.EndpointStatus.IN_SERVICE
        capsys.readouterr()
        assert main(["plan", str(spec_file), "--detailed-exitcode", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["drift"] == [] and document["has_changes"] is False
    finally:
        ek.destroy(spec)


def test_unchanged_endpoint_has_no_drift_and_plan_exits_0(
    identity_repository: Path, state_root: Path, tmp_path: Path
) -> None:
    spec_file = _write_spec(tmp_path / "endpoint.yaml", identity_repository, state_root)
    spec = ek.load_spec(spec_file)
    adapter = adapter_for(spec)
    try:
        ek.apply(spec, adapter=adapter)
        plan = ek.plan(spec, adapter=adapter)
        assert plan.drift == () and not plan.has_changes
        assert main(["plan", str(spec_file), "--detailed-exitcode"]) == 0
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


def _release(pid: int, *, bound: float = 30.0) -> None:
    """SIGCONT then SIGKILL a server this test stopped, if it still runs, and reap it within ``bound`` s."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already by the adapter's supervisor
            return
        if reaped == pid:
            return
        time.sleep(0.05)
    pytest.fail(f"tritonserver {pid} did not exit within {bound} s of SIGKILL")


def test_a_server_that_stops_answering_is_drift_that_apply_relaunches(
    identity_repository: Path, state_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = _write_spec(tmp_path / "endpoint.yaml", identity_repository, state_root)
    spec = ek.load_spec(spec_file)
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    # A SIGSTOPped server never handles SIGTERM: a short grace keeps its SIGKILL near (the default waits 10 s).
    adapter = LocalAdapter(target, target_name="local", stop_grace=2.0)
    stopped: int | None = None
    try:
        state = ek.apply(spec, adapter=adapter)
        green = next(server for server in state.extra["servers"] if server["variant"] == "green")
        stopped = int(green["pid"])
        # Its process runs, its port still accepts connections (the kernel's backlog), but nothing answers: the
        # readiness probe gives up after its own time-out, well within the spec's timeouts.
        os.kill(stopped, signal.SIGSTOP)

        plan = ek.plan(spec, adapter=adapter)

        assert [str(item) for item in plan.drift] == [
            f"variants.green.server: live not answering on port {green['http_port']}, spec ready"
        ]
        (update,) = [change for change in plan.changes if change.action != "noop"]
        assert (update.action, update.resource) == ("update", "endpoint")
        capsys.readouterr()
        assert main(["plan", str(spec_file), "--detailed-exitcode"]) == 2
        assert "! variants.green.server: live not answering on port" in capsys.readouterr().out

        repaired = ek.apply(spec, adapter=adapter)

        assert repaired.status is ek.EndpointStatus.IN_SERVICE
        assert stopped not in {server["pid"] for server in repaired.extra["servers"]}
        assert not pid_alive(stopped)  # the blue/green switch stopped it (SIGKILL after the grace)
        response = ek.invoke_endpoint(repaired, INPUTS, adapter=adapter)
        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])
        again = ek.plan(spec, adapter=adapter)
        assert again.drift == () and not again.has_changes, str(again)
    finally:
        if stopped is not None:
            _release(stopped)
        ek.destroy(spec, adapter=adapter)
        adapter.close()
