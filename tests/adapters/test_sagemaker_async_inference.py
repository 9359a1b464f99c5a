"""SageMaker asynchronous inference on moto: the request through S3, InvokeEndpointAsync, the result from S3."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
import requests

import endpointkit as ek
from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.adapters.sagemaker._async_inference import BufferReader, input_prefix
from endpointkit.payloads import decode_request, decode_response, encode_request, encode_response
from tests.adapters.sagemaker_fixtures import ACCOUNT, BUCKET, REGION, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

INPUTS = "endpointkit/echo-endpoint/async-inputs/"
ECHO_ANSWER = {
    "model_name": "echo",
    "model_version": "1",
    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}],
}


def _s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def _read(url: str) -> dict[str, Any]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return _s3().get_object(Bucket=bucket, Key=key)  # type: ignore[no-any-return]


def _queue_async_results(world: SageMakerWorld, *results: dict[str, Any]) -> None:
    """What moto's InvokeEndpointAsync writes next: ``{"data": text}`` or ``{"is_failure": True, "data": text}``."""
    response = requests.post(
        f"{world.url}/moto-api/static/sagemaker/async-endpoint-results",
        json={"account_id": ACCOUNT, "region": REGION, "results": list(results)},
        timeout=5,
    )
    assert response.status_code == 201, response.text


class RuntimeEvents:
    """botocore hooks on the InvokeEndpointAsync of the adapter's runtime client, besides the world's."""

    def __init__(self, world: SageMakerWorld) -> None:
        self.world = world
        self.inputs: list[dict[str, Any]] = []
        self.after: Callable[[dict[str, Any]], None] | None = None

    def factory(self, service: str) -> Any:
        client = self.world.hooks.factory(service)
        if service == "sagemaker-runtime":
            client.meta.events.register("before-call.sagemaker-runtime.InvokeEndpointAsync", self._before)
            client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpointAsync", self._after)
        return client

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        # The request object as SageMaker would find it when the request leaves its queue.
        stored = _read(params["headers"]["X-Amzn-SageMaker-InputLocation"])
        self.inputs.append({"body": stored["Body"].read(), "content_type": stored["ContentType"]})

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.after is not None:
            self.after(parsed)


@pytest.fixture
def events(sagemaker_world: SageMakerWorld) -> RuntimeEvents:
    return RuntimeEvents(sagemaker_world)


def _async_spec(world: SageMakerWorld, **async_settings: Any) -> ek.Spec:
    settings = {"output_path": f"s3://{BUCKET}/async-out", **async_settings}
    return world.spec(
        variants=[{"name": "primary", "instance_type": "ml.m5.large"}], target={"async": settings}
    )


@pytest.fixture
def deployed(
    sagemaker_world: SageMakerWorld, events: RuntimeEvents
) -> tuple[SageMakerAdapter, ek.EndpointState]:
    spec = _async_spec(sagemaker_world, failure_path=f"s3://{BUCKET}/async-failures")
    adapter = sagemaker_world.adapter(spec, client_factory=events.factory)
    state = ek.apply(spec, adapter=adapter)
    return adapter, state


def _inputs_left(world: SageMakerWorld) -> list[str]:
    return [key for key in world.objects() if key.startswith(INPUTS)]


def _request(values: np.ndarray[Any, Any], *, binary: bool) -> ek.payloads.EncodedRequest:
    return encode_request({"INPUT0": values}, binary=binary, protocol="sagemaker")


def _play_the_container(parsed: dict[str, Any], request: bytes, content_type: str) -> None:
    """Write the output object as the Triton container's answer would be: the echo, binary+json."""
    decoded = decode_request(request, content_type)
    outputs = {name.replace("INPUT", "OUTPUT"): value for name, value in decoded.inputs.items()}
    encoded = encode_response(outputs, model_name="echo", binary=True, protocol="sagemaker")
    bucket, _, key = parsed["OutputLocation"].removeprefix("s3://").partition("/")
    _s3().put_object(Bucket=bucket, Key=key, Body=encoded.to_bytes(), ContentType=encoded.content_type)


# ---- the request -------------------------------------------------------------------------------------------
def test_the_request_goes_to_s3_and_invoke_endpoint_async_points_at_it(
    sagemaker_world: SageMakerWorld, events: RuntimeEvents, deployed: Any
) -> None:
    adapter, state = deployed
    _queue_async_results(sagemaker_world, {"data": orjson.dumps(ECHO_ANSWER).decode()})
    request = _request(np.arange(600, dtype=np.float32), binary=True)
    assert isinstance(request.body, tuple)  # a header and array views, uploaded without joining them

    adapter.invoke_asynchronous(state, request.body, request.headers, timeout=120)

    sent = sagemaker_world.hooks.requests[("sagemaker-runtime", "InvokeEndpointAsync")]["headers"]
    location = sent["X-Amzn-SageMaker-InputLocation"]
    assert re.fullmatch(rf"s3://{BUCKET}/{INPUTS}[0-9a-f]{{32}}", location)
    assert sent["X-Amzn-SageMaker-Inference-Id"] == location.rsplit("/", 1)[1]
    assert sent["X-Amzn-SageMaker-Content-Type"] == request.content_type
    assert re.fullmatch(
        r"application/vnd\.sagemaker-triton\.binary\+json;json-header-size=\d+", request.content_type
    )
    assert (
        sent["X-Amzn-SageMaker-RequestTTLSeconds"],
        sent["X-Amzn-SageMaker-InvocationTimeoutSeconds"],
    ) == (
        "120",
        "120",
    )
    (uploaded,) = events.inputs
    assert uploaded == {"body": request.to_bytes(), "content_type": request.content_type}


def test_the_timeout_is_held_within_sagemakers_bounds(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    request = _request(np.ones(3, np.float32), binary=False)
    sent: list[tuple[str, str]] = []
    for timeout in (5.0, 100_000.0):
        adapter.invoke_asynchronous(state, request.body, request.headers, timeout=timeout)
        headers = sagemaker_world.hooks.requests[("sagemaker-runtime", "InvokeEndpointAsync")]["headers"]
        sent.append(
            (
                headers["X-Amzn-SageMaker-RequestTTLSeconds"],
                headers["X-Amzn-SageMaker-InvocationTimeoutSeconds"],
            )
        )

    assert sent == [("60", "5"), ("21600", "3600")]


def test_the_input_object_is_deleted_after_the_result(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    request = _request(np.ones(3, np.float32), binary=False)

    adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert "DeleteObject" in sagemaker_world.hooks.operations("s3")
    assert _inputs_left(sagemaker_world) == []


def test_a_large_body_goes_up_in_parts_from_its_buffers(
    sagemaker_world: SageMakerWorld, events: RuntimeEvents
) -> None:
    boto3_transfer = pytest.importorskip("boto3.s3.transfer")
    five_mib = 5 * 1024 * 1024  # S3's smallest part
    spec = _async_spec(sagemaker_world)
    adapter = sagemaker_world.adapter(
        spec,
        client_factory=events.factory,
        transfer_config=boto3_transfer.TransferConfig(
            multipart_threshold=five_mib, multipart_chunksize=five_mib, max_concurrency=2
        ),
    )
    state = ek.apply(spec, adapter=adapter)
    request = _request(np.arange(3 * 1024 * 1024, dtype=np.float32), binary=True)  # 12 MiB of array view

    adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert sagemaker_world.hooks.operations("s3").count("UploadPart") == 3
    (uploaded,) = events.inputs
    assert uploaded["body"] == request.to_bytes()


def test_a_body_over_1_gb_is_refused_before_any_call(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    sagemaker_world.hooks.calls.clear()
    one_mib = memoryview(bytes(1024 * 1024))
    body = [one_mib] * 954  # 1,000,341,504 bytes, made of one buffer

    with pytest.raises(ek.PayloadError, match=r"1,000,000,000-byte \(1 GB\) SageMaker asynchronous"):
        adapter.invoke_asynchronous(state, body, {"Content-Type": "application/octet-stream"}, timeout=60)

    assert sagemaker_world.hooks.calls == []


# ---- the result ----------------------------------------------------------------------------------------------
def test_a_json_result_is_read_back_and_decodes(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    _queue_async_results(sagemaker_world, {"data": orjson.dumps(ECHO_ANSWER).decode()})
    request = _request(np.ones(3, np.float32), binary=False)

    raw = adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert raw.status == 200
    np.testing.assert_array_equal(decode_response(raw.body, raw.headers)["OUTPUT0"], [1.0, 2.0, 3.0])


def test_a_binary_result_keeps_the_containers_content_type(
    sagemaker_world: SageMakerWorld, events: RuntimeEvents, deployed: Any
) -> None:
    adapter, state = deployed
    values = np.arange(500, dtype=np.float16)
    request = _request(values, binary=True)
    events.after = lambda parsed: _play_the_container(parsed, request.to_bytes(), request.content_type)

    raw = adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert re.fullmatch(
        r"application/vnd\.sagemaker-triton\.binary\+json;json-header-size=\d+", raw.headers["content-type"]
    )
    np.testing.assert_array_equal(decode_response(raw.body, raw.headers)["OUTPUT0"], values)


def test_a_failure_object_raises_with_its_text_and_the_input_is_deleted(
    sagemaker_world: SageMakerWorld, deployed: Any
) -> None:
    adapter, state = deployed
    failure = "Received server error (500) from primary with message: unexpected shape for input 'INPUT0'"
    _queue_async_results(sagemaker_world, {"is_failure": True, "data": failure})
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.ProviderError) as raised:
        adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert raised.value.code == "AsyncInferenceFailed"
    assert failure in str(raised.value) and raised.value.details["message"] == failure
    assert _inputs_left(sagemaker_world) == []


def test_a_refused_invoke_deletes_the_input(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    sagemaker_world.hooks.fail("sagemaker-runtime", "InvokeEndpointAsync", "ValidationError", "Endpoint busy")
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.ProviderError, match="Endpoint busy"):
        adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert _inputs_left(sagemaker_world) == []


def test_no_result_within_the_timeout_says_where_it_will_appear_and_keeps_the_input(
    sagemaker_world: SageMakerWorld, events: RuntimeEvents, deployed: Any
) -> None:
    adapter, state = deployed
    pending = f"s3://{BUCKET}/async-out/still-running.out"

    def still_running(parsed: dict[str, Any]) -> None:
        parsed["OutputLocation"] = pending
        parsed["FailureLocation"] = f"s3://{BUCKET}/async-failures/still-running-error.out"

    events.after = still_running
    request = _request(np.ones(3, np.float32), binary=False)
    sagemaker_world.clock.sleeps.clear()

    with pytest.raises(ek.ProviderError) as raised:
        adapter.invoke_asynchronous(state, request.body, request.headers, timeout=30, poll_interval=0.5)

    assert raised.value.code == "Timeout" and pending in str(raised.value)
    assert raised.value.details["output_location"] == pending
    assert (
        len(_inputs_left(sagemaker_world)) == 1
    )  # SageMaker still reads it when the request leaves its queue
    sleeps = sagemaker_world.clock.sleeps
    assert sleeps[0] == 0.5 and max(sleeps) == 5.0 and sum(sleeps) == pytest.approx(30.0)


def test_progress_reports_each_look_for_the_result(sagemaker_world: SageMakerWorld, deployed: Any) -> None:
    adapter, state = deployed
    events: list[ek.ProgressEvent] = []
    request = _request(np.ones(3, np.float32), binary=False)

    adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60, progress=events.append)

    assert [event.status for event in events] == ["Completed"]
    assert events[0].subject.startswith("asynchronous inference ") and "echo-endpoint" in events[0].subject


# ---- what is refused ---------------------------------------------------------------------------------------
def test_a_real_time_endpoint_is_refused_before_any_call(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)
    state = ek.apply(spec, adapter=adapter)
    sagemaker_world.hooks.calls.clear()
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.UnsupportedCapabilityError, match="not an asynchronous one") as raised:
        adapter.invoke_asynchronous(state, request.body, request.headers, timeout=60)

    assert "async_inference" in raised.value.missing
    assert sagemaker_world.hooks.calls == []


def test_a_state_without_its_mode_is_described_first(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)
    ek.apply(spec, adapter=adapter)
    bare = ek.EndpointState("echo-endpoint", "aws", "sagemaker", ek.EndpointStatus.IN_SERVICE, region=REGION)
    sagemaker_world.hooks.calls.clear()
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.UnsupportedCapabilityError, match="realtime endpoint"):
        adapter.invoke_asynchronous(bare, request.body, request.headers, timeout=60)

    assert sagemaker_world.hooks.mutating() == []


def test_naming_a_model_is_refused(deployed: Any) -> None:
    adapter, state = deployed
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.UnsupportedCapabilityError, match="default model"):
        adapter.invoke_asynchronous(state, request.body, request.headers, model="other", timeout=60)


def test_the_synchronous_invoke_points_to_the_asynchronous_one(deployed: Any) -> None:
    adapter, state = deployed
    request = _request(np.ones(3, np.float32), binary=False)

    with pytest.raises(ek.UnsupportedCapabilityError, match="asynchronous=True"):
        adapter.invoke(state, request.body, request.headers)


# ---- without the spec --------------------------------------------------------------------------------------
def test_the_state_carries_the_async_locations_and_the_limit_follows_the_mode(deployed: Any) -> None:
    adapter, state = deployed

    assert state.extra["async_output_path"] == f"s3://{BUCKET}/async-out"
    assert state.extra["async_failure_path"] == f"s3://{BUCKET}/async-failures"
    assert state.extra["async_input_path"] == f"s3://{BUCKET}/{INPUTS}"
    assert adapter.max_request_bytes == 1_000_000_000
    rebuilt = SageMakerAdapter.from_state(state)
    assert rebuilt.max_request_bytes == 1_000_000_000
    rebuilt.close()


def test_an_adapter_built_from_the_state_alone_invokes_asynchronously(
    sagemaker_world: SageMakerWorld, deployed: Any
) -> None:
    _, state = deployed
    _queue_async_results(sagemaker_world, {"data": orjson.dumps(ECHO_ANSWER).decode()})
    request = _request(np.ones(3, np.float32), binary=False)

    adapter = adapter_for_state(state)
    try:
        assert isinstance(adapter, SageMakerAdapter)
        raw = adapter.invoke_asynchronous(
            state, request.body, request.headers, timeout=60, poll_interval=0.05
        )
    finally:
        adapter.close()

    np.testing.assert_array_equal(decode_response(raw.body, raw.headers)["OUTPUT0"], [1.0, 2.0, 3.0])
    assert _inputs_left(sagemaker_world) == []


def test_where_requests_go_without_a_target() -> None:
    state = ek.EndpointState(
        "echo-endpoint",
        "aws",
        "sagemaker",
        ek.EndpointStatus.IN_SERVICE,
        extra={"mode": "async", "async_output_path": "s3://results-bucket/out"},
    )

    assert input_prefix(state, explicit=None, target=None) == f"s3://results-bucket/{INPUTS}"
    assert input_prefix(state, explicit="s3://mine/requests/", target=None) == "s3://mine/requests/"


# ---- the reader over buffers -------------------------------------------------------------------------------
def test_the_buffer_reader_reads_across_parts_and_seeks() -> None:
    parts: list[bytes | bytearray | memoryview] = [
        b"abc",
        b"",
        memoryview(b"defg"),
        bytearray(b"h"),
        np.arange(2, dtype=np.uint8).data,
    ]
    reader = BufferReader(parts)

    assert reader.size == 10 and reader.read(4) == b"abcd"
    assert reader.read(5) == b"efgh\x00" and reader.tell() == 9
    assert reader.read() == b"\x01" and reader.read(3) == b""
    assert reader.seek(-3, io.SEEK_END) == 7 and reader.read() == b"h\x00\x01"
    assert reader.seek(2) == 2 and reader.read(3) == b"cde"
    with pytest.raises(ValueError, match="negative"):
        reader.seek(-1)


# ---- through the public API -----------------------------------------------------------------------------------
def test_invoke_endpoint_asynchronous_returns_the_decoded_result(
    sagemaker_world: SageMakerWorld, deployed: Any
) -> None:
    adapter, state = deployed
    _queue_async_results(sagemaker_world, {"data": orjson.dumps(ECHO_ANSWER).decode()})

    response = ek.invoke_endpoint(
        state, {"INPUT0": np.ones(3, np.float32)}, asynchronous=True, adapter=adapter
    )

    np.testing.assert_array_equal(response["OUTPUT0"], [1.0, 2.0, 3.0])
    assert _inputs_left(sagemaker_world) == []


def test_ainvoke_endpoint_asynchronous_returns_the_decoded_result(
    sagemaker_world: SageMakerWorld, deployed: Any
) -> None:
    adapter, state = deployed
    _queue_async_results(sagemaker_world, {"data": orjson.dumps(ECHO_ANSWER).decode()})

    response = asyncio.run(
        ek.ainvoke_endpoint(state, {"INPUT0": np.ones(3, np.float32)}, asynchronous=True, adapter=adapter)
    )

    np.testing.assert_array_equal(response["OUTPUT0"], [1.0, 2.0, 3.0])


def test_grpc_on_sagemaker_is_refused_with_the_reason_before_any_call(
    sagemaker_world: SageMakerWorld, deployed: Any
) -> None:
    adapter, state = deployed
    sagemaker_world.hooks.calls.clear()

    with pytest.raises(ek.UnsupportedCapabilityError, match="gRPC") as raised:
        ek.invoke_endpoint(state, {"INPUT0": np.ones(3, np.float32)}, transport="grpc", adapter=adapter)

    assert "grpc" in raised.value.missing
    assert sagemaker_world.hooks.calls == []


def test_a_spec_asking_sagemaker_for_grpc_fails_validation_with_the_reason(
    sagemaker_world: SageMakerWorld,
) -> None:
    spec = sagemaker_world.spec(
        variants=[{"name": "primary", "instance_type": "ml.m5.large"}], target={"transport": "grpc"}
    )

    with pytest.raises(ek.UnsupportedCapabilityError, match="InvokeEndpoint") as raised:
        ek.validate(spec)

    assert "grpc" in raised.value.missing
