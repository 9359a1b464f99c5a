"""Every framing fault raises PayloadError naming the field or the byte offset (reference edge cases 22-26)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    INFERENCE_HEADER_CONTENT_LENGTH,
    decode_request,
    decode_response,
    encode_response,
)

HEADER = INFERENCE_HEADER_CONTENT_LENGTH
Decoder = Callable[..., Any]


def response_with(values: np.ndarray[Any, Any]) -> tuple[bytes, int]:
    encoded = encode_response({"v": values}, model_name="m", binary=True)
    assert encoded.json_header_length is not None
    return encoded.to_bytes(), encoded.json_header_length


@pytest.fixture
def body_and_length() -> tuple[bytes, int]:
    return response_with(np.arange(6, dtype=np.int32))


class TestHeaderLength:
    @pytest.mark.parametrize("value", ["abc", "12abc", "1.5", "", " ", "0x10", "١٢"])
    def test_non_numeric(self, body_and_length: tuple[bytes, int], value: str) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="is not a number") as info:
            decode_response(body, {HEADER: value})
        assert info.value.field == HEADER

    def test_negative(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="is negative") as info:
            decode_response(body, {HEADER: "-4"})
        assert info.value.field == HEADER

    def test_beyond_the_body(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        with pytest.raises(
            PayloadError, match=f"is {len(body) + 1} but the body is only {len(body)}"
        ) as info:
            decode_response(body, {HEADER: str(len(body) + 1)})
        assert info.value.offset == len(body)
        assert info.value.field == HEADER

    def test_too_small_cuts_the_json(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        with pytest.raises(PayloadError, match="bad JSON") as info:
            decode_response(body, {HEADER: str(length - 5)})
        assert info.value.offset is not None

    def test_too_large_takes_binary_bytes_as_json(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        with pytest.raises(PayloadError) as info:
            decode_response(body, {HEADER: str(length + 4)})
        assert info.value.offset is not None and info.value.offset >= length

    def test_missing_while_binary_data_is_present(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        with pytest.raises(
            PayloadError, match="JSON ends at byte .* binary data needs the JSON length"
        ) as info:
            decode_response(body)
        assert info.value.offset == length
        assert info.value.field == HEADER

    def test_missing_while_sizes_are_declared_without_bytes(self) -> None:
        header = orjson.dumps(
            {
                "outputs": [
                    {"name": "v", "datatype": "INT8", "shape": [2], "parameters": {"binary_data_size": 2}}
                ]
            }
        )
        with pytest.raises(PayloadError, match="says 2 bytes of binary data but no") as info:
            decode_response(header)
        assert info.value.field == HEADER

    def test_both_sources_disagree(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        headers = {
            HEADER: str(length),
            "Content-Type": f"application/vnd.sagemaker-triton.binary+json;json-header-size={length + 1}",
        }
        with pytest.raises(PayloadError, match="disagree|says"):
            decode_response(body, headers)

    def test_zero_is_the_raw_binary_form(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="raw binary") as info:
            decode_request(body, {HEADER: "0"})
        assert info.value.offset == 0

    def test_empty_body(self) -> None:
        with pytest.raises(PayloadError, match="raw binary form|body is empty"):
            decode_response(b"")

    @pytest.mark.parametrize("value", ["abc", "-1", "", "1e3"])
    def test_sagemaker_size_parameter(self, body_and_length: tuple[bytes, int], value: str) -> None:
        body, _ = body_and_length
        content_type = f"application/vnd.sagemaker-triton.binary+json;json-header-size={value}"
        with pytest.raises(PayloadError, match="json-header-size") as info:
            decode_response(body, content_type)
        assert info.value.field == "Content-Type json-header-size"

    def test_sagemaker_size_zero_is_the_raw_binary_form(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="raw binary"):
            decode_request(body, "application/vnd.sagemaker-triton.binary+json;json-header-size=0")

    def test_sagemaker_size_beyond_the_body(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        content_type = f"application/vnd.sagemaker-triton.binary+json;json-header-size={len(body) + 10}"
        with pytest.raises(PayloadError, match="beyond|only") as info:
            decode_response(body, content_type)
        assert info.value.offset == len(body)

    def test_sagemaker_type_after_other_text_is_not_recognised(
        self, body_and_length: tuple[bytes, int]
    ) -> None:
        # Triton matches the type only at offset 0; anything else means "the whole body is JSON".
        body, length = body_and_length
        content_type = f"text/plain, application/vnd.sagemaker-triton.binary+json;json-header-size={length}"
        with pytest.raises(PayloadError, match="needs the JSON length"):
            decode_response(body, content_type)

    def test_sagemaker_type_without_size(self, body_and_length: tuple[bytes, int]) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="no json-header-size"):
            decode_response(body, "application/vnd.sagemaker-triton.binary+json")

    @pytest.mark.parametrize("decoder", [decode_request, decode_response])
    @pytest.mark.parametrize("digits", [20, 4301, 5000])
    def test_more_digits_than_any_body_needs(
        self, body_and_length: tuple[bytes, int], decoder: Decoder, digits: int
    ) -> None:
        # int() would raise ValueError past sys.get_int_max_str_digits() (4300 by default).
        body, _ = body_and_length
        with pytest.raises(PayloadError, match=f"has {digits} digits.*send the byte length") as info:
            decoder(body, {HEADER: "9" * digits})
        assert info.value.field == HEADER
        assert len(str(info.value)) < 300

    @pytest.mark.parametrize("decoder", [decode_request, decode_response])
    @pytest.mark.parametrize("digits", [20, 5000])
    def test_sagemaker_size_with_more_digits_than_any_body_needs(
        self, body_and_length: tuple[bytes, int], decoder: Decoder, digits: int
    ) -> None:
        body, _ = body_and_length
        content_type = "application/vnd.sagemaker-triton.binary+json;json-header-size=" + "7" * digits
        with pytest.raises(PayloadError, match=f"has {digits} digits.*send the byte length") as info:
            decoder(body, content_type)
        assert info.value.field == "Content-Type json-header-size"

    def test_leading_zeros_do_not_count_as_digits(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        padded = "0" * 5000 + str(length)
        assert decode_response(body, {HEADER: padded})["v"].tolist() == list(range(6))

    def test_largest_plausible_length_is_checked_against_the_body(
        self, body_and_length: tuple[bytes, int]
    ) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="but the body is only") as info:
            decode_response(body, {HEADER: str(2**63 - 1)})
        assert info.value.field == HEADER

    def test_huge_non_numeric_value_is_cut_short_in_the_message(
        self, body_and_length: tuple[bytes, int]
    ) -> None:
        body, _ = body_and_length
        with pytest.raises(PayloadError, match="is not a number.*5000 characters"):
            decode_response(body, {HEADER: "x" * 5000})


class TestBodyLength:
    def test_truncated_body(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        with pytest.raises(PayloadError, match="truncated") as info:
            decode_response(body[:-3], {HEADER: str(length)})
        assert info.value.offset == len(body) - 3
        assert info.value.field == "outputs[0].parameters.binary_data_size"

    def test_trailing_bytes(self, body_and_length: tuple[bytes, int]) -> None:
        body, length = body_and_length
        with pytest.raises(PayloadError, match="2 unexpected bytes after the last binary tensor") as info:
            decode_response(body + b"xx", {HEADER: str(length)})
        assert info.value.offset == len(body)

    def test_trailing_bytes_after_pure_json(self) -> None:
        with pytest.raises(PayloadError, match="JSON ends at byte 14") as info:
            decode_response(b'{"outputs":[]}garbage')
        assert info.value.offset == 14

    def test_sizes_that_do_not_match_the_shape(self) -> None:
        header = orjson.dumps(
            {
                "outputs": [
                    {"name": "v", "datatype": "INT32", "shape": [3], "parameters": {"binary_data_size": 8}}
                ]
            }
        )
        with pytest.raises(
            PayloadError, match=r"shape \[3\] of INT32 needs 12 bytes but binary_data_size is 8"
        ) as info:
            decode_response(header + b"\x00" * 8, {HEADER: str(len(header))})
        assert info.value.offset == len(header)

    def test_json_element_count_that_does_not_match_the_shape(self) -> None:
        body = b'{"outputs":[{"name":"v","datatype":"INT32","shape":[2,2],"data":[1,2,3]}]}'
        with pytest.raises(PayloadError, match=r"3 elements but shape \[2, 2\] needs 4") as info:
            decode_response(body)
        assert info.value.field == "outputs[0].data"


class TestBytesFraming:
    def frame(self, payload: bytes, shape: list[int]) -> tuple[bytes, dict[str, str]]:
        header = orjson.dumps(
            {
                "outputs": [
                    {
                        "name": "s",
                        "datatype": "BYTES",
                        "shape": shape,
                        "parameters": {"binary_data_size": len(payload)},
                    }
                ]
            }
        )
        return header + payload, {HEADER: str(len(header))}

    def test_element_longer_than_the_data(self) -> None:
        body, headers = self.frame(b"\x09\x00\x00\x00abc", [1])
        with pytest.raises(PayloadError, match="element 0 says 9 bytes but only 3 remain") as info:
            decode_response(body, headers)
        assert info.value.offset == int(headers[HEADER])

    def test_fewer_elements_than_the_shape(self) -> None:
        body, headers = self.frame(b"\x01\x00\x00\x00a\x01\x00\x00\x00b", [3])
        with pytest.raises(PayloadError, match="3 BYTES elements need at least 12 bytes"):
            decode_response(body, headers)

    def test_more_data_than_the_elements_use(self) -> None:
        body, headers = self.frame(b"\x01\x00\x00\x00a\x02\x00\x00\x00bcXYZ", [2])
        with pytest.raises(PayloadError, match="end at byte .* but binary_data_size ends at"):
            decode_response(body, headers)

    def test_no_room_for_a_length_prefix(self) -> None:
        body, headers = self.frame(b"\x03\x00\x00\x00abc\x00\x00\x00", [2])
        with pytest.raises(PayloadError, match="element 1 has no room for its length prefix"):
            decode_response(body, headers)

    def test_bool_bytes_other_than_zero_and_one(self) -> None:
        header = orjson.dumps(
            {
                "outputs": [
                    {"name": "b", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}
                ]
            }
        )
        with pytest.raises(PayloadError, match="BOOL bytes must be 0 or 1"):
            decode_response(header + b"\x01\x02", {HEADER: str(len(header))})


class TestDocumentStructure:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"[]", None),
            (b'{"outputs":{}}', "outputs"),
            (b'{"outputs":[1]}', "outputs[0]"),
            (b'{"outputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}', "outputs[0].name"),
            (b'{"outputs":[{"name":"x","datatype":"FP8","shape":[1],"data":[1]}]}', "outputs[0].datatype"),
            (b'{"outputs":[{"name":"x","datatype":"fp32","shape":[1],"data":[1]}]}', "outputs[0].datatype"),
            (b'{"outputs":[{"name":"x","shape":[1],"data":[1]}]}', "outputs[0].datatype"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}', "outputs[0].shape"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1.0],"data":[1]}]}', "outputs[0].shape"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":[true],"data":[1]}]}', "outputs[0].shape"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":"1","data":[1]}]}', "outputs[0].shape"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1]}]}', "outputs[0]"),
            (b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1],"data":1}]}', "outputs[0].data"),
            (
                b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":[]}]}',
                "outputs[0].parameters",
            ),
            (
                b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],'
                b'"parameters":{"binary_data_size":0}}]}',
                "outputs[0]",
            ),
            (
                b'{"outputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":-4}}]}',
                "outputs[0].parameters.binary_data_size",
            ),
            (
                b'{"outputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]},'
                b'{"name":"x","datatype":"INT8","shape":[1],"data":[1]}]}',
                "outputs[1].name",
            ),
            (b'{"model_name":5,"outputs":[]}', "model_name"),
            (b'{"model_version":[1],"outputs":[]}', "model_version"),
            (b'{"id":7,"outputs":[]}', "id"),
            (b'{"parameters":[],"outputs":[]}', "parameters"),
            (
                b'{"outputs":[{"name":"x","datatype":"FP32","shape":[0,4611686018427387904],"data":[]}]}',
                "outputs[0].shape",
            ),
        ],
    )
    def test_malformed_documents_name_the_field(self, body: bytes, field: str | None) -> None:
        with pytest.raises(PayloadError) as info:
            decode_response(body)
        assert info.value.field == field

    @pytest.mark.parametrize("body", [b"{", b'{"outputs":[}', b"\xff\xfe", b"nul", b'{"a":1}{"b":2}'])
    def test_bad_json_gives_an_offset(self, body: bytes) -> None:
        with pytest.raises(PayloadError) as info:
            decode_response(body)
        assert info.value.offset is not None

    def test_deep_nesting(self) -> None:
        body = (
            b'{"outputs":[{"name":"x","datatype":"INT8","shape":[1],"data":'
            + b"[" * 5000
            + b"]" * 5000
            + b"}]}"
        )
        with pytest.raises(PayloadError):
            decode_response(body)

    def test_nesting_deeper_than_triton_allows(self) -> None:
        body = (
            b'{"outputs":[{"name":"x","datatype":"INT8","shape":[1],"data":'
            + b"[" * 150
            + b"1"
            + b"]" * 150
            + b"}]}"
        )
        with pytest.raises(PayloadError, match="nested deeper than 100"):
            decode_response(body)

    def test_error_body_gives_the_message(self) -> None:
        with pytest.raises(PayloadError, match="error response: Request for unknown model"):
            decode_response(b'{"error":"Request for unknown model: \'m\' is not found"}')

    def test_huge_integer_literal(self) -> None:
        body = (
            b'{"outputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[' + b"9" * 5000 + b']}],"x":NaN}'
        )
        with pytest.raises(PayloadError):
            decode_response(body)


class TestRequests:
    def test_request_without_inputs(self) -> None:
        with pytest.raises(PayloadError, match="no 'inputs'") as info:
            decode_request(b'{"outputs":[]}')
        assert info.value.field == "inputs"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b'{"id":3,"inputs":[]}', "id"),
            (b'{"parameters":1,"inputs":[]}', "parameters"),
            (b'{"inputs":[],"outputs":{}}', "outputs"),
            (b'{"inputs":[],"outputs":[{"nom":"x"}]}', "outputs[0]"),
            (
                b'{"inputs":[],"outputs":[{"name":"x","parameters":{"binary_data":1}}]}',
                "outputs[0].parameters",
            ),
            (
                b'{"inputs":[],"outputs":[{"name":"x","parameters":{"classification":-1}}]}',
                "outputs[0].parameters",
            ),
            (b'{"inputs":[{"name":"x","datatype":"INT8","shape":[-1],"data":[1]}]}', "inputs[0].shape"),
        ],
    )
    def test_malformed_requests_name_the_field(self, body: bytes, field: str) -> None:
        with pytest.raises(PayloadError) as info:
            decode_request(body)
        assert info.value.field == field

    def test_binary_request_without_header_length(self) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {"name": "x", "datatype": "INT8", "shape": [1], "parameters": {"binary_data_size": 1}}
                ]
            }
        )
        with pytest.raises(PayloadError, match="JSON ends at byte") as info:
            decode_request(header + b"\x01")
        assert info.value.offset == len(header)

    @pytest.mark.parametrize("decoder", [decode_request, decode_response])
    def test_body_of_the_wrong_type(self, decoder: Decoder) -> None:
        with pytest.raises(PayloadError, match="bytes-like"):
            decoder(12345)

    @pytest.mark.parametrize("decoder", [decode_request, decode_response])
    def test_headers_of_the_wrong_type(self, decoder: Decoder) -> None:
        with pytest.raises(PayloadError, match="headers must be"):
            decoder(b"{}", 5)
