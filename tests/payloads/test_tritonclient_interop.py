"""Interop both ways with tritonclient.http: its request bodies decode here, our response bodies parse there."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from endpointkit.payloads import (
    INFERENCE_HEADER_CONTENT_LENGTH,
    RequestedOutput,
    Tensor,
    decode_request,
    encode_request,
    encode_response,
    parse_framing,
)
from tests.payloads.conftest import (
    ALL_DATATYPES,
    JSON_DATATYPES,
    assert_identical,
    missing_triton_dependency,
    sample,
)

try:
    from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
    from tritonclient.utils import np_to_triton_dtype
except ImportError as exc:
    missing_triton_dependency("tritonclient", "pip install -e '.[dev]'", exc)

BINARY_CASES = [(name, True) for name in ALL_DATATYPES] + [(name, False) for name in JSON_DATATYPES]


def tritonclient_input(name: str, array: np.ndarray[Any, Any], datatype: str, binary: bool) -> Any:
    """An InferInput as a tritonclient user writes it (BF16 must be ml_dtypes.bfloat16 since r26.06)."""
    data = array.astype(ml_dtypes.bfloat16) if datatype == "BF16" else array
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def tritonclient_request(
    inputs: list[Any], outputs: list[Any] | None = None, **options: Any
) -> tuple[bytes, Any]:
    body, json_size = InferenceServerClient.generate_request_body(inputs, outputs=outputs, **options)
    headers = None if json_size is None else {INFERENCE_HEADER_CONTENT_LENGTH: str(json_size)}
    return body, headers


def parse_with_tritonclient(encoded: Any) -> Any:
    framing = parse_framing(encoded.headers)
    return InferenceServerClient.parse_response_body(
        encoded.to_bytes(), header_length=framing.json_header_length
    )


class TestTritonclientRequestsDecodeHere:
    @pytest.mark.parametrize(("datatype", "binary"), BINARY_CASES)
    def test_every_datatype(self, datatype: str, binary: bool) -> None:
        array = sample(datatype, (2, 3))
        body, headers = tritonclient_request([tritonclient_input("INPUT0", array, datatype, binary)])
        request = decode_request(body, headers)
        assert request.datatypes == {"INPUT0": datatype}
        assert_identical(request.inputs["INPUT0"], array, datatype)
        assert request.parameters == {"binary_data_output": True}
        assert request.output_is_binary("anything")

    def test_many_inputs_mixed_forms_outputs_id_and_parameters(self) -> None:
        arrays = {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.array([b"x", b"\xff\x00"], dtype=object),
            "c": np.zeros((0, 4), np.int16),
            "d": np.array([True, False]),
            "e": np.array([0.5, -1.0], np.float16),
        }
        forms = {"a": False, "b": True, "c": True, "d": False, "e": True}
        inputs = [
            tritonclient_input(name, array, _datatype(array), forms[name]) for name, array in arrays.items()
        ]
        outputs = [
            InferRequestedOutput("o1", binary_data=True),
            InferRequestedOutput("o2", binary_data=False, class_count=2),
        ]
        body, headers = tritonclient_request(
            inputs, outputs, request_id="ïd", parameters={"custom": "v", "n": 3}
        )
        request = decode_request(body, headers)
        for name, array in arrays.items():
            assert_identical(request.inputs[name], array)
        assert request.id == "ïd"
        assert request.parameters == {"custom": "v", "n": 3}
        assert request.outputs == [RequestedOutput("o1", True, 0), RequestedOutput("o2", False, 2)]

    def test_scalar_input(self) -> None:
        body, headers = tritonclient_request(
            [tritonclient_input("s", np.array(2.5, np.float64), "FP64", True)]
        )
        assert decode_request(body, headers).inputs["s"].shape == ()

    def test_sagemaker_content_type_framing(self) -> None:
        array = np.arange(10, dtype=np.uint32)
        body, json_size = InferenceServerClient.generate_request_body(
            [tritonclient_input("x", array, "UINT32", True)]
        )
        content_type = f"application/vnd.sagemaker-triton.binary+json;json-header-size={json_size}"
        assert_identical(decode_request(body, {"Content-Type": content_type}).inputs["x"], array)


class TestOurResponsesParseInTritonclient:
    @pytest.mark.parametrize(("datatype", "binary"), BINARY_CASES)
    @pytest.mark.parametrize("protocol", ["triton", "sagemaker"])
    def test_every_datatype(self, datatype: str, binary: bool, protocol: str) -> None:
        array = sample(datatype, (3, 2))
        encoded = encode_response(
            [Tensor("OUTPUT0", array, datatype)],
            model_name="m",
            binary=binary,
            protocol=protocol,
            request_id="r",
        )
        result = parse_with_tritonclient(encoded)
        assert result.get_response()["model_version"] == "1"
        assert result.get_response()["id"] == "r"
        parsed = result.as_numpy("OUTPUT0")
        if datatype == "BF16":
            parsed = parsed.astype(np.float32)
        if datatype == "BYTES" and not binary:  # tritonclient gives str for JSON BYTES, bytes for binary
            parsed = np.array([item.encode() for item in parsed.reshape(-1)], dtype=object).reshape(
                parsed.shape
            )
        assert_identical(parsed, array)

    def test_zero_size_and_scalar_outputs(self) -> None:
        encoded = encode_response(
            {
                "empty": np.zeros((0, 3), np.float32),
                "scalar": np.int32(7),
                "after": np.arange(3, dtype=np.int8),
            },
            model_name="m",
            binary=True,
        )
        result = parse_with_tritonclient(encoded)
        assert result.as_numpy("empty").shape == (0, 3)
        assert result.as_numpy("scalar").shape == () and result.as_numpy("scalar") == 7
        assert result.as_numpy("after").tolist() == [0, 1, 2]

    def test_mixed_json_and_binary_outputs(self) -> None:
        outputs = [
            Tensor("j", np.arange(4, dtype=np.int64), binary=False),
            Tensor("b", np.array([b"p", b"\x00q"], dtype=object), binary=True),
            Tensor("f", np.ones(3, np.float16), binary=True),
        ]
        result = parse_with_tritonclient(encode_response(outputs, model_name="m"))
        assert result.as_numpy("j").tolist() == [0, 1, 2, 3]
        assert result.as_numpy("b").tolist() == [b"p", b"\x00q"]
        assert result.as_numpy("f").tolist() == [1.0, 1.0, 1.0]


class TestBf16AgreesWithTritonclient:
    def test_same_bits_as_tritonclient_for_the_same_float32_values(self) -> None:
        values = np.array([1 + 2**-8, 1 + 3 * 2**-8, -0.0, np.inf, 3.14159, 1e-39, -65504.0], np.float32)
        ours = encode_request([Tensor("x", values, "BF16")], binary=True)
        body, headers = tritonclient_request([tritonclient_input("x", values, "BF16", True)])
        assert bytes(ours.body[1]) == body[int(headers[INFERENCE_HEADER_CONTENT_LENGTH]) :]
        assert_identical(
            decode_request(body, headers).inputs["x"], decode_request(ours.body, ours.headers).inputs["x"]
        )


def _datatype(array: np.ndarray[Any, Any]) -> str:
    return str(np_to_triton_dtype(array.dtype))
