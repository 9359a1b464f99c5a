"""Day-2 visibility: the wall time of ``status --metrics`` on a local endpoint, and the AWS API calls per endpoint
of ``status --metrics`` on a fleet of SageMaker endpoints.

Local: one endpoint on a real tritonserver (the identity model), 20 invokes, then ``endpointkit status SPEC
--metrics --json`` run in this process ``--rounds`` times; the median is reported. Goal: at most 0.5 s.

SageMaker on moto (in a child process, see ``benchmarks._moto``): ``--specs`` endpoints applied as a fleet, then
``status --metrics --parallel 4`` on all of them; every botocore call is counted by service and operation.
Expected per endpoint: DescribeEndpoint, ListTags and DescribeEndpointConfig for the state, DescribeEndpoint and
one GetMetricData for the metrics.

    python -m benchmarks.day2 [--rounds N] [--specs N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import endpointkit as ek
from benchmarks._identity_repo import write_identity_repository
from benchmarks._moto import BUCKET, REGION, ROLE_ARN, moto_server, write_repository

GOAL_LOCAL_SECONDS = 0.5


def _cli(*argv: str) -> tuple[float, int, str]:
    """Run the CLI in this process: wall seconds, exit code, stdout (stderr is dropped)."""
    from endpointkit import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        started = time.perf_counter()
        code = cli.main(list(argv))
        elapsed = time.perf_counter() - started
    return elapsed, code, out.getvalue()


def _local(folder: Path, rounds: int) -> dict[str, Any]:
    spec = folder / "local.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "day2-bench",
                "model": {"repository": str(write_identity_repository(folder / "repository"))},
                "variants": [{"name": "primary"}],
                "targets": {"local": {"kind": "local", "state_dir": str(folder / "state")}},
            }
        )
    )
    ek.apply(spec)
    try:
        for _ in range(20):
            ek.invoke_endpoint(spec, {"INPUT0": np.arange(4, dtype=np.float32)})
        times, requests = [], None
        for _ in range(rounds):
            elapsed, code, out = _cli("status", str(spec), "--metrics", "--json")
            if code != 0:
                raise RuntimeError(f"status --metrics exited {code}: {out}")
            times.append(elapsed)
            requests = json.loads(out)["metrics"]["variants"][0]["requests"]
    finally:
        ek.destroy(spec)
    median = statistics.median(times)
    return {
        "rounds": rounds,
        "median_s": round(median, 4),
        "max_s": round(max(times), 4),
        "goal_s": GOAL_LOCAL_SECONDS,
        "within_goal": median <= GOAL_LOCAL_SECONDS,
        "requests_reported": requests,
    }


@contextlib.contextmanager
def _counting_calls() -> Iterator[Counter[str]]:
    """Count every botocore call made by clients built inside the block, as ``service:Operation``."""
    import boto3.session

    calls: Counter[str] = Counter()
    guard = threading.Lock()
    original = boto3.session.Session.client

    def client(session: Any, *args: Any, **kwargs: Any) -> Any:
        made = original(session, *args, **kwargs)

        def count(model: Any, **_: Any) -> None:
            with guard:
                calls[f"{model.service_model.service_name}:{model.name}"] += 1

        made.meta.events.register("before-call", count)
        return made

    boto3.session.Session.client = client
    try:
        yield calls
    finally:
        boto3.session.Session.client = original


_SPEC = """\
name: {name}
model: {{repository: "{repository}"}}
variants: [{{name: primary, accelerator: gpu, instance_type: ml.g4dn.xlarge}}]
targets:
  aws: {{kind: sagemaker, region: {region}, role_arn: "{role_arn}", bucket: {bucket}}}
"""


def _sagemaker(folder: Path, specs: int) -> dict[str, Any]:
    import boto3

    repository = write_repository(folder / "sm-repository")
    fleet = folder / "fleet"
    fleet.mkdir()
    for index in range(specs):
        (fleet / f"endpoint-{index:02d}.yaml").write_text(
            _SPEC.format(
                name=f"day2-{index:02d}",
                repository=repository,
                region=REGION,
                role_arn=ROLE_ARN,
                bucket=BUCKET,
            )
        )
    with moto_server(separate_process=True):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        _, code, _ = _cli("apply", str(fleet), "--target", "aws", "--parallel", str(specs), "--json")
        if code != 0:
            raise RuntimeError(f"the fleet apply exited {code}")
        with _counting_calls() as calls:
            elapsed, code, _ = _cli(
                "status", str(fleet), "--target", "aws", "--metrics", "--parallel", "4", "--json"
            )
        _cli("destroy", str(fleet), "--target", "aws", "--parallel", str(specs), "--json")
    total = sum(calls.values())
    return {
        "specs": specs,
        "parallel": 4,
        "exit_code": code,
        "wall_s": round(elapsed, 3),
        "calls_per_endpoint": round(total / specs, 2),
        "get_metric_data_per_endpoint": round(calls["cloudwatch:GetMetricData"] / specs, 2),
        "calls": dict(sorted(calls.items())),
    }


def main(argv: list[str] | None = None) -> None:
    """Run and print the measurements (``--json`` for one JSON document); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.day2", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="local: runs of status --metrics (median)")
    parser.add_argument("--specs", type=int, default=20, help="SageMaker: endpoints in the fleet")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory(prefix="endpointkit-day2-") as folder:
        report = {
            "local_status_metrics": _local(Path(folder), args.rounds),
            "sagemaker_status_metrics": _sagemaker(Path(folder), args.specs),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    local, sagemaker = report["local_status_metrics"], report["sagemaker_status_metrics"]
    print(
        f"local status --metrics: median {local['median_s']} s over {local['rounds']} runs "
        f"(goal <= {GOAL_LOCAL_SECONDS} s: {'met' if local['within_goal'] else 'MISSED'})"
    )
    print(
        f"SageMaker status --metrics, {sagemaker['specs']} endpoints, --parallel 4: {sagemaker['wall_s']} s, "
        f"{sagemaker['calls_per_endpoint']} API calls per endpoint "
        f"({sagemaker['get_metric_data_per_endpoint']} GetMetricData): {sagemaker['calls']}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
