"""``logs`` on the local target: Triton's own log lines of a real tritonserver, through ``ek.logs`` and the CLI;
then the parsing of Triton's timestamps, which needs no server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import endpointkit as ek
from endpointkit.adapters._log_records import LineClock, interleave, parse_triton_time, select
from endpointkit.adapters.local import LocalAdapter
from endpointkit.adapters.local._state import EndpointPaths, load_record
from endpointkit.cli import main
from endpointkit.spec import LocalTarget, Spec
from tests.adapters.conftest import IDENTITY_MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, spec_file: Path, spec: Spec, adapter: LocalAdapter) -> None:
        self.spec_file = spec_file
        self.spec = spec
        self.adapter = adapter

    def log_path(self) -> Path:
        record = load_record(EndpointPaths(self.adapter.root, self.spec.name))
        assert record is not None
        return Path(record.servers[0].log_path)


@pytest.fixture(scope="module")
def served(identity_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("logs")
    document: dict[str, Any] = {
        "name": "logs-test",
        "model": {"repository": str(identity_repository), "default_model": IDENTITY_MODEL},
        "variants": [{"name": "primary"}],
        "timeouts": {"create": "120s", "update": "120s", "delete": "60s"},
        "targets": {"local": {"kind": "local", "state_dir": str(folder / "state")}},
    }
    spec_file = folder / "endpoint.yaml"
    spec_file.write_text(yaml.safe_dump(document))
    spec = ek.load_spec(spec_file)
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target, target_name="local")
    ek.apply(spec, adapter=adapter)
    try:
        yield Served(spec_file, spec, adapter)
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


@pytest.mark.triton
def test_cli_tail_prints_tritons_own_lines_with_time_variant_and_replica(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["logs", str(served.spec_file), "--tail", "20"])

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert 0 < len(lines) <= 20
    assert any("Started HTTPService" in line for line in lines)
    moment, source, _ = lines[-1].split(" ", 2)
    assert datetime.fromisoformat(moment.replace("Z", "+00:00")).tzinfo is not None
    assert source.startswith("primary/pid-")


@pytest.mark.triton
def test_cli_json_prints_one_parsable_record_per_line(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["logs", str(served.spec_file), "--json"])

    assert code == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records
    assert {record["variant"] for record in records} == {"primary"}
    times = [record["time"] for record in records if record["time"] is not None]
    assert times and all(time.endswith("Z") for time in times)
    assert any("successfully loaded" in record["line"] for record in records)


@pytest.mark.triton
def test_records_are_in_time_order_and_since_keeps_the_recent_ones(served: Served) -> None:
    every = list(ek.logs(served.spec, adapter=served.adapter))
    times = [record.time for record in every if record.time is not None]
    assert times == sorted(times)

    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert list(ek.logs(served.spec, since=future, adapter=served.adapter)) == []


@pytest.mark.triton
def test_follow_yields_lines_written_after_it_started(served: Served) -> None:
    records = ek.logs(served.spec, tail=1, follow=True, adapter=served.adapter)
    next(records)
    marker = "I0101 00:00:00.000001 1 test.cc:1] written while following"
    with served.log_path().open("a") as log:
        log.write(marker + "\n")
    found: list[ek.LogRecord] = []
    reader = threading.Thread(target=lambda: found.append(next(records)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    records.close()
    assert [record.line for record in found] == [marker]


@pytest.mark.triton
def test_follow_ends_on_ctrl_c_with_exit_130_and_no_traceback(served: Served) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # A child inherits an ignored SIGINT (a shell runs background jobs so, CI runners too), and Python then
    # leaves Ctrl-C ignored; with a handler set here, the child starts with SIGINT at its default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "endpointkit", "logs", str(served.spec_file), "--follow", "--tail", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the follow runs
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert " primary/pid-" in first
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted" in stderr


@pytest.mark.triton
def test_unknown_variant_is_bad_input_naming_the_variants(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["logs", str(served.spec_file), "--variant", "canary"])

    assert code == 2
    error = capsys.readouterr().err
    assert "canary" in error and "primary" in error


def test_since_that_does_not_parse_is_bad_input_naming_the_option(
    tmp_path: Path, identity_repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = _spec_file(tmp_path, identity_repository)

    code = main(["logs", str(spec_file), "--since", "ten minutes"])

    assert code == 2
    assert "--since" in capsys.readouterr().err


def test_tail_below_one_is_bad_input(
    tmp_path: Path, identity_repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["logs", str(_spec_file(tmp_path, identity_repository)), "--tail", "0"])

    assert code == 2
    assert "--tail" in capsys.readouterr().err


def test_endpoint_that_does_not_exist_is_a_failure(
    tmp_path: Path, identity_repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["logs", str(_spec_file(tmp_path, identity_repository))])

    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def _spec_file(folder: Path, repository: Path) -> Path:
    document = {
        "name": "never-applied",
        "model": {"repository": str(repository), "default_model": IDENTITY_MODEL},
        "variants": [{"name": "primary"}],
        "targets": {"local": {"kind": "local", "state_dir": str(folder / "state")}},
    }
    path = folder / "endpoint.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


# ---- Triton's timestamps, without a server ----------------------------------------------------------------


def test_triton_prefix_is_read_as_utc_in_the_current_year() -> None:
    now = datetime(2030, 6, 1, tzinfo=timezone.utc)

    moment = parse_triton_time("I0531 23:09:26.123456 42 server.cc:307] ready", now=now)

    assert moment == datetime(2030, 5, 31, 23, 9, 26, 123456, tzinfo=timezone.utc)


def test_december_lines_read_in_january_belong_to_the_year_before() -> None:
    now = datetime(2031, 1, 1, 0, 5, tzinfo=timezone.utc)

    moment = parse_triton_time("W1231 23:59:59.000001 42 model.cc:1] late", now=now)

    assert moment == datetime(2030, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc)


def test_iso8601_log_format_is_read_too() -> None:
    moment = parse_triton_time("2030-05-31T23:09:26Z I server.cc:307] ready")

    assert moment == datetime(2030, 5, 31, 23, 9, 26, tzinfo=timezone.utc)


def test_a_line_without_a_time_takes_the_time_of_the_line_before() -> None:
    clock = LineClock("primary", "pid-1")

    first = clock.record("E0531 23:09:26.000000 42 model.cc:1] failed to load 'm':")
    continuation = clock.record("  Traceback (most recent call last):")

    assert continuation.time == first.time is not None


def test_interleave_orders_replicas_by_time_and_tail_keeps_the_last() -> None:
    early, late = (datetime(2030, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in (1, 2))
    one = [ek.LogRecord(early, "primary", "a", "a1"), ek.LogRecord(late, "primary", "a", "a2")]
    other = [ek.LogRecord(early + timedelta(milliseconds=500), "primary", "b", "b1")]

    merged = interleave([one, other])

    assert [record.line for record in merged] == ["a1", "b1", "a2"]
    assert [record.line for record in select(merged, since=None, tail=2)] == ["b1", "a2"]
