"""Triton's own Prometheus metrics, read the same way on every target that runs tritonserver (local, AKS).

What Triton 2.51 exposes on its metrics port (checked against the bundled server):

- by default, per model and version, cumulative counters since the server started:
  ``nv_inference_request_success``, ``nv_inference_request_failure`` (one series per ``reason``),
  ``nv_inference_count``, ``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``;
- with ``--metrics-config=summary_latencies=true``, the summaries ``nv_inference_request_summary_us`` and
  ``nv_inference_queue_summary_us``, whose quantiles cover a sliding window of ``summary_max_age`` milliseconds
  (their ``_count``/``_sum`` stay cumulative). Summaries are off by default, so endpointkit starts every server
  with :data:`SUMMARY_ARGUMENTS` (server docs/user_guide/metrics.md, "Summaries").

So for a Triton target, whatever window the caller asks for:

- ``requests`` and ``failures`` count since each server started (the counters cannot be windowed by one read);
- ``p50_ms`` and ``p99_ms`` cover the last :data:`SUMMARY_WINDOW_SECONDS` (fixed when the server starts);
  ``None`` on a server started without summaries;
- ``queue_ms`` is the mean queue time per successful request since the server started.

Several replicas of a variant (AKS pods): counters are summed; quantiles of separate summaries cannot be
merged, so the variant reports the highest replica's p50 and p99 (an upper bound of the merged figure).

The exposition text is parsed by prometheus-client's parser, imported on first use through ``_lazy``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from endpointkit._lazy import require
from endpointkit._observations import VariantMetrics

__all__ = [
    "SUMMARY_ARGUMENTS",
    "SUMMARY_WINDOW_SECONDS",
    "TRITON_WINDOW_NOTE",
    "TritonSample",
    "parse_triton_metrics",
    "variant_metrics",
]

#: The sliding window of Triton's latency summaries, in seconds: the CLI's default ``--window`` (5m).
SUMMARY_WINDOW_SECONDS = 300
#: tritonserver arguments that turn on the latency summaries with the quantiles endpointkit reports.
SUMMARY_ARGUMENTS: tuple[str, ...] = (
    "--metrics-config=summary_latencies=true",
    "--metrics-config=summary_quantiles=0.5:0.05,0.99:0.001",
    f"--metrics-config=summary_max_age={SUMMARY_WINDOW_SECONDS * 1000}",
)

TRITON_WINDOW_NOTE = (
    "requests and failures count since each server started (Triton's counters are cumulative); p50/p99 cover "
    f"Triton's last {SUMMARY_WINDOW_SECONDS} s (its summary window), queue_ms is the mean since start"
)

_SUCCESS = "nv_inference_request_success"
_FAILURE = "nv_inference_request_failure"
_QUEUE_US = "nv_inference_queue_duration_us"
_REQUEST_SUMMARY = "nv_inference_request_summary_us"


@dataclass(frozen=True, slots=True)
class TritonSample:
    """What one server's metrics say about one model (or every model, when none is named)."""

    successes: int
    failures: int
    queue_us: float
    p50_us: float | None
    p99_us: float | None


def parse_triton_metrics(text: str, *, model: str | None, extra: str) -> TritonSample:
    """Read one scrape of a Triton metrics port for ``model`` (every model's series summed when None).

    Args:
        text: the Prometheus exposition text of ``GET /metrics``.
        model: the model whose series count (the endpoint's default model).
        extra: the pip extra that installs prometheus-client, for the MissingDependencyError message.

    Raises:
        MissingDependencyError: prometheus-client is not installed.
        ValueError: the text is not in the exposition format.
    """
    parser = require("prometheus_client.parser", extra=extra)
    totals = {_SUCCESS: 0.0, _FAILURE: 0.0, _QUEUE_US: 0.0}
    quantiles: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if model is not None and sample.labels.get("model") != model:
                continue
            # The parser names a counter's samples NAME_total (OpenMetrics) even where Triton wrote NAME.
            counter = family.name if family.type == "counter" else None
            if counter in totals:
                totals[counter] += float(sample.value)
            elif sample.name == _REQUEST_SUMMARY and "quantile" in sample.labels:
                value = float(sample.value)
                if math.isnan(value):  # a summary with no observation in its window reports NaN
                    continue
                key = sample.labels["quantile"]
                # several versions of the model: the slowest one's quantile
                quantiles[key] = max(quantiles.get(key, 0.0), value)
    return TritonSample(
        successes=int(totals[_SUCCESS]),
        failures=int(totals[_FAILURE]),
        queue_us=totals[_QUEUE_US],
        p50_us=quantiles.get("0.5"),
        p99_us=quantiles.get("0.99"),
    )


def variant_metrics(variant: str, samples: Sequence[TritonSample]) -> VariantMetrics:
    """One variant's figures from the samples of its servers (see the module docstring for how they add up)."""
    successes = sum(sample.successes for sample in samples)
    failures = sum(sample.failures for sample in samples)
    queue_us = sum(sample.queue_us for sample in samples)
    return VariantMetrics(
        variant=variant,
        requests=successes + failures,
        failures=failures,
        p50_ms=_highest_ms(sample.p50_us for sample in samples),
        p99_ms=_highest_ms(sample.p99_us for sample in samples),
        queue_ms=queue_us / successes / 1000.0 if successes else None,
    )


def _highest_ms(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return max(known) / 1000.0 if known else None
