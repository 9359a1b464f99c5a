"""The local adapter against a real tritonserver (the one nvidia-pytriton bundles): the contract suite, then
what only a local target does: state shared between processes, load failures, dead servers, endpoint keys,
the SageMaker listener, concurrent applies, and capability checks."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit._wait import ProgressEvent
from endpointkit.adapters.base import Adapter, Capability, EndpointStatus
from endpointkit.adapters.local import KEY_HEADER, LocalAdapter
from endpointkit.adapters.local._state import state_root as resolve_state_root
from endpointkit.provisioners import apply_plan
from endpointkit.spec import LocalTarget, Spec, spec_from_dict
from tests.adapters.conftest import FAILURE_REASON, IDENTITY_MODEL, servers_under
from tests.adapters.contract import AdapterContract

pytestmark = pytest.mark.triton

REPO_ROOT = Path(__file__).resolve().parents[2]
INPUTS = {"INPUT0": np.arange(6, dtype=np.float32)}


def local_spec(
    repository: Path | str,
    root: Path,
    *,
    name: str = "local-test",
    environment: dict[str, str] | None = None,
    variants: list[dict[str, Any]] | None = None,
    ttl: str | None = None,
    **target: Any,
) -> Spec:
    """A spec for one local target whose state lives under ``root``."""
    return spec_from_dict(
        {
            "name": name,
            "model": {"repository": str(repository), "environment": environment or {}},
            "variants": variants or [{"name": "primary"}],
            "timeouts": {"create": "60s", "update": "60s", "delete": "60s"},
            "ttl": ttl,
            "targets": {"local": {"kind": "local", "state_dir": str(root), **target}},
        }
    )


def adapter_for(spec: Spec) -> LocalAdapter:
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    return LocalAdapter(target, target_name="local")


@pytest.fixture
def deploy(state_root: Path) -> Any:
    """``deploy(spec)`` applies a spec with its own adapter; everything deployed is destroyed at teardown."""
    deployed: list[tuple[Spec, LocalAdapter]] = []

    def apply(spec: Spec) -> tuple[ek.EndpointState, LocalAdapter]:
        adapter = adapter_for(spec)
        deployed.append((spec, adapter))
        return ek.apply(spec, adapter=adapter), adapter

    yield apply
    for spec, adapter in reversed(deployed):
        ek.destroy(spec, adapter=adapter)
        adapter.close()


class TestLocalContract(AdapterContract):
    @pytest.fixture(autouse=True)
    def _folders(self, identity_repository: Path, state_root: Path) -> None:
        self.repository = identity_repository
        self.root = state_root

    def make_adapter(self, spec: Spec) -> Adapter:
        return adapter_for(spec)

    def make_spec(self) -> Spec:
        return local_spec(self.repository, self.root, name="contract")

    def change_spec(self, spec: Spec) -> Spec:
        return local_spec(self.repository, self.root, name="contract", environment={"TEST_REVISION": "2"})

    def invoke_inputs(self) -> dict[str, Any]:
        return dict(INPUTS)


def run_python(code: str, *arguments: str) -> Any:
    """Run ``code`` in a fresh interpreter (as another CLI process would) and return the JSON it prints."""
    completed = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_endpoint_applied_by_one_process_is_used_and_destroyed_by_another(
    identity_repository: Path, state_root: Path, tmp_path: Path
) -> None:
    spec_file = tmp_path / "endpoint.yaml"
    spec_file.write_text(
        f"name: shared\nmodel: {{repository: {identity_repository}}}\nvariants: [{{name: primary}}]\n"
        f"targets: {{local: {{kind: local, state_dir: {state_root}}}}}\n"
    )
    try:
        applied = run_python(
            "import endpointkit as ek, json, sys; print(json.dumps(ek.apply(sys.argv[1]).to_dict()))",
            str(spec_file),
        )
        assert applied["status"] == "IN_SERVICE"
        # The applying process has exited; its server has not.
        seen = ek.status(spec_file)
        assert seen is not None and seen.status is EndpointStatus.IN_SERVICE
        assert seen.extra["servers"][0]["pid"] == applied["extra"]["servers"][0]["pid"]

        used = run_python(
            "import endpointkit as ek, json, sys, numpy as np\n"
            "state = ek.status(sys.argv[1])\n"
            "out = ek.invoke_endpoint(sys.argv[1], {'INPUT0': np.array([1.5, 2.5], dtype=np.float32)})\n"
            "print(json.dumps({'status': state.status.value, 'output': out['OUTPUT0'].tolist(),\n"
            "                  'destroyed': ek.destroy(sys.argv[1]), 'again': ek.destroy(sys.argv[1])}))",
            str(spec_file),
        )
        assert used == {"status": "IN_SERVICE", "output": [1.5, 2.5], "destroyed": True, "again": False}
        assert ek.status(spec_file) is None
        assert ek.destroy(spec_file) is False
        assert not (state_root / "shared").exists()
        assert servers_under(state_root) == []
    finally:
        ek.destroy(spec_file)


def test_model_that_fails_to_load_ends_the_wait_with_tritons_reason(
    failing_repository: Path, state_root: Path
) -> None:
    spec = local_spec(failing_repository, state_root, name="broken")
    adapter = adapter_for(spec)
    started = time.monotonic()
    with pytest.raises(ek.ProviderError) as raised:
        ek.apply(spec, adapter=adapter)
    adapter.close()
    # Far below the spec's 60 s create timeout the wait must not run to, with room for a loaded two-core machine.
    assert time.monotonic() - started < 45
    assert FAILURE_REASON in str(raised.value)
    assert "failed to load" in str(raised.value)
    assert not (state_root / "broken").exists()
    assert servers_under(state_root) == []


def test_killed_server_shows_failed_with_reason_and_apply_replaces_it(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, name="killed")
    state, adapter = deploy(spec)
    pid = state.extra["servers"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # this test process started it; reap it so it leaves the process table

    failed = ek.status(spec, adapter=adapter)
    assert failed is not None and failed.status is EndpointStatus.FAILED
    assert failed.reason is not None and f"pid {pid}" in failed.reason and "not running" in failed.reason
    assert "last log lines" in failed.reason
    assert [change.action for change in ek.plan(spec, adapter=adapter).changes][-1] == "replace"

    again = ek.apply(spec, adapter=adapter)
    assert again.status is EndpointStatus.IN_SERVICE
    assert again.extra["servers"][0]["pid"] != pid


def test_ttl_added_later_keeps_the_same_server(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    state, adapter = deploy(local_spec(identity_repository, state_root, name="retag"))
    with_ttl = local_spec(identity_repository, state_root, name="retag", ttl="30m")

    again = ek.apply(with_ttl, adapter=adapter)

    assert again.extra["servers"][0]["pid"] == state.extra["servers"][0]["pid"]
    assert again.expires_at is not None and again.spec_hash == with_ttl.deployment("local").spec_hash()
    listed = {endpoint.name: endpoint for endpoint in adapter.list_endpoints()}
    assert listed["retag"].expires_at == again.expires_at


def test_a_plan_made_before_another_run_created_the_endpoint_leaves_that_endpoint_alone(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    first = local_spec(identity_repository, state_root, name="raced")
    second = local_spec(identity_repository, state_root, name="raced", environment={"TEST_REVISION": "2"})
    adapter = adapter_for(second)
    stale = ek.plan(second, adapter=adapter)  # planned while the endpoint did not exist yet
    state, _ = deploy(first)

    with pytest.raises(ek.ConflictError, match="run apply again") as raised:
        apply_plan(second.deployment("local"), adapter, stale)

    assert raised.value.code == "ChangedSincePlan"
    after = ek.status(first, adapter=adapter)
    assert after is not None and after.status is EndpointStatus.IN_SERVICE
    assert after.extra["servers"][0]["pid"] == state.extra["servers"][0]["pid"]
    assert not ek.plan(first, adapter=adapter).has_changes
    adapter.close()  # its health checks keep a connection open, which would hold the server up at teardown


def test_api_key_refuses_requests_without_it(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, name="keyed", api_key=True)
    state, adapter = deploy(spec)
    key_file = Path(state.extra["key_file"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key not in json.dumps(state.to_dict())

    body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})
    port = state.extra["servers"][0]["http_port"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for headers, expected in (({}, 403), ({KEY_HEADER: "wrong"}, 403), ({KEY_HEADER: key}, 200)):
            connection.request("POST", f"/v2/models/{IDENTITY_MODEL}/infer", body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == expected, headers
    finally:
        connection.close()

    result = ek.invoke_endpoint(state, INPUTS, adapter=adapter)
    np.testing.assert_array_equal(result["OUTPUT0"], INPUTS["INPUT0"])
    for log in (state_root / "keyed" / "logs").iterdir():
        assert key not in log.read_text()


def test_sagemaker_protocol_invokes_through_invocations(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, name="sagemaker", ttl="1h", sagemaker_protocol=True)
    state, adapter = deploy(spec)
    assert adapter.payload_protocol == "sagemaker"
    assert state.expires_at is not None
    assert 3500 < (state.expires_at - datetime.now(timezone.utc)).total_seconds() <= 3600
    assert state.url is not None and state.url.endswith("/invocations")
    for binary in (False, True):
        response = ek.invoke_endpoint(state, INPUTS, adapter=adapter, binary=binary)
        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])


def test_concurrent_applies_of_one_endpoint_start_one_server(
    identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, name="raced")
    results: list[ek.EndpointState | BaseException] = []

    def apply() -> None:
        adapter = adapter_for(spec)
        try:
            results.append(ek.apply(spec, adapter=adapter))
        except BaseException as error:  # reported by the assertions below
            results.append(error)
        finally:
            adapter.close()

    threads = [threading.Thread(target=apply) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(isinstance(result, ek.EndpointState) for result in results), results
        pids = {result.extra["servers"][0]["pid"] for result in results}  # type: ignore[union-attr]
        assert len(results) == 2 and len(pids) == 1
        assert servers_under(state_root) == list(pids)
    finally:
        ek.destroy(spec)


def test_failed_update_leaves_the_old_servers_serving(
    deploy: Any, identity_repository: Path, failing_repository: Path, state_root: Path, tmp_path: Path
) -> None:
    # One repository folder whose content changes: the update brings a model that cannot load.
    repository = tmp_path / "repository"
    shutil.copytree(identity_repository, repository)
    spec = local_spec(repository, state_root, name="blue-green")
    before, adapter = deploy(spec)
    shutil.rmtree(repository / IDENTITY_MODEL)
    shutil.copytree(failing_repository / "broken", repository / IDENTITY_MODEL)
    config = repository / IDENTITY_MODEL / "config.pbtxt"
    config.write_text(config.read_text().replace('"broken"', f'"{IDENTITY_MODEL}"'))

    with pytest.raises(ek.ProviderError, match=FAILURE_REASON):
        ek.apply(local_spec(repository, state_root, name="blue-green"), adapter=adapter)

    after = ek.status(spec, adapter=adapter)
    assert after is not None and after.status is EndpointStatus.IN_SERVICE
    assert after.extra == before.extra
    assert servers_under(state_root) == [before.extra["servers"][0]["pid"]]
    response = ek.invoke_endpoint(after, INPUTS, adapter=adapter)
    np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])
    models = state_root / "blue-green" / "models"
    assert sorted(path.name for path in models.iterdir()) == sorted(
        [before.extra["model_sha256"], f"{before.extra['model_sha256']}.json"]
    )


def inference_count(metrics_port: int) -> int:
    """Successful inferences a server counted, from its Prometheus metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    prefix = f'nv_inference_request_success{{model="{IDENTITY_MODEL}",version="1"}} '
    return sum(int(float(line[len(prefix) :])) for line in text.splitlines() if line.startswith(prefix))


def test_variants_run_as_servers_and_share_traffic_by_weight(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    variants = [{"name": "main", "weight": 1.0}, {"name": "shadow", "weight": 0.0}]
    state, adapter = deploy(local_spec(identity_repository, state_root, name="split", variants=variants))
    assert [(v.name, v.status) for v in state.variants] == [("main", "IN_SERVICE"), ("shadow", "IN_SERVICE")]
    servers = state.extra["servers"]
    assert len({server["pid"] for server in servers}) == 2
    for _ in range(8):
        ek.invoke_endpoint(state, INPUTS, adapter=adapter)
    assert [inference_count(server["metrics_port"]) for server in servers] == [8, 0]


def test_invocations_keep_succeeding_through_a_blue_green_update(
    deploy: Any, identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, name="rolling")
    before, adapter = deploy(spec)
    client = LocalAdapter.from_state(before)  # another client holding the state from before the update
    outcomes: list[str] = []
    done = threading.Event()

    def keep_invoking() -> None:
        while not done.is_set():
            try:
                response = ek.invoke_endpoint(before, INPUTS, adapter=client)
                outcomes.append("ok" if np.array_equal(response["OUTPUT0"], INPUTS["INPUT0"]) else "wrong")
            except ek.EndpointKitError as error:
                outcomes.append(repr(error))

    worker = threading.Thread(target=keep_invoking)
    worker.start()
    events: list[ProgressEvent] = []
    try:
        changed = local_spec(identity_repository, state_root, name="rolling", environment={"REVISION": "2"})
        after = ek.apply(changed, adapter=adapter, progress=events.append)
        time.sleep(0.2)  # requests after the switch reach the new server
    finally:
        done.set()
        worker.join(timeout=30)
        client.close()
    assert after.extra["servers"][0]["pid"] != before.extra["servers"][0]["pid"]
    assert [outcome for outcome in outcomes if outcome != "ok"] == []
    assert len(outcomes) > 10
    assert inference_count(after.extra["servers"][0]["metrics_port"]) > 0
    assert {"UPDATING", "IN_SERVICE"} <= {event.status for event in events}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_gpu_variant_without_a_gpu_is_refused_before_anything_starts(
    identity_repository: Path, state_root: Path
) -> None:
    spec = local_spec(identity_repository, state_root, variants=[{"name": "primary", "accelerator": "gpu"}])
    with pytest.raises(ek.UnsupportedCapabilityError) as raised:
        ek.apply(spec)
    assert "gpu" in raised.value.missing and "nvidia-smi" in raised.value.missing["gpu"]
    assert not state_root.exists()


def test_limitations_give_a_reason_and_an_alternative(identity_repository: Path, state_root: Path) -> None:
    spec = local_spec(identity_repository, state_root, api_key=True, sagemaker_protocol=True)
    target = spec.deployment().target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target, gpu_probe=lambda: True)
    limits = adapter.limitations(spec.deployment())
    assert "aks" in limits[Capability.FPGA] and "inf2" in limits[Capability.INFERENTIA]
    assert Capability.AUTOSCALING in limits and Capability.GPU not in limits
    assert Capability.TRAFFIC_SPLIT not in limits
    assert Capability.KEY_AUTH not in limits  # the key guards /invocations too (test_local_sagemaker.py)


def test_remote_repository_is_refused_for_the_local_target(state_root: Path) -> None:
    spec = local_spec("s3://bucket/models", state_root)
    with pytest.raises(ek.SpecError, match="cloud storage"):
        ek.plan(spec, adapter=adapter_for(spec))


def test_state_lives_under_xdg_state_home_unless_the_target_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert resolve_state_root(None) == (tmp_path / "xdg" / "endpointkit" / "local").resolve()
    assert resolve_state_root(str(tmp_path / "mine")) == (tmp_path / "mine").resolve()
    monkeypatch.delenv("XDG_STATE_HOME")
    assert resolve_state_root(None) == (Path.home() / ".local" / "state" / "endpointkit" / "local").resolve()


def test_destroy_stops_the_backend_stubs_of_a_server_a_client_keeps_a_connection_to(
    identity_repository: Path, state_root: Path
) -> None:
    # With a connection open, tritonserver exits on --exit-timeout-secs without unloading its models, and its
    # Python backend stub would outlive it.
    spec = local_spec(identity_repository, state_root, name="held-open")
    adapter = adapter_for(spec)
    state = ek.apply(spec, adapter=adapter)
    client = http.client.HTTPConnection("127.0.0.1", state.extra["servers"][0]["http_port"], timeout=10)
    try:
        client.request("GET", "/v2/health/ready")
        client.getresponse().read()  # the connection stays open, kept alive
        stubs = [
            pid for pid in servers_under(state_root, program=None) if pid not in servers_under(state_root)
        ]
        assert stubs, "the identity model runs in a Python backend stub"

        assert ek.destroy(spec, adapter=adapter) is True

        assert servers_under(state_root, program=None) == []
    finally:
        client.close()
        adapter.close()
