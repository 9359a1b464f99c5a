"""SageMaker adapter on moto: wall time and AWS API calls of apply, an unchanged re-apply, and destroy.

Runs moto in server mode on 127.0.0.1 and points the adapter at it with ``AWS_ENDPOINT_URL``, as a user would
point it at LocalStack. moto makes endpoints InService at once, so the wall time is the adapter's own work plus
its wait schedule: the first DescribeEndpoint comes 1 s after CreateEndpoint (and after DeleteEndpoint).
``--no-wait`` replaces the sleeps with no-ops to show the adapter's overhead alone.

    python -m benchmarks.sagemaker [--rounds N] [--no-wait] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._moto import BUCKET, REGION, ROLE_ARN, moto_server, write_repository

__all__ = ["main", "run"]


class _Counter:
    """A client factory that counts every API call (botocore ``before-call``) by operation."""

    def __init__(self) -> None:
        from endpointkit.adapters.sagemaker import make_client_factory

        self.calls: Counter[str] = Counter()
        self._base = make_client_factory(REGION)

    def __call__(self, service: str) -> Any:
        client = self._base(service)
        client.meta.events.register("before-call", self._count)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, int]:
        taken = dict(sorted(self.calls.items()))
        self.calls.clear()
        return taken


def _timed(step: Callable[[], Any]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run(rounds: int = 3, *, wait: bool = True) -> dict[str, Any]:
    """Apply, re-apply unchanged and destroy ``rounds`` times; median seconds and the calls of the first round."""
    import boto3

    import endpointkit as ek
    from endpointkit.adapters.sagemaker import SageMakerAdapter
    from endpointkit.spec import spec_from_dict

    results: dict[str, list[float]] = {"apply": [], "reapply_unchanged": [], "destroy": []}
    calls: dict[str, dict[str, int]] = {}
    with moto_server(), tempfile.TemporaryDirectory() as folder:
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        repository = write_repository(Path(folder) / "repo")
        spec = spec_from_dict(
            {
                "name": "bench-endpoint",
                "model": {"repository": str(repository)},
                "variants": [{"name": "primary", "accelerator": "gpu", "instance_type": "ml.g4dn.xlarge"}],
                "targets": {
                    "aws": {
                        "kind": "sagemaker",
                        "region": REGION,
                        "role_arn": ROLE_ARN,
                        "bucket": BUCKET,
                    }
                },
            },
            base_dir=Path(folder),
        )
        deployment = spec.deployment()
        counter = _Counter()

        def adapter() -> SageMakerAdapter:  # a fresh adapter per step, as each CLI command makes one
            options: dict[str, Any] = {"client_factory": counter}
            if not wait:
                options["sleep"] = lambda seconds: None
            return SageMakerAdapter(deployment.target, target_name="aws", **options)  # type: ignore[arg-type]

        for _ in range(rounds):
            for step, action in (
                ("apply", lambda: ek.apply(spec, adapter=adapter())),
                ("reapply_unchanged", lambda: ek.apply(spec, adapter=adapter())),
                ("destroy", lambda: ek.destroy(spec, adapter=adapter())),
            ):
                results[step].append(_timed(action))
                calls.setdefault(step, counter.take())  # the first round: a cold apply uploads the archive
                counter.take()
    return {
        "rounds": rounds,
        "waits": wait,
        "seconds_median": {step: round(statistics.median(times), 3) for step, times in results.items()},
        "calls": calls,
        "call_totals": {step: sum(counts.values()) for step, counts in calls.items()},
    }


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark as a table (or JSON with ``--json``); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-wait", action="store_true", help="no-op sleeps: the adapter's own overhead")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args([] if argv is None else argv)
    result = run(arguments.rounds, wait=not arguments.no_wait)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"SageMaker adapter on moto ({result['rounds']} rounds, waits {'on' if result['waits'] else 'off'})"
    )
    for step, seconds in result["seconds_median"].items():
        counts = result["calls"][step]
        listing = ", ".join(f"{name} {count}" for name, count in counts.items())
        print(f"  {step:<18} {seconds:7.3f} s  {result['call_totals'][step]:3d} calls: {listing}")


if __name__ == "__main__":
    main(sys.argv[1:])
