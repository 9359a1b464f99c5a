"""``python -m benchmarks``: usage, names, options passed through; no benchmark runs here."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS, Selection, main, parse

ROOT = Path(__file__).resolve().parents[1]


def run_runner(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_shows_the_usage_and_every_benchmark() -> None:
    result = run_runner("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m benchmarks [-h] [NAME ...] [OPTION ...]")
    for name, summary in BENCHMARKS.items():
        assert re.search(rf"^  {name} +{re.escape(summary)}$", result.stdout, re.MULTILINE), name
    assert result.stderr == ""


def test_an_unknown_name_is_a_usage_error_without_a_traceback() -> None:
    result = run_runner("payloads", "no-such-benchmark")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "usage: python -m benchmarks [-h] [NAME ...] [OPTION ...]",
        "python -m benchmarks: error: unknown benchmark 'no-such-benchmark' (choose from "
        + ", ".join(BENCHMARKS)
        + ")",
    ]


def test_help_after_a_name_is_that_benchmarks_own() -> None:
    result = run_runner("fleet", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m benchmarks.fleet")
    assert "--moto-rounds" in result.stdout
    assert "=== benchmarks.fleet ===" not in result.stdout


def test_options_before_any_benchmark_runs_are_refused_by_one_that_takes_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["payloads", "--json"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "benchmark 'payloads' takes no options, got: --json" in captured.err
    assert captured.out == ""  # refused before its header, so before it ran


def test_no_name_means_every_benchmark_in_the_tables_order() -> None:
    assert parse([]) == Selection(tuple(BENCHMARKS), ())


def test_options_after_the_names_go_to_the_benchmarks() -> None:
    assert parse(["fleet", "--moto-rounds", "3"]) == Selection(("fleet",), ("--moto-rounds", "3"))
    assert parse(["local", "sagemaker", "local", "--json"]) == Selection(("local", "sagemaker"), ("--json",))


def test_every_benchmark_module_has_its_line_in_the_table() -> None:
    modules = {path.stem for path in (ROOT / "benchmarks").glob("*.py") if not path.stem.startswith("_")}
    assert modules == set(BENCHMARKS), "register a benchmark module with one line in benchmarks/__main__.py"


_TAKES_OPTIONS = [
    name
    for name in BENCHMARKS
    if inspect.signature(importlib.import_module(f"benchmarks.{name}").main).parameters
]


@pytest.mark.parametrize("name", _TAKES_OPTIONS)
def test_a_benchmark_run_as_its_own_module_reads_its_command_line(name: str) -> None:
    # `python -m benchmarks.NAME --help` must show NAME's options, not run the benchmark with its defaults.
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout[:200]
