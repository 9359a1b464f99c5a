"""``status --metrics`` and ``top``: bad input is exit 2 naming the option, before any target is touched."""

from __future__ import annotations

import pytest

from endpointkit.cli import main
from endpointkit.errors import EXIT_BAD_INPUT
from tests.test_cli import QUICKSTART


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("status", "--window", "soon"),
        ("status", "--window", "0s"),
        ("top", "--window", "5 minutes"),
        ("top", "--interval", "-1s"),
        ("top", "--iterations", "0"),
    ],
)
def test_a_bad_duration_or_count_exits_2_naming_the_option(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--metrics"] if command == "status" else []
    assert main([command, str(QUICKSTART), *extra, option, value]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert f"argument {option}" in error
    assert "Traceback" not in error


def test_top_needs_a_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top"]) == EXIT_BAD_INPUT
    assert "spec" in capsys.readouterr().err
