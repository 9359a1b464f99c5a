"""Live metrics of a local endpoint: each server's Triton metrics port on 127.0.0.1, one scrape per server.

The window semantics of Triton's figures are those of :mod:`endpointkit.adapters._triton_metrics`.
"""

from __future__ import annotations

from endpointkit._observations import EndpointMetrics
from endpointkit.adapters._http import HttpTransport, Origin
from endpointkit.adapters._triton_metrics import (
    TRITON_WINDOW_NOTE,
    TritonSample,
    parse_triton_metrics,
    variant_metrics,
)
from endpointkit.adapters.local._state import EndpointRecord, ServerRecord
from endpointkit.errors import NotFoundError, ProviderError

__all__ = ["read_metrics"]

METRICS_PATH = "/metrics"
_SCRAPE_TIMEOUT = 5.0


def read_metrics(
    record: EndpointRecord | None,
    transport: HttpTransport,
    *,
    name: str,
    target_name: str,
    window: float,
) -> EndpointMetrics:
    """Scrape every server of the endpoint ``record`` describes and add the figures up per variant.

    Raises:
        NotFoundError: the endpoint has no running servers recorded.
        ProviderError: a metrics port did not answer, or answered something else than metrics (names the
            variant and the port).
    """
    if record is None or not record.servers:
        raise NotFoundError(
            f"local endpoint {name} does not exist on {target_name}: apply it first",
            provider="local",
            operation="metrics",
        )
    samples: dict[str, list[TritonSample]] = {}
    for server in record.servers:
        samples.setdefault(server.variant, []).append(_scrape(server, transport, model=record.default_model))
    return EndpointMetrics(
        name=name,
        target=target_name,
        window_seconds=window,
        variants=tuple(variant_metrics(variant, found) for variant, found in samples.items()),
        source="prometheus",
        note=TRITON_WINDOW_NOTE,
    )


def _scrape(server: ServerRecord, transport: HttpTransport, *, model: str) -> TritonSample:
    where = f"the tritonserver of variant {server.variant} (pid {server.pid}), metrics port 127.0.0.1:{server.metrics_port}"
    origin = Origin("http", "127.0.0.1", server.metrics_port)
    try:
        response = transport.request("GET", origin, METRICS_PATH, timeout=_SCRAPE_TIMEOUT)
    except ProviderError as error:
        raise ProviderError(
            f"{where} did not answer: {error}", provider="local", operation="metrics", retryable=True
        ) from error
    if response.status != 200:
        raise ProviderError(f"{where} answered HTTP {response.status}", provider="local", operation="metrics")
    try:
        return parse_triton_metrics(
            bytes(response.body).decode("utf-8", "replace"), model=model, extra="local"
        )
    except ValueError as error:
        raise ProviderError(
            f"{where} answered text that is not Prometheus metrics: {error}",
            provider="local",
            operation="metrics",
        ) from error
