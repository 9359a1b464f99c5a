"""Live metrics of a local endpoint, read from a real tritonserver's metrics port (facade and CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import endpointkit as ek
from endpointkit.adapters._http import HttpTransport
from endpointkit.adapters._triton_metrics import parse_triton_metrics
from endpointkit.adapters.local._metrics import read_metrics
from endpointkit.adapters.local._state import EndpointRecord, ServerRecord
from endpointkit.adapters.local._tritonserver import free_port
from endpointkit.cli import main
from endpointkit.errors import EXIT_FAILURE, EXIT_OK, NotFoundError, ProviderError
from endpointkit.spec import spec_from_dict
from tests.adapters.conftest import IDENTITY_MODEL

pytestmark = pytest.mark.triton

INPUTS = {"INPUT0": np.arange(4, dtype=np.float32)}


@pytest.fixture
def endpoint_spec(identity_repository: Path, state_root: Path, tmp_path: Path) -> Iterator[Path]:
    """A spec file of one local endpoint, applied; destroyed at teardown."""
    path = tmp_path / "endpoint.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "metrics-test",
                "model": {"repository": str(identity_repository)},
                "variants": [{"name": "primary"}],
                "timeouts": {"create": "60s", "update": "60s", "delete": "60s"},
                "targets": {"local": {"kind": "local", "state_dir": str(state_root)}},
            }
        )
    )
    ek.apply(path)
    try:
        yield path
    finally:
        ek.destroy(path)


def test_status_metrics_json_counts_the_requests_of_the_default_model(
    endpoint_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(50):
        ek.invoke_endpoint(endpoint_spec, INPUTS)
    capsys.readouterr()

    assert main(["status", str(endpoint_spec), "--metrics", "--window", "5m", "--json"]) == EXIT_OK

    document = json.loads(capsys.readouterr().out)
    metrics = document["metrics"]
    assert metrics["source"] == "prometheus"
    assert metrics["window_seconds"] == 300.0
    assert "since each server started" in metrics["note"]
    [primary] = metrics["variants"]
    assert primary["variant"] == "primary"
    assert primary["requests"] >= 50
    assert primary["failures"] == 0
    assert 0 < primary["p50_ms"] <= primary["p99_ms"]
    assert primary["queue_ms"] is not None and primary["queue_ms"] >= 0


def test_status_metrics_prints_a_table_per_variant(
    endpoint_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ek.invoke_endpoint(endpoint_spec, INPUTS)
    capsys.readouterr()

    assert main(["status", str(endpoint_spec), "--metrics"]) == EXIT_OK

    out = capsys.readouterr().out
    assert "metrics (prometheus, window 300s):" in out
    assert "VARIANT  REQUESTS  FAILURES  P50 MS  P99 MS  QUEUE MS" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("primary "))
    assert int(row.split()[1]) >= 1


def test_top_redraws_the_variants_for_the_given_iterations(
    endpoint_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ek.invoke_endpoint(endpoint_spec, INPUTS)
    capsys.readouterr()

    assert main(["top", str(endpoint_spec), "--iterations", "2", "--interval", "1s"]) == EXIT_OK

    out = capsys.readouterr().out
    assert "metrics-test (local) primary: requests " in out
    assert " ms  p99 " in out


def test_a_metrics_port_that_does_not_answer_exits_1_naming_it(
    endpoint_spec: Path, state_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_path = state_root / "metrics-test" / "endpoint.json"
    record = json.loads(record_path.read_text())
    closed_port = free_port()  # nothing listens there once free_port has closed its probe socket
    record["servers"][0]["metrics_port"] = closed_port
    record_path.write_text(json.dumps(record))
    capsys.readouterr()

    assert main(["status", str(endpoint_spec), "--metrics"]) == EXIT_FAILURE

    error = capsys.readouterr().err
    assert f"metrics port 127.0.0.1:{closed_port}" in error
    assert "variant primary" in error
    assert "Traceback" not in error


def test_the_facade_raises_not_found_for_an_endpoint_never_applied(
    identity_repository: Path, state_root: Path
) -> None:
    spec = spec_from_dict(
        {
            "name": "never-applied",
            "model": {"repository": str(identity_repository)},
            "variants": [{"name": "primary"}],
            "targets": {"local": {"kind": "local", "state_dir": str(state_root)}},
        }
    )
    with pytest.raises(NotFoundError, match="never-applied"):
        ek.metrics(spec)


def _record(port: int) -> EndpointRecord:
    server = ServerRecord(
        variant="primary",
        pid=1,
        start_ticks=None,
        http_port=port,
        grpc_port=port,
        metrics_port=port,
        sagemaker_port=None,
        log_path="log",
        weight=1.0,
        instance_count=1,
    )
    return EndpointRecord(
        name="e",
        target="local",
        config="c",
        model="m",
        model_sha256="",
        default_model=IDENTITY_MODEL,
        protocol="triton",
        api_key=False,
        spec_hash="h",
        created="",
        updated="",
        expires_at=None,
        servers=(server,),
    )


def test_read_metrics_names_the_port_that_refused() -> None:
    port = free_port()
    transport = HttpTransport(provider="local")
    try:
        with pytest.raises(ProviderError, match=f"127.0.0.1:{port} did not answer"):
            read_metrics(_record(port), transport, name="e", target_name="local", window=60.0)
    finally:
        transport.close()


def test_the_parser_keeps_the_model_asked_for_and_sums_failure_reasons() -> None:
    text = "\n".join(
        [
            "# TYPE nv_inference_request_success counter",
            'nv_inference_request_success{model="identity",version="1"} 7',
            'nv_inference_request_success{model="other",version="1"} 100',
            "# TYPE nv_inference_request_failure counter",
            'nv_inference_request_failure{model="identity",reason="BACKEND",version="1"} 2',
            'nv_inference_request_failure{model="identity",reason="REJECTED",version="1"} 1',
            "# TYPE nv_inference_queue_duration_us counter",
            'nv_inference_queue_duration_us{model="identity",version="1"} 700',
            "# TYPE nv_inference_request_summary_us summary",
            'nv_inference_request_summary_us_count{model="identity",version="1"} 7',
            'nv_inference_request_summary_us_sum{model="identity",version="1"} 7000',
            'nv_inference_request_summary_us{model="identity",version="1",quantile="0.5"} 900',
            'nv_inference_request_summary_us{model="identity",version="1",quantile="0.99"} NaN',
            "",
        ]
    )
    sample = parse_triton_metrics(text, model="identity", extra="local")
    assert (sample.successes, sample.failures, sample.queue_us) == (7, 3, 700.0)
    assert sample.p50_us == 900.0
    assert sample.p99_us is None  # no observation in the summary's window
