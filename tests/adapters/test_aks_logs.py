"""``logs`` on AKS over the fakes: every pod's log through the Kubernetes API (timestamps=true), interleaved by
time; the previous run of a restarted container; ``tail`` and ``since``; a follow that ends with the endpoint;
the CLI's one JSON record per line."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import endpointkit as ek
from endpointkit import adapters
from endpointkit.adapters.aks._logs import PodLogs, split_timestamp
from endpointkit.cli import main
from endpointkit.errors import NotFoundError, SpecError
from endpointkit.spec import Deployment
from tests.fakes.arm import SUBSCRIPTION
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

__all__ = ["azure", "repository", "tls"]

VARIANTS = [
    {"name": "blue", "accelerator": "gpu", "instance_count": 1, "weight": 1},
    {"name": "green", "accelerator": "gpu", "instance_count": 1, "weight": 1},
]
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)


def _stamp(moment: datetime, text: str) -> str:
    """A line as the API server sends it with timestamps=true (RFC3339Nano)."""
    return f"{moment:%Y-%m-%dT%H:%M:%S.%f}000Z {text}"


def _at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture
def two_pods(azure: FakeAzure, repository: Path) -> Any:
    """A deployed endpoint with one pod per variant, each with three stamped lines, interleaving in time."""
    spec = aks_spec(repository, azure.arm.url, variants=VARIANTS)
    adapter = azure.adapter(spec.targets["azure"])
    ek.apply(spec, adapter=adapter)
    blue, green = _pods(azure)
    azure.kube.pod_logs[blue] = [_stamp(_at(s), f"blue {s}") for s in (0, 2, 4)]
    azure.kube.pod_logs[green] = [_stamp(_at(s), f"green {s}") for s in (1, 3, 5)]
    yield spec, adapter, blue, green
    adapter.close()


def _pods(azure: FakeAzure) -> list[str]:
    """Pod names, blue's first (each variant's Deployment is named ENDPOINT-VARIANT)."""
    return sorted(pod["metadata"]["name"] for pod in azure.kube.all("Pod"))


def test_split_timestamp_reads_rfc3339_nano_and_offsets() -> None:
    assert split_timestamp("2024-12-05T23:09:26.123456789Z I1205 ready") == (
        datetime(2024, 12, 5, 23, 9, 26, 123456, tzinfo=timezone.utc),
        "I1205 ready",
    )
    assert split_timestamp("2024-12-05T23:09:26+01:00 x")[0] == datetime(
        2024, 12, 5, 22, 9, 26, tzinfo=timezone.utc
    )
    assert split_timestamp("no stamp here") == (None, "no stamp here")


def test_logs_of_two_replicas_interleave_by_time(two_pods: Any, azure: FakeAzure) -> None:
    spec, adapter, blue, green = two_pods

    records = list(ek.logs(spec, adapter=adapter))

    assert [record.line for record in records] == [
        f"{'blue' if s % 2 == 0 else 'green'} {s}" for s in range(6)
    ]
    assert [record.time for record in records] == [_at(s) for s in range(6)]
    assert {(record.variant, record.replica) for record in records} == {("blue", blue), ("green", green)}
    reads = {pod: query for pod, query in azure.kube.log_reads}
    assert set(reads) == {blue, green}
    assert all(
        query["timestamps"] == ["true"] and query["container"] == ["triton"] for query in reads.values()
    )
    assert all("previous" not in query or query["previous"] == ["false"] for query in reads.values())


def test_previous_adds_the_restarted_containers_last_run(two_pods: Any, azure: FakeAzure) -> None:
    spec, adapter, blue, _ = two_pods
    azure.kube.previous_logs[blue] = [_stamp(_at(-30), "E1205 out of memory"), _stamp(_at(-29), "exit 137")]

    without = [record.line for record in ek.logs(spec, adapter=adapter)]
    records = list(ek.logs(spec, adapter=adapter, previous=True))

    assert "exit 137" not in without
    assert [(record.replica, record.line) for record in records[:2]] == [
        (blue, "E1205 out of memory"),
        (blue, "exit 137"),
    ]
    assert [record.line for record in records[2:]] == without
    assert (blue, "true") in [(pod, query.get("previous", [""])[0]) for pod, query in azure.kube.log_reads]


def test_tail_keeps_the_last_lines_after_interleaving(two_pods: Any, azure: FakeAzure) -> None:
    spec, adapter, _, _ = two_pods

    records = list(ek.logs(spec, adapter=adapter, tail=2))

    assert [record.line for record in records] == ["blue 4", "green 5"]
    assert {query["tailLines"][0] for _, query in azure.kube.log_reads} == {"2"}


def test_since_asks_the_api_for_those_seconds_and_keeps_the_lines_from_then(
    two_pods: Any, azure: FakeAzure
) -> None:
    spec, adapter, _, _ = two_pods

    records = list(ek.logs(spec, adapter=adapter, since=_at(2.5)))

    assert [record.line for record in records] == ["green 3", "blue 4", "green 5"]
    asked = {int(query["sinceSeconds"][0]) for _, query in azure.kube.log_reads}
    assert all(seconds >= 10 * 60 - 3 for seconds in asked)


def test_variant_keeps_that_variants_pods(two_pods: Any, azure: FakeAzure) -> None:
    spec, adapter, _, green = two_pods

    records = list(ek.logs(spec, adapter=adapter, variant="green"))

    assert [(record.variant, record.replica, record.line) for record in records] == [
        ("green", green, f"green {s}") for s in (1, 3, 5)
    ]


def test_an_unknown_variant_is_refused_before_any_call(two_pods: Any, azure: FakeAzure) -> None:
    spec, adapter, _, _ = two_pods
    before = len(azure.kube.requests)

    with pytest.raises(SpecError, match="no variant 'red'; its variants: blue, green"):
        ek.logs(spec, adapter=adapter, variant="red")

    assert len(azure.kube.requests) == before


def test_an_endpoint_that_was_never_applied_is_not_found(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url)
    with azure.adapter(spec.targets["azure"]) as adapter, pytest.raises(NotFoundError, match="cluster"):
        ek.logs(spec, adapter=adapter)


def test_follow_resumes_after_the_last_line_and_ends_when_the_endpoint_is_destroyed(
    two_pods: Any, azure: FakeAzure
) -> None:
    spec, adapter, blue, green = two_pods
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # a line of the same instant as green's last one, and a later one on blue
            azure.kube.pod_logs[green].append(_stamp(_at(5), "green 5 again"))
            azure.kube.pod_logs[blue].append(_stamp(_at(6), "blue 6"))
        else:
            ek.destroy(spec, adapter=adapter)

    # Each read looks 1000 s after the one before: every poll reads again the lines written 10 min ago.
    clock = itertools.count(0.0, 1000.0)
    reader = PodLogs(
        adapter._kube_client,
        namespace="default",
        cluster_exists=lambda: adapter._arm.cluster() is not None,
        sleep=sleep,
        monotonic=lambda: next(clock),
    )
    records = list(reader.records("vision", variant=None, since=None, tail=None, follow=True, previous=False))

    assert [record.line for record in records[6:]] == ["green 5 again", "blue 6"]
    assert sleeps == [2.0, 2.0]
    follow_reads = [query for _, query in azure.kube.log_reads[2:4]]
    assert all(int(query["sinceSeconds"][0]) >= 1000 for query in follow_reads)


def _spec_file(directory: Path, azure: FakeAzure, repository: Path) -> Path:
    """The fakes' spec (``aks_spec``) as a file the CLI reads."""
    target = {
        "kind": "aks",
        "subscription_id": SUBSCRIPTION,
        "resource_group": "rg",
        "cluster": "gpu-aks",
        "location": "eastus",
        "create_cluster": True,
        "arm_endpoint": azure.arm.url,
        "node_pool": {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "count": 2},
        "storage_account": "mymodels",
    }
    data = {
        "name": "vision",
        "model": {"repository": str(repository)},
        "variants": VARIANTS,
        "targets": {"azure": target},
    }
    path = directory / "endpoint.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_json_prints_one_record_a_line(
    two_pods: Any,
    azure: FakeAzure,
    repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, blue, green = two_pods

    def fake_target(deployment: Deployment, **options: Any) -> Any:
        return azure.adapter(deployment.target, target_name=deployment.target_name)

    monkeypatch.setattr(adapters, "create_adapter", fake_target)
    spec_file = _spec_file(tmp_path, azure, repository)

    code = main(["logs", str(spec_file), "--target", "azure", "--json", "--tail", "3"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [json.loads(line) for line in lines] == [
        {
            "time": _at(3).isoformat().replace("+00:00", "Z"),
            "variant": "green",
            "replica": green,
            "line": "green 3",
        },
        {
            "time": _at(4).isoformat().replace("+00:00", "Z"),
            "variant": "blue",
            "replica": blue,
            "line": "blue 4",
        },
        {
            "time": _at(5).isoformat().replace("+00:00", "Z"),
            "variant": "green",
            "replica": green,
            "line": "green 5",
        },
    ]


def test_cli_refuses_an_unknown_variant_with_exit_2(
    two_pods: Any,
    azure: FakeAzure,
    repository: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec_file = _spec_file(tmp_path, azure, repository)

    code = main(["logs", str(spec_file), "--target", "azure", "--variant", "red", "--json"])

    captured = capsys.readouterr()
    assert code == 2
    assert "no variant 'red'" in captured.out + captured.err
