"""TTL reaping: expired managed endpoints are destroyed, everything else is left alone, calls are counted."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

import endpointkit as ek
from endpointkit import adapters
from endpointkit._endpoint_state import encode_expiry
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.base import EXPIRES_AT_TAG, Adapter, ReapableAdapter, Resource
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
from endpointkit.cli import main
from endpointkit.errors import ProviderError, UnsupportedCapabilityError
from endpointkit.provisioners.reap import reap, time_left
from endpointkit.spec import Spec, spec_from_dict

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_spec(name: str, ttl: str | None = None) -> Spec:
    data: dict[str, Any] = {
        "name": name,
        "model": {"repository": "s3://models/demo/model.tar.gz"},
        "variants": [{"name": "primary"}],
        "targets": {"mem": {"kind": "local"}},
    }
    if ttl is not None:
        data["ttl"] = ttl
    return spec_from_dict(data)


def deploy(adapter: MemoryAdapter, name: str, *, expires: datetime | None) -> None:
    """Apply a spec, then set its expiry tag as if it had been applied at another time."""
    ek.apply(make_spec(name, ttl="1h" if expires else None), adapter=adapter)
    if expires is not None:
        adapter.cloud.endpoint_tags[name][EXPIRES_AT_TAG] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def cloud() -> Iterator[tuple[MemoryAdapter, MemoryCloud]]:
    shared = MemoryCloud()
    adapter = MemoryAdapter(cloud=shared)
    deploy(adapter, "old", expires=NOW - timedelta(hours=2))
    deploy(adapter, "older", expires=NOW - timedelta(days=3))
    deploy(adapter, "fresh", expires=NOW + timedelta(hours=5))
    deploy(adapter, "forever", expires=None)
    adapter.calls.clear()
    yield adapter, shared


def test_memory_adapter_is_reapable() -> None:
    assert isinstance(MemoryAdapter(), ReapableAdapter)


def test_list_endpoints_returns_managed_endpoints_with_their_expiry(
    cloud: tuple[MemoryAdapter, MemoryCloud],
) -> None:
    adapter, shared = cloud
    shared.resources["endpoint"]["foreign"] = Resource("endpoint", "foreign", {"config": "none"})
    listed = {state.name: state.expires_at for state in adapter.list_endpoints()}
    assert set(listed) == {"old", "older", "fresh", "forever"}
    assert listed["old"] == NOW - timedelta(hours=2)
    assert listed["forever"] is None


def test_a_tag_of_the_previous_writer_is_reaped_like_one_of_the_codec() -> None:
    adapter = MemoryAdapter()
    for name in ("previous", "codec"):
        ek.apply(make_spec(name, ttl="1h"), adapter=adapter)
    tags = adapter.cloud.endpoint_tags
    tags["previous"][EXPIRES_AT_TAG] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")  # managed_tags before the codec
    tags["codec"][EXPIRES_AT_TAG] = encode_expiry(NOW)

    listed = {state.name: state.expires_at for state in adapter.list_endpoints()}
    report = reap(adapter, now=NOW)

    assert listed == {"codec": NOW, "previous": NOW}
    assert [(o.state.name, o.action) for o in report.outcomes] == [
        ("codec", "destroyed"),
        ("previous", "destroyed"),
    ]


def test_reap_destroys_only_expired_endpoints_with_one_list_and_three_deletes_each(
    cloud: tuple[MemoryAdapter, MemoryCloud],
) -> None:
    adapter, shared = cloud
    report = reap(adapter, now=NOW)
    assert [(o.state.name, o.action) for o in report.outcomes] == [
        ("old", "destroyed"),
        ("older", "destroyed"),
    ]
    assert set(shared.resources["endpoint"]) == {"fresh", "forever"}
    assert len(shared.resources["endpoint_config"]) == 2 and len(shared.resources["model"]) == 2
    assert [op for op, _, _ in adapter.calls] == ["list"] + ["delete"] * 6
    assert [kind for op, kind, _ in adapter.calls if op == "delete"][:3] == [
        "endpoint",
        "endpoint_config",
        "model",
    ]


def test_dry_run_makes_only_the_listing_call(cloud: tuple[MemoryAdapter, MemoryCloud]) -> None:
    adapter, shared = cloud
    report = reap(adapter, now=NOW, dry_run=True)
    assert [o.action for o in report.outcomes] == ["would destroy", "would destroy"]
    assert adapter.calls == [("list", "endpoint", "*")]
    assert len(shared.resources["endpoint"]) == 4


def test_nothing_expired_costs_one_call(cloud: tuple[MemoryAdapter, MemoryCloud]) -> None:
    adapter, _ = cloud
    report = reap(adapter, now=NOW - timedelta(days=10))
    assert report.outcomes == () and len(adapter.calls) == 1
    assert "nothing to reap" in str(report)


def test_one_failed_deletion_does_not_stop_the_others(cloud: tuple[MemoryAdapter, MemoryCloud]) -> None:
    adapter, shared = cloud
    adapter.fail("delete", "endpoint", ProviderError("throttled", provider="memory"))
    report = reap(adapter, now=NOW)
    assert [(o.state.name, o.action) for o in report.outcomes] == [("old", "failed"), ("older", "destroyed")]
    assert "throttled" in str(report.failed[0].error)
    assert "old" in shared.resources["endpoint"] and "older" not in shared.resources["endpoint"]


def test_destroy_by_state_is_idempotent(cloud: tuple[MemoryAdapter, MemoryCloud]) -> None:
    adapter, _ = cloud
    state = next(s for s in adapter.list_endpoints() if s.name == "old")
    adapter.destroy_by_state(state)
    adapter.calls.clear()
    adapter.destroy_by_state(state)
    assert adapter.mutating_calls == []


def test_an_adapter_that_cannot_list_is_refused_before_any_call() -> None:
    class Plain:
        kind = "plain"

    with pytest.raises(UnsupportedCapabilityError, match="cannot list"):
        reap(Plain())


def test_report_json_names_what_was_done(cloud: tuple[MemoryAdapter, MemoryCloud]) -> None:
    adapter, _ = cloud
    document = json.loads(json.dumps(reap(adapter, now=NOW).to_dict()))
    assert document["listed"] == 4 and document["failed"] == 0
    assert [(e["name"], e["action"]) for e in document["expired"]] == [
        ("old", "destroyed"),
        ("older", "destroyed"),
    ]
    assert document["expired"][0]["expired_seconds_ago"] == 7200


def test_time_left_reads_like_a_person_wrote_it() -> None:
    assert time_left(NOW + timedelta(hours=3, minutes=12, seconds=30), NOW) == "expires in 3h12m"
    assert time_left(NOW + timedelta(minutes=5), NOW) == "expires in 5m"
    assert time_left(NOW + timedelta(days=2, hours=1), NOW) == "expires in 2d1h"
    assert time_left(NOW - timedelta(minutes=7), NOW) == "expired 7m ago"


# ---- the command ------------------------------------------------------------------------------------------


class SharedCloudAdapter(MemoryAdapter):
    """A memory adapter registered as a target kind, so the CLI can reap a cloud the test prepared."""

    kind: ClassVar[str] = "reaptest"
    cloud_for_cli: ClassVar[MemoryCloud] = MemoryCloud()

    def __init__(self, target: object = None, **options: Any) -> None:
        options.pop("region", None)
        super().__init__(target, cloud=self.cloud_for_cli, **options)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryCloud]:
    shared = MemoryCloud()
    monkeypatch.setattr(SharedCloudAdapter, "cloud_for_cli", shared)
    monkeypatch.setitem(
        adapters._REGISTRY, "reaptest", adapters.AdapterEntry("tests.test_reap:SharedCloudAdapter", None)
    )
    adapter = MemoryAdapter(cloud=shared)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    deploy(adapter, "stale", expires=past)
    deploy(adapter, "kept", expires=None)
    yield shared


def test_cli_reap_with_a_bare_kind(registered: MemoryCloud, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--target", "reaptest", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(e["name"], e["action"]) for e in document["expired"]] == [("stale", "destroyed")]
    assert set(registered.resources["endpoint"]) == {"kept"}


def test_cli_reap_dry_run_prints_what_it_would_do(
    registered: MemoryCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reap", "--target", "reaptest", "--dry-run"]) == 0
    assert "would destroy stale (expired 1h00m ago)" in capsys.readouterr().out
    assert "stale" in registered.resources["endpoint"]


def test_cli_reap_an_aks_kind_needs_a_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reap", "--target", "aks"]) == 2
    assert "--spec" in capsys.readouterr().err


def test_cli_reap_sagemaker_needs_a_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert main(["reap", "--target", "sagemaker"]) == 2
    assert "--region" in capsys.readouterr().err


def test_cli_reap_a_target_that_cannot_list_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "endpoint.yaml"
    spec.write_text(
        "name: demo\nmodel: {repository: s3://m/x.tar.gz}\nvariants: [{name: primary}]\n"
        f"targets: {{here: {{kind: local, state_dir: {tmp_path / 'state'}}}}}\n"
    )
    code = main(["reap", "--spec", str(spec), "--target", "here"])
    error = capsys.readouterr().err
    local = adapters.create_adapter(ek.load_spec(spec).deployment("here"))
    reapable = isinstance(local, ReapableAdapter)
    local.close()
    if reapable:
        assert code == 0  # the local adapter learned to list its endpoints
    else:
        assert code == 2 and "cannot list" in error


def test_cli_reap_help_explains_how_to_name_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["reap", "--help"])
    text = capsys.readouterr().out
    assert "--spec FILE" in text and "--target sagemaker --region" in text


def test_adapter_protocol_is_unchanged_for_non_reapable_adapters() -> None:
    assert isinstance(MemoryAdapter(), Adapter)


class ReportingCloudAdapter(SharedCloudAdapter):
    """Reports a few polls of a deletion in progress, as the cloud adapters' waits do."""

    def destroy_by_state(self, state: ek.EndpointState, *, progress: Progress | None = None) -> None:
        for elapsed in (0.0, 1.0, 2.0):
            if progress is not None:
                progress(ProgressEvent(f"endpoint {state.name}", "Deleting", elapsed, 60.0))
        super().destroy_by_state(state, progress=progress)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def two_expired(monkeypatch: pytest.MonkeyPatch) -> MemoryCloud:
    shared = MemoryCloud()
    monkeypatch.setattr(SharedCloudAdapter, "cloud_for_cli", shared)
    monkeypatch.setitem(
        adapters._REGISTRY, "reaptest", adapters.AdapterEntry("tests.test_reap:ReportingCloudAdapter", None)
    )
    adapter = MemoryAdapter(cloud=shared)
    deploy(adapter, "first", expires=datetime.now(timezone.utc) - timedelta(hours=2))
    deploy(adapter, "second", expires=datetime.now(timezone.utc) - timedelta(hours=1))
    return shared


def test_cli_reap_on_a_terminal_keeps_a_line_per_endpoint(
    two_expired: MemoryCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["reap", "--target", "reaptest"]) == 0
    last_frame = terminal.getvalue().rsplit("\033[2A", 1)[1]
    assert [line.split() for line in last_frame.replace("\r\033[K", "").splitlines()] == [
        ["first", "destroyed"],
        ["second", "destroyed"],
    ]


def test_cli_reap_without_a_terminal_writes_a_line_per_change(
    two_expired: MemoryCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reap", "--target", "reaptest"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "first: destroying",
        "first: endpoint first: Deleting (0s / 60s)",
        "first: destroyed",
        "second: destroying",
        "second: endpoint second: Deleting (0s / 60s)",
        "second: destroyed",
    ]


def test_cli_reap_a_region_with_a_spec_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "endpoint.yaml"
    spec.write_text("name: demo\nmodel: {repository: s3://m/x.tar.gz}\nvariants: [{name: primary}]\n")
    assert main(["reap", "--spec", str(spec), "--region", "us-east-1", "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"] == "UsageError"
    assert "--region" in captured.err
