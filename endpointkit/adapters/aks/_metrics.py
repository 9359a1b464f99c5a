"""Live metrics of an AKS endpoint: Triton's metrics port (8002) of every running pod, read through the Kubernetes
API server's pod proxy, so the port never leaves the cluster. Window semantics: ``adapters/_triton_metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from endpointkit._observations import EndpointMetrics
from endpointkit.adapters._triton_metrics import (
    TRITON_WINDOW_NOTE,
    TritonSample,
    parse_triton_metrics,
    variant_metrics,
)
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.aks._render import (
    ANNOTATION_DEFAULT_MODEL,
    LABEL_ENDPOINT,
    LABEL_TEMPLATE,
    LABEL_VARIANT,
    METRICS_PORT,
)
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.errors import NotFoundError, ProviderError
from endpointkit.spec import Deployment

__all__ = ["read_metrics", "scrape_versions"]


def read_metrics(
    kube: KubeClient, deployment: Deployment, *, namespace: str, target_name: str, window: float
) -> EndpointMetrics:
    """Scrape every running pod of the endpoint and add the figures up per variant (spec order).

    Raises:
        NotFoundError: the endpoint has no Deployment in ``namespace``.
        ProviderError: a pod's metrics port did not answer through the proxy (names the pod and port).
    """
    selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{LABEL_ENDPOINT}={deployment.name}"
    found = kube.list("Deployment", namespace, label_selector=selector)
    if not found:
        raise NotFoundError(
            f"AKS endpoint {deployment.name} does not exist in namespace {namespace}",
            provider="kubernetes",
            operation="metrics",
        )
    models = {_label(item, LABEL_VARIANT): _annotation(item, ANNOTATION_DEFAULT_MODEL) for item in found}
    samples: dict[str, list[TritonSample]] = {variant: [] for variant in models}
    for pod in kube.list("Pod", namespace, label_selector=selector):
        if pod.get("status", {}).get("phase") != "Running":
            continue  # a pending or finished pod has no server to ask
        variant = _label(pod, LABEL_VARIANT)
        samples.setdefault(variant, []).append(_scrape(kube, pod, namespace, models.get(variant)))
    order = [variant.name for variant in deployment.variants]
    ordered = sorted(samples, key=lambda name: order.index(name) if name in order else len(order))
    return EndpointMetrics(
        name=deployment.name,
        target=target_name,
        window_seconds=window,
        variants=tuple(variant_metrics(variant, samples[variant]) for variant in ordered),
        source="prometheus",
        note=TRITON_WINDOW_NOTE,
    )


def scrape_versions(
    kube: KubeClient, *, namespace: str, endpoint: str, templates: set[str], model: str | None
) -> dict[str, TritonSample]:
    """Triton's figures for ``model`` on every running pod of the given versions (pod template hashes), by pod.

    What a rollout's alarm reads: the counters are cumulative per pod, so a caller compares two reads.

    Raises:
        ProviderError: a pod's metrics port did not answer through the proxy (names the pod and port).
    """
    selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{LABEL_ENDPOINT}={endpoint}"
    return {
        str(pod["metadata"]["name"]): _scrape(kube, pod, namespace, model)
        for pod in kube.list("Pod", namespace, label_selector=selector)
        if pod.get("status", {}).get("phase") == "Running" and _label(pod, LABEL_TEMPLATE) in templates
    }


def _scrape(kube: KubeClient, pod: Mapping[str, Any], namespace: str, model: str | None) -> TritonSample:
    name = str(pod["metadata"]["name"])
    try:
        text = kube.pod_proxy_get(name, namespace, port=METRICS_PORT, path="metrics")
    except ProviderError as error:
        raise ProviderError(
            f"pod {name}, metrics port {METRICS_PORT}, did not answer through the API server proxy: {error}",
            provider="kubernetes",
            operation="metrics",
            retryable=error.retryable,
        ) from error
    try:
        return parse_triton_metrics(text, model=model, extra="aks")
    except ValueError as error:
        raise ProviderError(
            f"pod {name}, metrics port {METRICS_PORT}, answered text that is not Prometheus metrics: {error}",
            provider="kubernetes",
            operation="metrics",
        ) from error


def _label(item: Mapping[str, Any], key: str) -> str:
    return str((item.get("metadata", {}).get("labels") or {}).get(key, ""))


def _annotation(item: Mapping[str, Any], key: str) -> str | None:
    value = (item.get("metadata", {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)
