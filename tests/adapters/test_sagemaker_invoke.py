"""Inference through sagemaker-runtime InvokeEndpoint: content types, target variants, errors, size guards."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import orjson
import pytest
from botocore.response import StreamingBody

import endpointkit as ek
from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.payloads import decode_request, encode_response
from tests.adapters.sagemaker_fixtures import SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

ECHO_ANSWER = {
    "model_name": "echo",
    "model_version": "1",
    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}],
}


@pytest.fixture
def deployed(sagemaker_world: SageMakerWorld) -> tuple[SageMakerWorld, ek.EndpointState]:
    spec = sagemaker_world.spec()
    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec))
    sagemaker_world.set_invoke_results(
        {"Body": orjson.dumps(ECHO_ANSWER).decode(), "ContentType": "application/json"}
    )
    return sagemaker_world, state


def _sent(sagemaker_world: SageMakerWorld) -> dict[str, Any]:
    return sagemaker_world.hooks.requests[("sagemaker-runtime", "InvokeEndpoint")]


def test_json_request_goes_out_as_application_json_and_the_answer_decodes(deployed: Any) -> None:
    sagemaker_world, state = deployed
    inputs = {"INPUT0": np.array([1, 2, 3], dtype=np.float32)}

    response = ek.invoke_endpoint(
        state, inputs, adapter=sagemaker_world.adapter(sagemaker_world.spec()), binary=False
    )

    np.testing.assert_array_equal(response["OUTPUT0"], inputs["INPUT0"])
    request = _sent(sagemaker_world)
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["url_path"] == "/endpoints/echo-endpoint/invocations"
    assert orjson.loads(request["body"])["inputs"][0]["name"] == "INPUT0"


def _binary_echo(request: dict[str, Any]) -> dict[str, Any]:
    # moto's server cannot take a binary body on sagemaker-runtime (it decodes it as UTF-8), so this hook plays
    # the Triton container: decode the request as Triton's SageMaker listener would, answer in binary.
    decoded = decode_request(request["body"], request["headers"]["Content-Type"])
    outputs = {name.replace("INPUT", "OUTPUT"): value for name, value in decoded.inputs.items()}
    encoded = encode_response(outputs, model_name="echo", binary=True, protocol="sagemaker")
    body = encoded.to_bytes()
    return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": encoded.content_type}


def test_binary_request_and_answer_use_the_sagemaker_triton_content_type(deployed: Any) -> None:
    sagemaker_world, state = deployed
    sagemaker_world.hooks.respond("sagemaker-runtime", "InvokeEndpoint", _binary_echo)
    values = np.arange(300, dtype=np.float16)

    response = ek.invoke_endpoint(
        state, {"INPUT0": values}, adapter=sagemaker_world.adapter(sagemaker_world.spec()), binary=True
    )

    content_type = _sent(sagemaker_world)["headers"]["Content-Type"]
    assert re.fullmatch(r"application/vnd\.sagemaker-triton\.binary\+json;json-header-size=\d+", content_type)
    np.testing.assert_array_equal(response["OUTPUT0"], values)


def test_target_variant_is_sent(deployed: Any) -> None:
    sagemaker_world, state = deployed
    adapter = sagemaker_world.adapter(sagemaker_world.spec(), target_variant="canary")

    ek.invoke_endpoint(state, {"INPUT0": np.ones(3, dtype=np.float32)}, adapter=adapter, binary=False)

    assert _sent(sagemaker_world)["headers"]["X-Amzn-SageMaker-Target-Variant"] == "canary"


def test_model_error_carries_tritons_status_and_message(deployed: Any) -> None:
    sagemaker_world, state = deployed
    triton = "{\"error\":\"unexpected shape for input 'INPUT0' for model 'echo'. Expected [-1], got [1,3]\"}"
    log_stream = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/echo-endpoint"
    sagemaker_world.hooks.fail(
        "sagemaker-runtime",
        "InvokeEndpoint",
        "ModelError",
        "Received client error (400) from primary with message ...",
        status=424,
        extra={"OriginalStatusCode": 400, "OriginalMessage": triton, "LogStreamArn": log_stream},
    )

    with pytest.raises(ek.ProviderError) as raised:
        ek.invoke_endpoint(
            state,
            {"INPUT0": np.ones((1, 3), np.float32)},
            adapter=sagemaker_world.adapter(sagemaker_world.spec()),
        )

    error = raised.value
    assert error.code == "400" and not error.retryable
    assert "unexpected shape for input 'INPUT0'" in str(error) and log_stream in str(error)
    assert error.details["original_status_code"] == 400
    assert error.details["original_message"] == triton
    assert error.details["log_stream_arn"] == log_stream


def test_request_over_6_mib_is_refused_before_any_call(deployed: Any) -> None:
    sagemaker_world, state = deployed
    sagemaker_world.hooks.calls.clear()
    too_big = {"INPUT0": np.zeros(6_291_456 // 4 + 1, dtype=np.float32)}

    with pytest.raises(ek.PayloadError, match="6,291,456"):
        ek.invoke_endpoint(
            state, too_big, adapter=sagemaker_world.adapter(sagemaker_world.spec()), binary=True
        )

    assert sagemaker_world.hooks.calls == []


def test_serverless_limit_is_4_mb(sagemaker_world: SageMakerWorld) -> None:
    adapter = SageMakerAdapter(
        region="us-east-1", serverless=True, client_factory=sagemaker_world.hooks.factory
    )
    state = ek.EndpointState(
        "echo-endpoint", "aws", "sagemaker", ek.EndpointStatus.IN_SERVICE, region="us-east-1"
    )

    with pytest.raises(ek.PayloadError, match="4,000,000"):
        ek.invoke_endpoint(
            state, {"INPUT0": np.zeros(1_000_001, dtype=np.float32)}, adapter=adapter, binary=True
        )

    assert sagemaker_world.hooks.calls == []
    adapter.close()


def test_naming_a_model_is_not_applicable(deployed: Any) -> None:
    sagemaker_world, state = deployed

    with pytest.raises(ek.UnsupportedCapabilityError, match="default model"):
        ek.invoke_endpoint(
            state,
            {"INPUT0": np.ones(3, np.float32)},
            adapter=sagemaker_world.adapter(sagemaker_world.spec()),
            model="other",
        )


def test_an_adapter_built_from_the_state_alone_invokes(deployed: Any) -> None:
    _, state = deployed

    adapter = adapter_for_state(state)
    try:
        assert isinstance(adapter, SageMakerAdapter) and adapter.region == "us-east-1"
        response = ek.invoke_endpoint(
            state, {"INPUT0": np.ones(3, np.float32)}, adapter=adapter, binary=False
        )
    finally:
        adapter.close()

    np.testing.assert_array_equal(response["OUTPUT0"], [1.0, 2.0, 3.0])


def test_a_timeout_gets_its_own_runtime_client_with_that_read_timeout(
    sagemaker_world: SageMakerWorld,
) -> None:
    adapter = SageMakerAdapter(region="us-east-1")
    try:
        adapter._api.client("sagemaker")  # the default factory is built on first use
        runtime = adapter._runtime(5.0)
        assert runtime.meta.config.read_timeout == 5.0
        assert adapter._runtime(None).meta.config.read_timeout == 70.0
        assert runtime.meta.config.retries["total_max_attempts"] == 1
    finally:
        adapter.close()
