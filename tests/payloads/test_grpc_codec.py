"""The gRPC codec against tritonclient.grpc as the reference: the requests it builds, the responses it reads."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import ml_dtypes
import numpy as np
import numpy.typing as npt
import pytest

from endpointkit.errors import MissingDependencyError, PayloadError
from endpointkit.payloads import RequestedOutput, Tensor
from endpointkit.payloads._grpc import (
    FINAL_RESPONSE_PARAMETER,
    GrpcInferRequest,
    _service,
    decode_grpc_response,
    decode_grpc_stream_message,
    encode_grpc_request,
)
from tests.payloads.conftest import ALL_DATATYPES, assert_identical, missing_triton_dependency, sample

try:
    from tritonclient.grpc import InferInput, InferRequestedOutput, InferResult, service_pb2
    from tritonclient.grpc._utils import _get_inference_request
    from tritonclient.utils import serialize_byte_tensor
except ImportError as exc:
    missing_triton_dependency("tritonclient[grpc]", "pip install -e '.[dev]'", exc)

MODEL = "identity"


def tritonclient_input(name: str, array: npt.NDArray[Any], datatype: str) -> Any:
    """An InferInput as a tritonclient user writes it (BF16 as ml_dtypes.bfloat16)."""
    data = array.astype(ml_dtypes.bfloat16) if datatype == "BF16" else array
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def tritonclient_request(inputs: list[Any], outputs: list[Any] | None = None, **options: Any) -> Any:
    """The ModelInferRequest tritonclient.grpc's ``infer`` sends (its own request builder)."""
    arguments: dict[str, Any] = {
        "model_name": MODEL,
        "inputs": inputs,
        "model_version": "",
        "request_id": "",
        "outputs": outputs,
        "sequence_id": 0,
        "sequence_start": False,
        "sequence_end": False,
        "priority": 0,
        "timeout": None,
        "parameters": None,
    }
    arguments.update(options)
    return _get_inference_request(**arguments)


def raw_bytes(array: npt.NDArray[Any], datatype: str) -> bytes:
    """A tensor's raw contents as Triton writes them."""
    if datatype == "BYTES":
        serialized = serialize_byte_tensor(array)
        return bytes(serialized.item()) if serialized.size else b""
    if datatype == "BF16":
        return bytes(array.astype(ml_dtypes.bfloat16).tobytes())
    return bytes(array.tobytes())


def triton_response(outputs: dict[str, tuple[npt.NDArray[Any], str]], **fields: Any) -> Any:
    """A ModelInferResponse as Triton builds one: every output's bytes in raw_output_contents, in order."""
    response = service_pb2.ModelInferResponse(model_name=MODEL, model_version="1", **fields)
    for name, (array, datatype) in outputs.items():
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(raw_bytes(array, datatype))
    return response


def tritonclient_decoded(message: Any, name: str, datatype: str) -> npt.NDArray[Any]:
    decoded = InferResult(message).as_numpy(name)
    assert decoded is not None
    return decoded.astype(np.float32) if datatype == "BF16" else decoded


class TestRequestsMatchTritonclient:
    @pytest.mark.parametrize("datatype", ALL_DATATYPES)
    def test_every_datatype(self, datatype: str) -> None:
        array = sample(datatype, (2, 3))
        ours = encode_grpc_request([Tensor("INPUT0", array, datatype)], model_name=MODEL)
        theirs = tritonclient_request([tritonclient_input("INPUT0", array, datatype)])
        assert ours.to_message() == theirs

    @pytest.mark.parametrize(
        "shape", [(), (0,), (0, 3), (4, 0, 2)], ids=["scalar", "empty", "empty-2d", "empty-3d"]
    )
    @pytest.mark.parametrize("datatype", ["FP32", "BYTES", "BOOL"])
    def test_scalars_and_empty_tensors(self, datatype: str, shape: tuple[int, ...]) -> None:
        array = sample(datatype, shape)
        ours = encode_grpc_request([Tensor("INPUT0", array, datatype)], model_name=MODEL)
        theirs = tritonclient_request([tritonclient_input("INPUT0", array, datatype)])
        assert ours.to_message() == theirs
        assert list(ours.to_message().inputs[0].shape) == list(shape)

    def test_many_inputs_outputs_classification_id_and_parameters(self) -> None:
        arrays = {"a": sample("FP16", (3,)), "b": sample("BYTES", (2,)), "c": sample("INT64", (1, 2))}
        datatypes = {"a": "FP16", "b": "BYTES", "c": "INT64"}
        parameters = {"text": "hello", "count": 3, "ratio": 0.25, "flag": True}
        ours = encode_grpc_request(
            arrays,
            ["OUT0", RequestedOutput("OUT1", class_count=3)],
            model_name=MODEL,
            model_version="2",
            request_id="req-7",
            parameters=parameters,
        )
        theirs = tritonclient_request(
            [tritonclient_input(name, array, datatypes[name]) for name, array in arrays.items()],
            [InferRequestedOutput("OUT0"), InferRequestedOutput("OUT1", class_count=3)],
            model_version="2",
            request_id="req-7",
            parameters=parameters,
        )
        assert ours.to_message() == theirs

    @pytest.mark.parametrize("shape", [(2, 3), (), (0, 2)], ids=["matrix", "scalar", "empty"])
    @pytest.mark.parametrize("datatype", [name for name in ALL_DATATYPES if name not in ("BF16", "BYTES")])
    def test_a_dict_of_plain_arrays_encodes_like_tensors(self, datatype: str, shape: tuple[int, ...]) -> None:
        array = sample(datatype, shape)
        plain = encode_grpc_request({"INPUT0": array}, model_name=MODEL)
        prepared = encode_grpc_request([Tensor("INPUT0", array)], model_name=MODEL)
        assert plain.serialize() == prepared.serialize()

    def test_no_copy_of_a_contiguous_little_endian_array(self) -> None:
        array = np.arange(1024, dtype=np.float32)
        request = encode_grpc_request({"INPUT0": array}, model_name=MODEL)
        (chunk,) = request.raw_input_contents
        assert np.shares_memory(np.frombuffer(chunk, np.uint8), array)
        assert request.nbytes == array.nbytes

    def test_big_endian_and_strided_arrays_are_converted(self) -> None:
        array = np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2]
        ours = encode_grpc_request({"INPUT0": array}, model_name=MODEL)
        theirs = tritonclient_request([tritonclient_input("INPUT0", array.astype("<i4"), "INT32")])
        assert ours.to_message() == theirs

    def test_bf16_from_float32_rounds_to_nearest_even(self) -> None:
        values = np.array(
            [1.00390625, 1.01171875, -3.3e38], dtype=np.float32
        )  # halfway cases and a large one
        ours = encode_grpc_request([Tensor("INPUT0", values, "BF16")], model_name=MODEL)
        expected = values.astype(ml_dtypes.bfloat16).tobytes()
        assert ours.to_message().raw_input_contents[0] == expected

    def test_a_stream_request_asks_for_the_flag_only_final_response(self) -> None:
        request = encode_grpc_request({"INPUT0": np.ones(1, np.float32)}, model_name=MODEL, stream=True)
        parameters = request.to_message().parameters
        assert parameters["triton_enable_empty_final_response"].bool_param is True

    def test_serialize_gives_the_same_message_as_protobuf(self) -> None:
        array = sample("UINT16", (300,))  # a raw length that needs a two-byte varint
        ours = encode_grpc_request({"INPUT0": array}, model_name=MODEL).serialize()
        theirs = tritonclient_request([tritonclient_input("INPUT0", array, "UINT16")])
        assert service_pb2.ModelInferRequest.FromString(ours) == theirs
        assert len(ours) == len(theirs.SerializeToString())

    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"model_name": ""}, "model_name"),
            ({"model_name": MODEL, "model_version": 2}, "model_version"),
            ({"model_name": MODEL, "request_id": 7}, "id"),
            ({"model_name": MODEL, "parameters": {"sequence_id": 1}}, "parameters['sequence_id']"),
            ({"model_name": MODEL, "parameters": {"triton_x": 1}}, "parameters['triton_x']"),
        ],
    )
    def test_invalid_arguments_name_the_field(self, arguments: dict[str, Any], field: str) -> None:
        with pytest.raises(PayloadError) as caught:
            encode_grpc_request({"INPUT0": np.ones(1, np.float32)}, **arguments)
        assert caught.value.field == field

    def test_bad_tensors_are_refused_like_the_http_codec(self) -> None:
        with pytest.raises(PayloadError, match=r"inputs\[INPUT0\].*outside the UINT8 range"):
            encode_grpc_request([Tensor("INPUT0", [256], "UINT8")], model_name=MODEL)


class TestResponsesMatchTritonclient:
    @pytest.mark.parametrize("datatype", ALL_DATATYPES)
    def test_every_datatype(self, datatype: str) -> None:
        array = sample(datatype, (2, 3))
        message = triton_response({"OUTPUT0": (array, datatype)})
        decoded = decode_grpc_response(message.SerializeToString())
        assert decoded.datatypes == {"OUTPUT0": datatype}
        assert_identical(decoded["OUTPUT0"], array, datatype)
        assert_identical(decoded["OUTPUT0"], tritonclient_decoded(message, "OUTPUT0", datatype), datatype)

    @pytest.mark.parametrize("datatype", ["FP32", "BYTES", "BOOL", "BF16"])
    @pytest.mark.parametrize("shape", [(), (0,), (3, 0)], ids=["scalar", "empty", "empty-2d"])
    def test_scalars_and_empty_outputs(self, datatype: str, shape: tuple[int, ...]) -> None:
        array = sample(datatype, shape)
        message = triton_response({"OUTPUT0": (array, datatype)})
        decoded = decode_grpc_response(message.SerializeToString())
        assert_identical(decoded["OUTPUT0"], array, datatype)
        assert_identical(decoded["OUTPUT0"], tritonclient_decoded(message, "OUTPUT0", datatype), datatype)

    @pytest.mark.parametrize("count", [4096, 65536], ids=["parsed-whole", "walked-field-by-field"])
    def test_outputs_are_views_of_the_received_bytes(self, count: int) -> None:
        array = np.arange(count, dtype=np.float32)
        data = triton_response({"OUTPUT0": (array, "FP32")}).SerializeToString()
        output = decode_grpc_response(data)["OUTPUT0"]
        assert np.shares_memory(output, np.frombuffer(data, np.uint8))
        assert not output.flags.writeable

    def test_outputs_are_matched_by_name_with_metadata_and_parameters(self) -> None:
        outputs = {"B": (sample("INT8", (4,)), "INT8"), "A": (sample("BYTES", (2, 2)), "BYTES")}
        message = triton_response(outputs, id="req-1")
        message.parameters["text"].string_param = "x"
        message.parameters["count"].int64_param = -4
        message.parameters["big"].uint64_param = 2**63
        message.parameters["ratio"].double_param = 0.5
        message.parameters["flag"].bool_param = True
        decoded = decode_grpc_response(message.SerializeToString())
        assert list(decoded) == ["B", "A"]
        for name, (array, datatype) in outputs.items():
            assert_identical(decoded[name], array, datatype)
        assert (decoded.model_name, decoded.model_version, decoded.id) == (MODEL, "1", "req-1")
        assert decoded.parameters == {"text": "x", "count": -4, "big": 2**63, "ratio": 0.5, "flag": True}

    def test_a_response_without_id_has_none(self) -> None:
        decoded = decode_grpc_response(triton_response({}).SerializeToString())
        assert decoded.id is None
        assert len(decoded) == 0

    @pytest.mark.parametrize("count", [3, 40_000], ids=["small", "large"])
    def test_fields_in_any_order_decode_the_same(self, count: int) -> None:
        array = sample("INT32", (count,))
        message = triton_response({"OUTPUT0": (array, "INT32")})
        header = service_pb2.ModelInferResponse()
        header.CopyFrom(message)
        header.ClearField("raw_output_contents")
        raw = service_pb2.ModelInferResponse(raw_output_contents=message.raw_output_contents)
        decoded = decode_grpc_response(raw.SerializeToString() + header.SerializeToString())
        assert_identical(decoded["OUTPUT0"], array, "INT32")
        assert decoded.model_name == MODEL

    def test_a_memoryview_decodes_too(self) -> None:
        array = sample("BYTES", (3,))
        data = bytearray(triton_response({"OUTPUT0": (array, "BYTES")}).SerializeToString())
        assert_identical(decode_grpc_response(memoryview(data))["OUTPUT0"], array)


class TestResponseFaults:
    def test_an_output_without_raw_contents(self) -> None:
        message = service_pb2.ModelInferResponse(model_name=MODEL)
        message.outputs.add(name="OUTPUT0", datatype="FP32", shape=[2])
        with pytest.raises(PayloadError, match="1 outputs but 0 raw_output_contents"):
            decode_grpc_response(message.SerializeToString())

    def test_raw_bytes_that_disagree_with_the_shape_name_the_output(self) -> None:
        message = triton_response({"OUTPUT0": (np.arange(3, dtype=np.float32), "FP32")})
        message.outputs[0].shape[:] = [4]
        with pytest.raises(PayloadError, match=r"'OUTPUT0'.*needs 16 bytes.*has 12") as caught:
            decode_grpc_response(message.SerializeToString())
        assert caught.value.field == "outputs[0]"

    def test_unknown_datatype(self) -> None:
        message = triton_response({"OUTPUT0": (np.arange(3, dtype=np.float32), "FP32")})
        message.outputs[0].datatype = "FLOAT"
        with pytest.raises(PayloadError, match="unknown Triton datatype 'FLOAT'"):
            decode_grpc_response(message.SerializeToString())

    def test_negative_dimension(self) -> None:
        message = triton_response({"OUTPUT0": (np.arange(0, dtype=np.float32), "FP32")})
        message.outputs[0].shape[:] = [-1]
        with pytest.raises(PayloadError, match="negative dimensions"):
            decode_grpc_response(message.SerializeToString())

    def test_bad_bytes_framing(self) -> None:
        message = triton_response({"OUTPUT0": (sample("BYTES", (2,)), "BYTES")})
        message.raw_output_contents[0] = b"\xff\x00\x00\x00abcdefgh"
        with pytest.raises(PayloadError, match="BYTES element 0"):
            decode_grpc_response(message.SerializeToString())

    def test_bool_bytes_other_than_zero_and_one(self) -> None:
        message = triton_response({"OUTPUT0": (np.array([True, False]), "BOOL")})
        message.raw_output_contents[0] = b"\x01\x07"
        with pytest.raises(PayloadError, match="BOOL bytes must be 0 or 1"):
            decode_grpc_response(message.SerializeToString())

    def test_duplicate_output_names(self) -> None:
        array = np.arange(2, dtype=np.float32)
        message = triton_response({"OUTPUT0": (array, "FP32")})
        message.outputs.add(name="OUTPUT0", datatype="FP32", shape=[2])
        message.raw_output_contents.append(array.tobytes())
        with pytest.raises(PayloadError, match="appears twice"):
            decode_grpc_response(message.SerializeToString())

    @pytest.mark.parametrize("cut", [1, 5, 20])
    def test_truncated_message(self, cut: int) -> None:
        data = triton_response({"OUTPUT0": (np.arange(8, dtype=np.float32), "FP32")}).SerializeToString()
        with pytest.raises(PayloadError) as caught:
            decode_grpc_response(data[:-cut])
        assert caught.value.offset is not None

    def test_garbage(self) -> None:
        with pytest.raises(PayloadError):
            decode_grpc_response(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
        with pytest.raises(PayloadError):
            decode_grpc_response(b"\x0b")  # field 1, wire type 3 (a group): not in this proto

    def test_garbage_after_a_large_response(self) -> None:
        data = triton_response({"OUTPUT0": (np.zeros(40_000, np.float32), "FP32")}).SerializeToString()
        with pytest.raises(PayloadError, match="wire type 3") as caught:
            decode_grpc_response(data + b"\x0b")
        assert caught.value.offset == len(data)

    @pytest.mark.parametrize("cut", [1, 1000])
    def test_a_truncated_large_response(self, cut: int) -> None:
        data = triton_response({"OUTPUT0": (np.zeros(40_000, np.float32), "FP32")}).SerializeToString()
        with pytest.raises(PayloadError, match="runs past the end"):
            decode_grpc_response(data[:-cut])


class TestStreamMessages:
    def stream_message(self, response: Any, error: str = "") -> bytes:
        return bytes(
            service_pb2.ModelStreamInferResponse(
                infer_response=response, error_message=error
            ).SerializeToString()
        )

    def test_a_response_with_its_final_flag(self) -> None:
        for final in (False, True):
            response = triton_response({"INDEX": (np.array([3], np.int32), "INT32")})
            response.parameters[FINAL_RESPONSE_PARAMETER].bool_param = final
            message = decode_grpc_stream_message(self.stream_message(response))
            assert message.final is final
            assert message.error is None
            assert not message.is_flag_only
            assert_identical(message.response["INDEX"], [3], "INT32")

    def test_the_flag_only_final_response(self) -> None:
        response = service_pb2.ModelInferResponse(model_name=MODEL, id="r")
        response.parameters[FINAL_RESPONSE_PARAMETER].bool_param = True
        message = decode_grpc_stream_message(self.stream_message(response))
        assert message.is_flag_only
        assert message.response.id == "r"

    def test_a_model_error_carries_the_flag_and_a_refusal_does_not(self) -> None:
        failed = service_pb2.ModelInferResponse(model_name=MODEL)
        failed.parameters[FINAL_RESPONSE_PARAMETER].bool_param = True
        model_error = decode_grpc_stream_message(self.stream_message(failed, "counter failed"))
        assert (model_error.error, model_error.final, model_error.refused) == ("counter failed", True, False)
        refusal = decode_grpc_stream_message(
            self.stream_message(service_pb2.ModelInferResponse(), "unexpected input")
        )
        assert (refusal.error, refusal.refused, refusal.is_flag_only) == ("unexpected input", True, False)


def test_import_needs_no_tritonclient() -> None:
    code = (
        "import sys; import endpointkit.payloads._grpc; "
        "sys.exit(any(name.startswith('tritonclient') for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_without_tritonclient_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    _service.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"endpointkit\[local\]"):
            encode_grpc_request({"INPUT0": np.ones(1, np.float32)}, model_name=MODEL)
    finally:
        _service.cache_clear()


def test_request_value_is_immutable() -> None:
    request = encode_grpc_request({"INPUT0": np.ones(1, np.float32)}, model_name=MODEL)
    assert isinstance(request, GrpcInferRequest)
    with pytest.raises(AttributeError):
        request.model_name = "other"  # type: ignore[misc]
