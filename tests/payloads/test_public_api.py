"""The public surface of endpointkit.payloads."""

from __future__ import annotations

import endpointkit.payloads as payloads
from endpointkit.payloads import DATATYPES, InferRequest, RequestedOutput, decode_request, encode_request


def test_all_is_sorted_and_complete() -> None:
    assert payloads.__all__ == sorted(payloads.__all__)
    for name in payloads.__all__:
        assert hasattr(payloads, name), name
    public = {name for name in vars(payloads) if not name.startswith("_")}
    modules = {"classification", "content_types", "datatypes", "sizes", "types", "annotations"}
    assert public - modules == set(payloads.__all__)


def test_required_names() -> None:
    for name in (
        "encode_request",
        "decode_response",
        "decode_request",
        "encode_response",
        "Tensor",
        "RequestedOutput",
        "InferResponse",
        "check_size",
        "SAGEMAKER_REALTIME_LIMIT",
        "SAGEMAKER_SERVERLESS_LIMIT",
        "SAGEMAKER_BINARY_CONTENT_TYPE",
        "INFERENCE_HEADER_CONTENT_LENGTH",
        "error_message",
    ):
        assert name in payloads.__all__
    assert (
        payloads.SAGEMAKER_BINARY_CONTENT_TYPE
        == "application/vnd.sagemaker-triton.binary+json;json-header-size="
    )
    assert payloads.INFERENCE_HEADER_CONTENT_LENGTH == "Inference-Header-Content-Length"


def test_datatype_table() -> None:
    assert list(DATATYPES) == [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BF16", "BYTES",
    ]  # fmt: skip
    sizes = {name: datatype.itemsize for name, datatype in DATATYPES.items()}
    assert sizes == {
        "BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
        "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BF16": 2, "BYTES": 0,
    }  # fmt: skip
    assert [name for name, datatype in DATATYPES.items() if not datatype.json] == ["FP16", "BF16"]


def test_decoded_request_tells_which_outputs_are_binary() -> None:
    listed = decode_request(
        *_parts(encode_request({"x": [1]}, ["a", RequestedOutput("b", binary=False)], binary=True))
    )
    assert isinstance(listed, InferRequest)
    assert listed.outputs == [RequestedOutput("a", True, 0), RequestedOutput("b", False, 0)]
    assert listed.output_is_binary("a") and not listed.output_is_binary("b")
    assert not listed.output_is_binary("unlisted")  # binary_data_output is not set
    everything = decode_request(*_parts(encode_request({"x": [1]}, binary=True)))
    assert everything.output_is_binary("any")
    assert everything.parameters == {"binary_data_output": True}


def test_decoded_request_indexing() -> None:
    request = decode_request(encode_request({"x": [1, 2]}).to_bytes())
    assert request["x"].tolist() == [1, 2]


def _parts(encoded: payloads.EncodedRequest) -> tuple[bytes, dict[str, str]]:
    return encoded.to_bytes(), dict(encoded.headers)
