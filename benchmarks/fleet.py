"""Fleets, reap and status: wall time of a fleet apply against a sequential one, and API calls per operation.

A fleet apply of 20 specs is measured twice, each time against the same 20 specs applied one after another, with
the default parallelism (``endpointkit.fleet.DEFAULT_PARALLEL``). The goal is a fleet at most 0.35x as long.

SageMaker on moto (the issue's measurement): moto in server mode on 127.0.0.1, by default in a child process so
that its request handling does not compete with the measured threads for this process's GIL (a cloud would not;
``--moto-in-process`` runs it on a thread here, as ``benchmarks.sagemaker`` does). 20 SageMaker specs (region
us-east-1, a role ARN, a bucket created in moto) with distinct endpoint names share one tiny Python-backend model
repository. Sequential: ``ek.apply(path, target="aws")`` for each spec. Fleet: ``endpointkit.cli.main(["apply",
DIR, "--target", "aws", "--json"])``, exactly what ``endpointkit apply DIR`` runs. Each is followed by a fleet
destroy (``--parallel`` the number of specs, to save time), timed apart. moto makes an endpoint InService at once,
so an apply is the adapter's own work plus its wait schedule (the first DescribeEndpoint 1 s after
CreateEndpoint). moto is checked to hold every endpoint InService after each apply and nothing after each destroy;
every boto3 session and client made is recorded with the threads that use it (a client used by two fleet workers
is reported; sessions are shared by design), and WARNING log records, the adapter's retries and uncaught thread exceptions are collected. The client
CPU seconds per sequential apply give a floor: the fleet's threads share one GIL, so the fleet cannot take less
than the specs times that. One round by default (about a minute); ``--moto-rounds N`` reports medians of N.

Memory adapter, simulated latency: the memory adapter answers at once, so a fleet would have nothing to overlap;
``SlowMemoryAdapter`` sleeps for ``--latency`` seconds in every create (model, config, endpoint), standing in for
a cloud round trip. The fleet goes through ``endpointkit.fleet.run_fleet``, the runner behind
``endpointkit apply DIR``.

API calls are counted on the memory adapter, which records every call: ``status`` of one endpoint, ``reap`` of a
target holding 20 endpoints of which half have expired, and the same reap as a dry run. ``terraform`` status is
the wall time of ``endpointkit terraform`` for a never-applied local endpoint, run as Terraform runs it.

    python -m benchmarks.fleet [--specs N] [--latency SECONDS] [--moto-rounds N] [--moto-in-process]
                               [--no-moto] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import endpointkit as ek
from benchmarks._moto import BUCKET, REGION, ROLE_ARN, moto_server, write_repository
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
_SAGEMAKER_TARGET = "aws"
_SAGEMAKER_PREFIX = "bench-fleet-"
_SAGEMAKER_SPEC = """\
name: {name}
model: {{repository: "{repository}"}}
variants: [{{name: primary, accelerator: gpu, instance_type: ml.g4dn.xlarge}}]
targets:
  aws: {{kind: sagemaker, region: {region}, role_arn: "{role_arn}", bucket: {bucket}}}
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


def _fleet_apply_memory(paths: list[Path], latency: float) -> dict[str, Any]:
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
        "target": "memory adapter, simulated latency",
        "specs": len(paths),
        "latency_per_create_s": latency,
        "parallel": DEFAULT_PARALLEL,
        "sequential_s": round(sequential, 3),
        "fleet_s": round(parallel, 3),
        "ratio": round(parallel / sequential, 3),
        "goal": GOAL,
    }


# ------------------------------------------------------------------------------------------ SageMaker on moto


def _is_job_thread() -> bool:
    # Where a fleet job or the sequential loop runs. boto3's S3 transfer manager also calls the S3 client from
    # its own pool: clients are thread-safe, so those threads are not counted.
    name = threading.current_thread().name
    return name == "MainThread" or name.startswith("fleet")


class _Watch(logging.Handler):
    """Records which job threads use each boto3 session and client, log records and uncaught thread errors."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._guard = threading.Lock()
        # id -> (the object, kept so that its id is not reused; the names of the job threads that used it)
        self.sessions: dict[int, tuple[object, set[str]]] = {}
        self.clients: dict[int, tuple[object, set[str]]] = {}
        self.warnings: list[str] = []
        self.retries: list[str] = []
        self.thread_errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"[{record.threadName}] {record.name}: {record.getMessage()}"
        with self._guard:
            if record.levelno >= logging.WARNING:
                self.warnings.append(line)
            elif record.name.startswith("endpointkit") and record.getMessage().startswith("retrying"):
                self.retries.append(line)

    def use(self, table: dict[int, tuple[object, set[str]]], thing: object) -> None:
        if not _is_job_thread():
            return
        with self._guard:
            table.setdefault(id(thing), (thing, set()))[1].add(threading.current_thread().name)

    def shared(self, table: dict[int, tuple[object, set[str]]]) -> list[list[str]]:
        """The job threads of every object used from more than one."""
        return [sorted(names) for _, names in table.values() if len(names) > 1]

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        import boto3.session

        original_client = boto3.session.Session.client
        watch = self

        def client(session: Any, *args: Any, **kwargs: Any) -> Any:
            made = original_client(session, *args, **kwargs)
            watch.use(watch.sessions, session)
            watch.use(watch.clients, made)
            made.meta.events.register("before-call", lambda **_: watch.use(watch.clients, made))
            return made

        def excepthook(arguments: threading.ExceptHookArgs) -> None:
            thread = arguments.thread.name if arguments.thread is not None else "?"
            with self._guard:
                self.thread_errors.append(f"[{thread}] {arguments.exc_type.__name__}: {arguments.exc_value}")
            original_hook(arguments)

        package_logger = logging.getLogger("endpointkit")
        original_level = package_logger.level
        original_hook = threading.excepthook
        boto3.session.Session.client = client
        threading.excepthook = excepthook
        logging.getLogger().addHandler(self)
        package_logger.setLevel(logging.INFO)  # the adapter logs its retries at INFO
        try:
            yield
        finally:
            package_logger.setLevel(original_level)
            logging.getLogger().removeHandler(self)
            threading.excepthook = original_hook
            boto3.session.Session.client = original_client

    def report(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "clients": len(self.clients),
            "sessions_shared_between_threads": self.shared(self.sessions),
            "clients_shared_between_threads": self.shared(self.clients),
            "warnings": self.warnings,
            "retries": self.retries,
            "thread_exceptions": self.thread_errors,
        }


def _write_sagemaker_specs(folder: Path, repository: Path, count: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for index in range(count):
        path = folder / f"endpoint-{index:02d}.yaml"
        path.write_text(
            _SAGEMAKER_SPEC.format(
                name=f"{_SAGEMAKER_PREFIX}{index:02d}",
                repository=repository,
                region=REGION,
                role_arn=ROLE_ARN,
                bucket=BUCKET,
            )
        )
        paths.append(path)
    return paths


def _cli(*argv: str) -> tuple[float, dict[str, Any]]:
    """Run ``endpointkit ARGV --target aws --json`` in this process: wall seconds and its JSON document."""
    from endpointkit import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        started = time.perf_counter()
        code = cli.main([*argv, "--target", _SAGEMAKER_TARGET, "--json"])
        elapsed = time.perf_counter() - started
    try:
        document: dict[str, Any] = json.loads(out.getvalue())
    except json.JSONDecodeError:
        document = {"errors": [(out.getvalue() + err.getvalue()).strip()[-2000:]]}
    document.setdefault("summary", {})["exit_code"] = code
    return elapsed, document


def _fleet_problems(step: str, document: dict[str, Any], specs: int) -> list[str]:
    summary = document["summary"]
    if summary["exit_code"] == 0 and summary.get("ok") == specs:
        return []
    errors = [
        f"{entry.get('spec', '?')}: {entry.get('error', entry)}" if isinstance(entry, dict) else str(entry)
        for entry in document.get("errors", [])
    ]
    return [f"{step}: exit {summary['exit_code']}, {summary.get('ok')} of {specs} ok", *errors]


def _moto_problems(step: str, sagemaker: Any, names: list[str], *, deployed: bool) -> list[str]:
    """What moto holds that it should not after ``step``: every endpoint InService, or nothing left."""
    endpoints: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_endpoints").paginate(NameContains=_SAGEMAKER_PREFIX):
        endpoints.update((item["EndpointName"], item["EndpointStatus"]) for item in page["Endpoints"])
    if deployed:
        wrong = {name: endpoints.get(name, "missing") for name in names if endpoints.get(name) != "InService"}
        return [f"after {step}: endpoints not InService: {wrong}"] if wrong else []
    left = {
        "endpoints": len(endpoints),
        "endpoint configs": len(sagemaker.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]),
        "models": len(sagemaker.list_models(MaxResults=100)["Models"]),
    }
    return [f"after {step}: moto still holds {left}"] if any(left.values()) else []


def _fleet_apply_moto(count: int, rounds: int, *, in_process: bool) -> dict[str, Any]:
    try:
        import boto3
        import moto  # noqa: F401  (only to say it is missing)
    except ImportError as missing:
        return {"skipped": f"{missing.name} is not installed (pip install 'moto[server]' boto3)"}

    sequential: list[float] = []
    per_apply: list[float] = []
    cpu: list[float] = []
    fleet: list[float] = []
    destroys: list[float] = []
    problems: list[str] = []
    watch = _Watch()
    load_before = os.getloadavg()
    with moto_server(separate_process=not in_process), tempfile.TemporaryDirectory() as tmp:
        session = boto3.session.Session(region_name=REGION)  # made before the watch: not counted
        session.client("s3").create_bucket(Bucket=BUCKET)
        sagemaker = session.client("sagemaker")
        repository = write_repository(Path(tmp) / "repository")
        folder = Path(tmp) / "specs"
        paths = _write_sagemaker_specs(folder, repository, count)
        names = [f"{_SAGEMAKER_PREFIX}{index:02d}" for index in range(count)]
        ek.plan(paths[0], target=_SAGEMAKER_TARGET)  # warm up imports and botocore's caches; read-only

        def destroy_all(step: str) -> None:
            elapsed, document = _cli("destroy", str(folder), "--parallel", str(count))
            destroys.append(elapsed)
            problems.extend(_fleet_problems(f"destroy after {step}", document, count))
            problems.extend(_moto_problems(f"destroy after {step}", sagemaker, names, deployed=False))

        with watch.watching():
            for _ in range(rounds):
                started, cpu_started = time.perf_counter(), time.process_time()
                for path in paths:
                    one = time.perf_counter()
                    ek.apply(path, target=_SAGEMAKER_TARGET)
                    per_apply.append(time.perf_counter() - one)
                sequential.append(time.perf_counter() - started)
                cpu.append((time.process_time() - cpu_started) / count)
                problems.extend(_moto_problems("sequential apply", sagemaker, names, deployed=True))
                destroy_all("sequential apply")

                elapsed, document = _cli("apply", str(folder))
                fleet.append(elapsed)
                problems.extend(_fleet_problems("fleet apply", document, count))
                problems.extend(_moto_problems("fleet apply", sagemaker, names, deployed=True))
                destroy_all("fleet apply")
    threads = watch.report()
    # The adapter shares one boto3 session per AWS environment and makes clients from it under a lock (see
    # endpointkit.adapters.sagemaker._clients); a client, though, belongs to one adapter and so to one job.
    problems.extend(
        f"a boto3 client used from threads {users}" for users in threads["clients_shared_between_threads"]
    )
    problems.extend(f"thread exception: {line}" for line in threads["thread_exceptions"])
    sequential_s, fleet_s = statistics.median(sequential), statistics.median(fleet)
    cpu_s = statistics.median(cpu)
    return {
        "target": f"sagemaker on moto ({'in this process' if in_process else 'separate process'})",
        "specs": count,
        "parallel": DEFAULT_PARALLEL,
        "rounds": rounds,
        "sequential_s": round(sequential_s, 3),
        "fleet_s": round(fleet_s, 3),
        "ratio": round(fleet_s / sequential_s, 3),
        "goal": GOAL,
        "sequential_rounds_s": [round(value, 3) for value in sequential],
        "fleet_rounds_s": [round(value, 3) for value in fleet],
        "ratio_rounds": [round(ours / theirs, 3) for ours, theirs in zip(fleet, sequential, strict=True)],
        "apply_median_s": round(statistics.median(per_apply), 3),
        "client_cpu_s_per_apply": round(cpu_s, 3),
        "gil_floor_ratio": round(count * cpu_s / sequential_s, 3),
        "destroy_parallel": count,
        "fleet_destroy_median_s": round(statistics.median(destroys), 3),
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "threads": threads,
        "problems": problems,
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


def run(
    specs: int = 20,
    latency: float = 0.2,
    *,
    moto: bool = True,
    moto_rounds: int = 1,
    moto_in_process: bool = False,
) -> dict[str, Any]:
    """Every measurement of this module, as one JSON-ready mapping."""
    results: dict[str, Any] = {}
    if moto:
        results["fleet_apply_sagemaker_moto"] = _fleet_apply_moto(
            specs, moto_rounds, in_process=moto_in_process
        )
    with tempfile.TemporaryDirectory(prefix="endpointkit-fleet-") as tmp:
        folder = Path(tmp)
        paths = _write_specs(folder, specs)
        results["fleet_apply_memory"] = _fleet_apply_memory(paths, latency)
        results["api_calls"] = _api_calls(paths)
        results["terraform_status_local"] = _terraform_status(folder)
    return results


def _print_moto(fleet: dict[str, Any]) -> None:
    if "skipped" in fleet:
        print(f"fleet apply on moto: skipped: {fleet['skipped']}")
        return
    verdict = "meets" if fleet["ratio"] <= GOAL else "misses"
    rounds = f"median of {fleet['rounds']} rounds" if fleet["rounds"] > 1 else "1 round"
    print(
        f"fleet apply of {fleet['specs']} specs, {fleet['target']}, --parallel {fleet['parallel']} ({rounds}): "
        f"sequential {fleet['sequential_s']:.2f}s, fleet {fleet['fleet_s']:.2f}s, "
        f"ratio {fleet['ratio']:.3f}x ({verdict} the {GOAL}x goal)"
    )
    if fleet["rounds"] > 1:
        print(f"  ratio of each round: {', '.join(f'{ratio:.3f}x' for ratio in fleet['ratio_rounds'])}")
    print(
        f"  one sequential apply: {fleet['apply_median_s']:.2f}s (median), "
        f"{fleet['client_cpu_s_per_apply']:.2f}s of CPU in this process: "
        f"GIL floor {fleet['gil_floor_ratio']:.3f}x; "
        f"fleet destroy (--parallel {fleet['destroy_parallel']}) {fleet['fleet_destroy_median_s']:.2f}s; "
        f"load average {fleet['load_average_1m'][0]} -> {fleet['load_average_1m'][1]}"
    )
    threads = fleet["threads"]
    shared_sessions = len(threads["sessions_shared_between_threads"])
    shared_clients = len(threads["clients_shared_between_threads"])
    print(
        f"  threads: {threads['sessions']} boto3 sessions ({shared_sessions or 'none'} shared between threads, "
        f"clients made under a lock) and {threads['clients']} clients ({shared_clients or 'none'} shared); "
        f"{len(threads['warnings'])} warnings, "
        f"{len(threads['retries'])} retries, {len(threads['thread_exceptions'])} thread exceptions"
    )
    for line in [*fleet["problems"], *threads["warnings"], *threads["retries"]][:20]:
        print(f"  ! {line}")


def main(argv: list[str] | None = None) -> None:
    """Run and print the measurements (``--json`` for one JSON document); ``argv`` defaults to no options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2, help="memory adapter: seconds per create")
    parser.add_argument("--moto-rounds", type=int, default=1, help="SageMaker on moto: rounds (medians)")
    parser.add_argument("--moto-in-process", action="store_true", help="run moto on a thread of this process")
    parser.add_argument("--no-moto", action="store_true", help="skip the SageMaker-on-moto measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    results = run(
        args.specs,
        args.latency,
        moto=not args.no_moto,
        moto_rounds=args.moto_rounds,
        moto_in_process=args.moto_in_process,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if "fleet_apply_sagemaker_moto" in results:
        _print_moto(results["fleet_apply_sagemaker_moto"])
    fleet = results["fleet_apply_memory"]
    verdict = "meets" if fleet["ratio"] <= GOAL else "misses"
    print(
        f"fleet apply of {fleet['specs']} specs, {fleet['target']} ({fleet['latency_per_create_s']}s per create), "
        f"--parallel {fleet['parallel']}: sequential {fleet['sequential_s']:.2f}s, "
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
