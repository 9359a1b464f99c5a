"""The cost of verification on the quickstart: time the spec's ``verify`` checks add to ``apply`` on a real local
tritonserver.

Each round applies the quickstart twice from a fresh state folder, once as shipped (its two checks: the sample's
scores against the recorded expectation, and 20 calls under a p99 bound) and once with the ``verify`` section
removed, destroying after each; the two kinds alternate so a busy machine slows both alike. Reported: the
median apply time of each, their difference (what the checks add), and the median time of ``endpointkit verify``
alone on a serving endpoint. Goal: at most 0.5 s added.

    python -m benchmarks.verify [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import endpointkit as ek
from benchmarks._triton import QUICKSTART

GOAL_ADDED_SECONDS = 0.5


def _specs(folder: Path) -> tuple[Path, Path]:
    """The quickstart copied into ``folder``: the spec as shipped and the same spec without ``verify``."""
    copy = folder / "quickstart"
    shutil.copytree(QUICKSTART, copy)
    checked = copy / "endpoint.yaml"
    document = yaml.safe_load(checked.read_text())
    document.pop("verify", None)
    unchecked = copy / "unchecked.yaml"
    unchecked.write_text(yaml.safe_dump(document))
    return checked, unchecked


def _timed_apply(spec: Path) -> float:
    started = time.perf_counter()
    ek.apply(spec, target="local")
    elapsed = time.perf_counter() - started
    ek.destroy(spec, target="local")
    return elapsed


def measure(rounds: int) -> dict[str, Any]:
    """Apply with and without the checks ``rounds`` times each; time ``verify`` alone ``rounds`` times."""
    loadavg_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="endpointkit-verify-") as folder:
        os.environ["XDG_STATE_HOME"] = str(Path(folder) / "state")
        checked, unchecked = _specs(Path(folder))
        with_checks, without_checks = [], []
        for _ in range(rounds):
            with_checks.append(_timed_apply(checked))
            without_checks.append(_timed_apply(unchecked))
        ek.apply(checked, target="local")
        try:
            alone = []
            for _ in range(rounds):
                started = time.perf_counter()
                ek.verify(checked, target="local")
                alone.append(time.perf_counter() - started)
        finally:
            ek.destroy(checked, target="local")
    added = statistics.median(with_checks) - statistics.median(without_checks)
    return {
        "rounds": rounds,
        "apply_with_checks_s": round(statistics.median(with_checks), 3),
        "apply_without_checks_s": round(statistics.median(without_checks), 3),
        "added_s": round(added, 3),
        "verify_alone_s": round(statistics.median(alone), 3),
        "goal_added_s": GOAL_ADDED_SECONDS,
        "within_goal": added <= GOAL_ADDED_SECONDS,
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    """Run and print the measurement (``--json`` for one JSON document); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verify", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="applies of each kind, and verify runs (median)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv or [])
    state_home = os.environ.get("XDG_STATE_HOME")
    try:
        result = measure(args.rounds)
    finally:
        if state_home is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = state_home
    if args.json:
        print(json.dumps(result, indent=2))
        return
    before = ", ".join(f"{value:.2f}" for value in result["loadavg_before"])
    print(f"verification on the quickstart, {result['rounds']} rounds (load average {before})")
    print(
        f"apply with checks {result['apply_with_checks_s']} s, without {result['apply_without_checks_s']} s: "
        f"the checks add {result['added_s']} s (goal <= {GOAL_ADDED_SECONDS} s: "
        f"{'met' if result['within_goal'] else 'MISSED'}); verify alone {result['verify_alone_s']} s"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
