"""Fleets, reap and status: wall time of a fleet apply against a sequential one, and API calls per operation.

The memory adapter answers at once, so a fleet would have nothing to overlap; ``SlowMemoryAdapter`` sleeps for
``--latency`` seconds in every create (model, config, endpoint), standing in for a cloud round trip. The fleet
goes through ``endpointkit.fleet.run_fleet``, the runner behind ``endpointkit apply DIR``, with the default
parallelism. The goal is a ratio of at most 0.35.

API calls are counted on the memory adapter, which records every call: ``status`` of one endpoint, ``reap`` of a
target holding 20 endpoints of which half have expired, and the same reap as a dry run. ``terraform`` status is
the wall time of ``endpointkit terraform`` for a never-applied local endpoint, run as Terraform runs it.

    python -m benchmarks.fleet [--specs N] [--latency SECONDS] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import endpointkit as ek
from endpointkit._wait import Progress
from endpointkit.adapters.base import EXPIRES_AT_TAG, Resource
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
from endpointkit.fleet import DEFAULT_PARALLEL, run_fleet
from endpointkit.provisioners.reap import reap
from endpointkit.spec import Deployment

__all__ = ["SlowMemoryAdapter", "main", "run"]

GOAL = 0.35
_SPEC = """\
name: {name}
model: {{repository: "s3://models/bench/model.tar.gz"}}
variants: [{{name: primary}}]
ttl: 1h
targets:
  mem: {{kind: local, state_dir: "{state}"}}
"""


class SlowMemoryAdapter(MemoryAdapter):
    """A memory adapter whose creates take ``latency`` seconds, like a cloud call."""

    def __init__(self, *, latency: float, cloud: MemoryCloud) -> None:
        super().__init__(cloud=cloud)
        self.latency = latency

    def create(self, deployment: Deployment, resource: Resource, *, progress: Progress | None = None) -> None:
        time.sleep(self.latency)
        super().create(deployment, resource, progress=progress)


def _write_specs(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"endpoint-{index:02d}.yaml"
        path.write_text(_SPEC.format(name=f"bench-{index:02d}", state=folder / "state"))
        paths.append(path)
    return paths


def _fleet_apply(paths: list[Path], latency: float) -> dict[str, Any]:
    sequential_cloud = MemoryCloud()
    started = time.perf_counter()
    for path in paths:
        ek.apply(path, adapter=SlowMemoryAdapter(latency=latency, cloud=sequential_cloud))
    sequential = time.perf_counter() - started

    fleet_cloud = MemoryCloud()
    started = time.perf_counter()
    results = run_fleet(
        paths,
        lambda path, progress: ek.apply(
            path, adapter=SlowMemoryAdapter(latency=latency, cloud=fleet_cloud), progress=progress
        ),
        parallel=DEFAULT_PARALLEL,
    )
    parallel = time.perf_counter() - started
    failed = [str(result.error) for result in results if result.error is not None]
    if failed or len(fleet_cloud.resources["endpoint"]) != len(paths):
        raise RuntimeError(f"the fleet apply did not deploy every spec: {failed}")
    return {
        "specs": len(paths),
        "latency_per_create_s": latency,
        "parallel": DEFAULT_PARALLEL,
        "sequential_s": round(sequential, 3),
        "fleet_s": round(parallel, 3),
        "ratio": round(parallel / sequential, 3),
        "goal": GOAL,
    }


def _api_calls(paths: list[Path]) -> dict[str, Any]:
    cloud = MemoryCloud()
    adapter = MemoryAdapter(cloud=cloud)
    for path in paths:
        ek.apply(path, adapter=adapter)
    past = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in sorted(cloud.resources["endpoint"])[: len(paths) // 2]:
        cloud.endpoint_tags[name][EXPIRES_AT_TAG] = past

    adapter.calls.clear()
    ek.status(paths[-1], adapter=adapter)
    status_calls = Counter(operation for operation, _, _ in adapter.calls)

    adapter.calls.clear()
    dry = reap(adapter, dry_run=True)
    dry_calls = Counter(operation for operation, _, _ in adapter.calls)

    adapter.calls.clear()
    report = reap(adapter)
    reap_calls = Counter(operation for operation, _, _ in adapter.calls)
    return {
        "status": dict(status_calls),
        "reap_dry_run": {
            "endpoints": len(dry.listed),
            "expired": len(dry.outcomes),
            "calls": dict(dry_calls),
        },
        "reap": {"endpoints": len(report.listed), "expired": len(report.outcomes), "calls": dict(reap_calls)},
    }


def _terraform_status(folder: Path) -> dict[str, Any]:
    spec = folder / "endpoint-00.yaml"
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    timings = []
    answer: dict[str, Any] = {}
    for _ in range(3):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "endpointkit", "terraform"],
            input=json.dumps({"spec": spec.name, "target": "mem"}),
            capture_output=True,
            text=True,
            cwd=folder,
            env=env,
            timeout=60,
            check=False,
        )
        timings.append(time.perf_counter() - started)
        if result.returncode != 0:
            return {"error": result.stderr.strip()}
        answer = json.loads(result.stdout)
    return {
        "status": answer.get("status"),
        "best_s": round(min(timings), 3),
        "worst_s": round(max(timings), 3),
    }


def run(specs: int = 20, latency: float = 0.2) -> dict[str, Any]:
    """Every measurement of this module, as one JSON-ready mapping."""
    with tempfile.TemporaryDirectory(prefix="endpointkit-fleet-") as tmp:
        folder = Path(tmp)
        paths = _write_specs(folder, specs)
        return {
            "fleet_apply": _fleet_apply(paths, latency),
            "api_calls": _api_calls(paths),
            "terraform_status_local": _terraform_status(folder),
        }


def main(argv: list[str] | None = None) -> None:
    """Run and print the measurements (``--json`` for one JSON document); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    results = run(args.specs, args.latency)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    fleet = results["fleet_apply"]
    verdict = "meets" if fleet["ratio"] <= GOAL else "misses"
    print(
        f"fleet apply of {fleet['specs']} specs ({fleet['latency_per_create_s']}s per create, "
        f"--parallel {fleet['parallel']}): sequential {fleet['sequential_s']:.2f}s, "
        f"fleet {fleet['fleet_s']:.2f}s, ratio {fleet['ratio']:.3f}x ({verdict} the {GOAL}x goal)"
    )
    calls = results["api_calls"]
    print(f"status of one endpoint: {calls['status']} calls")
    for key in ("reap_dry_run", "reap"):
        entry = calls[key]
        print(
            f"{key.replace('_', ' ')} of {entry['endpoints']} endpoints, {entry['expired']} expired: {entry['calls']}"
        )
    terraform = results["terraform_status_local"]
    if "error" in terraform:
        print(f"endpointkit terraform (status, local): failed: {terraform['error']}")
    else:
        print(
            f"endpointkit terraform (status, local, NOT_FOUND): best {terraform['best_s']:.3f}s, "
            f"worst {terraform['worst_s']:.3f}s (goal: under 2 s)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
