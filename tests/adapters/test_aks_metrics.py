"""AKS live metrics on the fakes: Triton's metrics of each pod, read through the API server's pod proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.errors import NotFoundError, ProviderError
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

__all__ = ["azure", "repository", "tls"]


def _exposition(successes: int, failures: int, p50_us: float, p99_us: float) -> str:
    return "\n".join(
        [
            "# TYPE nv_inference_request_success counter",
            f'nv_inference_request_success{{model="echo",version="1"}} {successes}',
            "# TYPE nv_inference_request_failure counter",
            f'nv_inference_request_failure{{model="echo",reason="BACKEND",version="1"}} {failures}',
            "# TYPE nv_inference_queue_duration_us counter",
            f'nv_inference_queue_duration_us{{model="echo",version="1"}} {successes * 100}',
            "# TYPE nv_inference_request_summary_us summary",
            f'nv_inference_request_summary_us{{model="echo",version="1",quantile="0.5"}} {p50_us}',
            f'nv_inference_request_summary_us{{model="echo",version="1",quantile="0.99"}} {p99_us}',
            "",
        ]
    )


@pytest.fixture
def two_replicas(azure: FakeAzure, repository: Path) -> Any:
    variants = [{"name": "primary", "accelerator": "gpu", "instance_count": 2, "cpu": 2, "memory": "4Gi"}]
    spec = aks_spec(repository, azure.arm.url, variants=variants)
    adapter = azure.adapter(spec.targets["azure"])
    ek.apply(spec, adapter=adapter)
    yield spec, adapter
    adapter.close()


def _pods(azure: FakeAzure) -> list[str]:
    return sorted(pod["metadata"]["name"] for pod in azure.kube.all("Pod"))


def test_metrics_of_every_pod_come_through_the_pod_proxy(two_replicas: Any, azure: FakeAzure) -> None:
    spec, adapter = two_replicas
    first, second = _pods(azure)
    azure.kube.pod_metrics[first] = _exposition(30, 1, 800, 2000)
    azure.kube.pod_metrics[second] = _exposition(20, 0, 1200, 1500)

    metrics = ek.metrics(spec, adapter=adapter)

    proxied = sorted(path for _, path, _ in azure.kube.calls("GET", contains="/proxy/"))
    assert proxied == [
        f"/api/v1/namespaces/default/pods/{pod}%3A8002/proxy/metrics" for pod in (first, second)
    ]
    assert (metrics.source, metrics.target) == ("prometheus", "azure")
    [primary] = metrics.variants
    assert (primary.variant, primary.requests, primary.failures) == ("primary", 51, 1)
    assert (primary.p50_ms, primary.p99_ms) == (1.2, 2.0)  # the highest replica's quantiles
    assert primary.queue_ms == pytest.approx(0.1)


def test_a_pod_whose_metrics_port_does_not_answer_is_named(two_replicas: Any, azure: FakeAzure) -> None:
    spec, adapter = two_replicas
    first, second = _pods(azure)
    azure.kube.pod_metrics[first] = _exposition(1, 0, 1, 1)

    with pytest.raises(ProviderError, match=f"pod {second}, metrics port 8002, did not answer"):
        ek.metrics(spec, adapter=adapter)


def test_an_endpoint_without_deployments_is_not_found(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url)
    adapter = azure.adapter(spec.targets["azure"])
    try:
        with pytest.raises(NotFoundError, match="cluster does not exist"):
            ek.metrics(spec, adapter=adapter)
    finally:
        adapter.close()
