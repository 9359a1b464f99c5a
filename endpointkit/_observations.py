"""What an endpoint says and how it is doing: log records, live metrics, drift between spec and live.

A leaf like ``_endpoint_state``: it imports nothing from endpointkit, so adapters, provisioners, the facade and the
CLI can all share these values without a cycle. ``endpointkit`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["Drift", "EndpointMetrics", "LogRecord", "VariantMetrics"]


def _iso_utc(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 in UTC with a ``Z`` suffix; a naive value is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line of an endpoint.

    Attributes:
        time: when the line was written (timezone-aware), or ``None`` when the source gives no time.
        variant: the spec variant that wrote it.
        replica: which server, pod or instance of that variant wrote it (the local server's port, the pod name,
            the CloudWatch log stream).
        line: the text, without its trailing newline.
    """

    time: datetime | None
    variant: str
    replica: str
    line: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; ``time`` as ISO 8601 UTC (``...Z``) or ``None``."""
        return {
            "time": _iso_utc(self.time),
            "variant": self.variant,
            "replica": self.replica,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class VariantMetrics:
    """Traffic of one variant over a window; ``None`` where the target does not report a figure.

    Attributes:
        variant: the spec variant.
        requests: requests received in the window.
        failures: requests that failed in the window.
        p50_ms: median request latency in milliseconds.
        p99_ms: 99th percentile request latency in milliseconds.
        queue_ms: mean time a request waited in the server's queue, in milliseconds.
    """

    variant: str
    requests: int | None
    failures: int | None
    p50_ms: float | None
    p99_ms: float | None
    queue_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field."""
        return {
            "variant": self.variant,
            "requests": self.requests,
            "failures": self.failures,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "queue_ms": self.queue_ms,
        }


@dataclass(frozen=True)
class EndpointMetrics:
    """Live metrics of one endpoint, per variant, over a window.

    Attributes:
        name: the endpoint name.
        target: the spec's target name.
        window_seconds: the length of the window the figures cover.
        variants: one entry per variant, in spec order.
        source: where the figures come from (e.g. ``prometheus``, ``cloudwatch``).
        note: why some figures are missing, when they are.
    """

    name: str
    target: str
    window_seconds: float
    variants: tuple[VariantMetrics, ...]
    source: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; ``variants`` as a list of mappings."""
        return {
            "name": self.name,
            "target": self.target,
            "window_seconds": self.window_seconds,
            "variants": [variant.to_dict() for variant in self.variants],
            "source": self.source,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Drift:
    """One field where what is live differs from what the spec asks.

    Attributes:
        field: a dotted path naming the field, e.g. ``variants.primary.instance_count``.
        live: the value found live (``None`` when the thing is missing).
        wanted: the value the spec asks for.
    """

    field: str
    live: Any
    wanted: Any

    def __str__(self) -> str:
        return f"{self.field}: live {self.live}, spec {self.wanted}"
