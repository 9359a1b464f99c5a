"""The local adapter without a spec: ``list_endpoints`` and ``destroy_by_state`` (``ReapableAdapter``), so
``endpointkit reap --target local`` finds and stops expired endpoints, and ``destroy`` still works after the
model repository folder was deleted.

The tests with a real tritonserver start their endpoints in parallel; the others write state files by hand.
Every server is stopped at teardown, whatever the test did (and ``state_root`` fails a test that leaves one).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit._endpoint_state import EXPIRES_AT_TAG, encode_expiry
from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.base import EndpointState, EndpointStatus, ReapableAdapter
from endpointkit.adapters.local import LocalAdapter
from endpointkit.adapters.local._files import read_json, write_json
from endpointkit.adapters.local._state import EndpointPaths, EndpointRecord, ServerRecord
from endpointkit.adapters.local._tritonserver import pid_alive
from endpointkit.cli import main
from endpointkit.errors import ConflictError, ProviderError
from endpointkit.provisioners.reap import reap
from endpointkit.spec import LocalTarget, load_spec
from tests.adapters.conftest import servers_under

BARE = EndpointState(
    "", "local", "local", EndpointStatus.UNKNOWN
)  # what `endpointkit reap --target local` passes


# ---- helpers ---------------------------------------------------------------------------------------------
def write_spec(folder: Path, name: str, repository: Path, *, ttl: str | None = None) -> Path:
    """A spec file for one local target without ``state_dir``: its state goes under ``$XDG_STATE_HOME``."""
    lines = [
        f"name: {name}",
        f"model: {{repository: {json.dumps(str(repository))}}}",
        "variants: [{name: primary}]",
        "timeouts: {create: 60s, update: 60s, delete: 60s}",
        "targets: {local: {kind: local}}",
    ]
    if ttl is not None:
        lines.append(f"ttl: {ttl}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def apply_all(paths: list[Path]) -> dict[str, ek.EndpointState]:
    """Apply every spec file at once (one server start each, in parallel); their states by endpoint name."""
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        states = list(pool.map(ek.apply, paths))
    assert all(state.status is EndpointStatus.IN_SERVICE for state in states)
    return {state.name: state for state in states}


def pids(state: ek.EndpointState) -> list[int]:
    return [int(server["pid"]) for server in state.extra["servers"]]


def wait_gone(folder: Path, bound: float = 10.0) -> list[int]:
    """Processes (servers and their Python backend stubs) still running from ``folder`` after at most ``bound``."""
    deadline = time.monotonic() + bound
    while (left := servers_under(folder, program=None)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """``endpointkit ARGV`` in this process: its exit code and the JSON document it printed."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def local_root(state_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``XDG_STATE_HOME`` set under the test's ``state_root``; yields the default local state root.

    At teardown every endpoint left under it is destroyed by state, so no server outlives a failing test.
    """
    monkeypatch.setenv("XDG_STATE_HOME", str(state_root))
    root = (state_root / "endpointkit" / "local").resolve()
    yield root
    cleaner = LocalAdapter.from_state(BARE)
    try:
        for state in cleaner.list_endpoints():
            try:
                cleaner.destroy_by_state(without_expiry(state))
            except Exception as error:  # keep going: the state_root fixture stops what is left
                print(f"teardown could not destroy {state.name}: {error}", file=sys.stderr)
    finally:
        cleaner.close()


def without_expiry(state: EndpointState) -> EndpointState:
    """``state`` without its expiry, so destroy_by_state does not compare it with the state file."""
    return EndpointState(state.name, state.target, state.kind, state.status, extra=state.extra)


def set_expiry(root: Path, name: str, when: datetime | str | None) -> None:
    """Rewrite the expiry in endpoint ``name``'s state file, as if it had been applied at another time."""
    paths = EndpointPaths(root, name)
    data = read_json(paths.record)
    assert data is not None
    data["expires_at"] = when.isoformat() if isinstance(when, datetime) else when
    write_json(paths.record, data)


# ---- with a real tritonserver ----------------------------------------------------------------------------
@pytest.mark.triton
def test_reap_stops_the_expired_endpoint_and_leaves_the_others(
    identity_repository: Path, local_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = {
        "old": write_spec(tmp_path, "old", identity_repository, ttl="1h"),
        "fresh": write_spec(tmp_path, "fresh", identity_repository, ttl="8h"),
    }
    applied_at = datetime.now(timezone.utc)
    applied = apply_all(list(specs.values()))
    adapter = adapter_for_state(BARE)
    assert isinstance(adapter, LocalAdapter) and isinstance(adapter, ReapableAdapter)
    assert adapter.root == local_root

    listed = {state.name: state for state in adapter.list_endpoints()}
    assert sorted(listed) == ["fresh", "old"]
    for name, state in listed.items():
        assert (state.target, state.kind, state.status) == ("local", "local", EndpointStatus.IN_SERVICE)
        assert state.spec_hash == load_spec(specs[name]).deployment("local").spec_hash()
    fresh_expiry = listed["fresh"].expires_at
    assert fresh_expiry is not None and fresh_expiry.utcoffset() == timedelta(0)
    assert abs(fresh_expiry - (applied_at + timedelta(hours=8))) < timedelta(minutes=1)

    past = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    set_expiry(local_root, "old", past)
    status = ek.status(specs["old"])
    assert status is not None and status.expires_at == past
    assert status.spec_hash == listed["old"].spec_hash
    code, document = run_cli(capsys, "status", str(specs["old"]), "--json")
    assert code == 0 and document["expires_at"] == past.isoformat()
    assert document["spec_hash"] == listed["old"].spec_hash and document["expires_in_seconds"] < 0

    def everything_still_there() -> None:
        for name, state in applied.items():
            assert all(pid_alive(pid) for pid in pids(state)), name
            assert (local_root / name / "endpoint.json").is_file(), name

    dry = reap(adapter, dry_run=True)
    assert [(o.state.name, o.action) for o in dry.outcomes] == [("old", "would destroy")]
    code, document = run_cli(capsys, "reap", "--target", "local", "--dry-run", "--json")
    assert code == 0 and document["dry_run"] is True and document["listed"] == 2
    assert [(e["name"], e["action"]) for e in document["expired"]] == [("old", "would destroy")]
    everything_still_there()

    code, document = run_cli(capsys, "reap", "--target", "local", "--json")
    assert code == 0 and document["failed"] == 0
    assert [(e["name"], e["action"]) for e in document["expired"]] == [("old", "destroyed")]
    assert not any(pid_alive(pid) for pid in pids(applied["old"]))
    assert wait_gone(local_root / "old") == []
    assert not (local_root / "old").exists() and ek.status(specs["old"]) is None
    untouched = ek.status(specs["fresh"])
    assert untouched is not None and untouched.status is EndpointStatus.IN_SERVICE
    assert untouched.extra["servers"] == applied["fresh"].extra["servers"]

    assert reap(adapter).outcomes == ()  # by the real clock nothing else has expired
    later = reap(adapter, now=fresh_expiry + timedelta(seconds=1))  # a clock 8 h ahead
    assert [(o.state.name, o.action) for o in later.outcomes] == [("fresh", "destroyed")]
    assert not any(pid_alive(pid) for pid in pids(applied["fresh"]))
    assert wait_gone(local_root / "fresh") == [] and not (local_root / "fresh").exists()
    assert adapter.list_endpoints() == []

    adapter.destroy_by_state(listed["fresh"])  # idempotent
    adapter.close()


@pytest.mark.triton
def test_destroy_works_after_the_model_repository_was_deleted(
    identity_repository: Path, local_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "model_repository"
    shutil.copytree(identity_repository, repository)
    spec_a = write_spec(tmp_path, "gone-a", repository)
    spec_b = write_spec(tmp_path, "gone-b", repository)
    applied = apply_all([spec_a, spec_b])
    shutil.rmtree(repository)

    assert ek.destroy(spec_a) is True
    assert not any(pid_alive(pid) for pid in pids(applied["gone-a"]))
    assert wait_gone(local_root / "gone-a") == [] and not (local_root / "gone-a").exists()
    assert ek.status(spec_a) is None

    code, document = run_cli(capsys, "destroy", str(spec_b), "--json")
    assert code == 0 and document["destroyed"] is True
    assert not any(pid_alive(pid) for pid in pids(applied["gone-b"]))
    assert wait_gone(local_root / "gone-b") == [] and not (local_root / "gone-b").exists()

    assert ek.destroy(spec_a) is False  # idempotent, still without the repository
    code, document = run_cli(capsys, "destroy", str(spec_b), "--json")
    assert code == 0 and document["destroyed"] is False


# ---- state files only ------------------------------------------------------------------------------------
@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_record(
    root: Path, name: str, pid: int, *, expires_at: str | None = None, log_lines: str = ""
) -> EndpointPaths:
    """An ``endpoint.json`` (plus a config, a model copy and a log) for one server with ``pid``."""
    paths = EndpointPaths(root, name)
    paths.ensure()
    log = paths.logs / "primary.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(log_lines)
    write_json(paths.config(f"{name}-00000000"), {"variants": []})
    (paths.model("ab" * 32) / "identity").mkdir(parents=True)
    server = ServerRecord("primary", pid, None, 1, 2, 3, None, str(log), 1.0, 1)
    record = EndpointRecord(
        name=name,
        target="local",
        config=f"{name}-00000000",
        model=f"{name}-11111111",
        model_sha256="ab" * 32,
        default_model="identity",
        protocol="triton",
        api_key=False,
        spec_hash="c0ffee",
        created="2030-01-01T00:00:00+00:00",
        updated="2030-01-01T00:00:00+00:00",
        expires_at=expires_at,
        servers=(server,),
    )
    write_json(paths.record, record.to_json())
    return paths


def test_listing_reads_state_files_only_and_reap_cleans_up_a_dead_expired_endpoint(
    tmp_path: Path, dead_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "state"
    adapter = LocalAdapter.from_state(
        EndpointState("", "local", "local", EndpointStatus.UNKNOWN, extra={"state_root": str(root)})
    )
    assert adapter.list_endpoints() == []  # no state root yet
    write_record(root, "crashed", dead_pid, expires_at="2030-01-01T01:00:00+00:00", log_lines="boom\n")
    write_record(root, "naive", dead_pid, expires_at="2030-01-01T01:00:00")  # no offset: taken as UTC
    write_record(root, "kept", dead_pid)
    (root / "broken").mkdir()
    (root / "broken" / "endpoint.json").write_text("{not json")
    (root / "no-endpoint" / "configs").mkdir(parents=True)  # a config written, no server ever started
    (root / ".locks").mkdir()

    def no_http(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("list_endpoints must not send requests")

    monkeypatch.setattr(adapter._transport, "request", no_http)
    listed = {state.name: state for state in adapter.list_endpoints()}
    assert sorted(listed) == ["broken", "crashed", "kept", "naive"]
    crashed = listed["crashed"]
    assert crashed.status is EndpointStatus.FAILED and "boom" in (crashed.reason or "")
    assert crashed.spec_hash == "c0ffee" and crashed.target == "local" and crashed.kind == "local"
    assert crashed.expires_at == datetime(2030, 1, 1, 1, tzinfo=timezone.utc)
    assert listed["naive"].expires_at == datetime(2030, 1, 1, 1, tzinfo=timezone.utc)
    assert listed["kept"].expires_at is None
    assert listed["broken"].status is EndpointStatus.UNKNOWN and "cannot read" in (
        listed["broken"].reason or ""
    )

    report = reap(adapter, now=datetime(2030, 1, 2, tzinfo=timezone.utc))
    assert sorted((o.state.name, o.action) for o in report.outcomes) == [
        ("crashed", "destroyed"),
        ("naive", "destroyed"),
    ]
    assert not (root / "crashed").exists() and not (root / "naive").exists()
    assert (root / "kept" / "endpoint.json").is_file() and (root / "broken" / "endpoint.json").is_file()

    with pytest.raises(ProviderError, match="cannot read"):
        adapter.destroy_by_state(listed["broken"])
    assert (root / "broken" / "endpoint.json").is_file()
    adapter.destroy_by_state(listed["kept"])
    adapter.destroy_by_state(listed["kept"])  # idempotent
    assert not (root / "kept").exists()


def test_destroy_by_state_refuses_what_it_does_not_manage_or_what_changed(
    tmp_path: Path, dead_pid: int
) -> None:
    root = tmp_path / "state"
    adapter = LocalAdapter(LocalTarget(kind="local", state_dir=str(root)))
    paths = write_record(root, "renewed", dead_pid, expires_at="2030-01-01T01:00:00+00:00")
    (listed,) = adapter.list_endpoints()
    set_expiry(root, "renewed", "2030-01-02T01:00:00+00:00")  # applied again with a longer ttl
    with pytest.raises(ConflictError, match="applied again"):
        adapter.destroy_by_state(listed)
    assert paths.record.is_file()

    for name in ("../outside", ".locks", "", "Upper"):
        with pytest.raises(ConflictError, match="not a local endpoint name"):
            adapter.destroy_by_state(EndpointState(name, "local", "local", EndpointStatus.FAILED))
    elsewhere = EndpointState(
        "renewed", "local", "local", EndpointStatus.FAILED, extra={"state_root": str(tmp_path / "other")}
    )
    with pytest.raises(ConflictError, match="not under this adapter's state root"):
        adapter.destroy_by_state(elsewhere)
    assert paths.record.is_file()


def test_an_expiry_of_the_previous_writer_is_reaped_like_one_of_the_codec(
    tmp_path: Path, dead_pid: int
) -> None:
    root = tmp_path / "state"
    moment = datetime(2030, 1, 1, 1, tzinfo=timezone.utc)
    write_record(root, "previous", dead_pid, expires_at=moment.isoformat())  # the field before the codec
    write_record(root, "codec", dead_pid, expires_at=encode_expiry(moment))
    adapter = LocalAdapter(LocalTarget(kind="local", state_dir=str(root)))

    listed = {state.name: state.expires_at for state in adapter.list_endpoints()}
    report = reap(adapter, now=moment + timedelta(seconds=1))

    assert listed == {"codec": moment, "previous": moment}
    assert sorted((o.state.name, o.action) for o in report.outcomes) == [
        ("codec", "destroyed"),
        ("previous", "destroyed"),
    ]
    assert not (root / "codec").exists() and not (root / "previous").exists()


def test_an_unreadable_expiry_is_no_expiry_and_a_warning_not_an_unreadable_record(
    tmp_path: Path, dead_pid: int, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "state"
    write_record(root, "edited", dead_pid, expires_at="next tuesday", log_lines="boom\n")
    adapter = LocalAdapter(LocalTarget(kind="local", state_dir=str(root)))

    with caplog.at_level(logging.WARNING):
        (listed,) = adapter.list_endpoints()
        report = reap(adapter, now=datetime(2100, 1, 1, tzinfo=timezone.utc))

    assert (listed.name, listed.status, listed.spec_hash) == ("edited", EndpointStatus.FAILED, "c0ffee")
    assert listed.expires_at is None and "boom" in (listed.reason or "")
    assert f"endpoint edited has an unreadable {EXPIRES_AT_TAG} tag 'next tuesday'" in caplog.text
    assert report.outcomes == () and (root / "edited" / "endpoint.json").is_file()


def test_a_bare_state_gives_the_default_state_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    adapter = LocalAdapter.from_state(BARE)
    assert adapter.root == (tmp_path / "xdg" / "endpointkit" / "local").resolve()
    assert adapter.target_name == "local" and adapter.list_endpoints() == []
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = (tmp_path / "home" / ".local" / "state" / "endpointkit" / "local").resolve()
    assert LocalAdapter.from_state(BARE).root == expected
