"""decode_response: Triton's JSON and binary responses, both front ends (reference edge cases 13-21, 30-32)."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import numpy as np
import orjson
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    Classification,
    InferResponse,
    Tensor,
    decode_response,
    encode_response,
    parse_classification,
)
from tests.payloads.conftest import assert_identical, sample


def binary_body(outputs: list[dict[str, Any]], chunks: list[bytes], **fields: Any) -> tuple[bytes, int]:
    header = orjson.dumps({"model_name": "m", "model_version": "1", **fields, "outputs": outputs})
    return header + b"".join(chunks), len(header)


def entry(
    name: str, datatype: str, shape: list[int], size: int | None = None, **extra: Any
) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape, **extra}
    if size is not None:
        result["parameters"] = {"binary_data_size": size}
    return result


class TestJsonResponses:
    def test_triton_json_response(self) -> None:
        body = (
            b'{"model_name":"m","model_version":"1","outputs":['
            b'{"name":"f","datatype":"FP32","shape":[2,2],"data":[0.10000000149011612,2.0,-3.5,1e-45]},'
            b'{"name":"s","datatype":"BYTES","shape":[2],"data":["caf\xc3\xa9",""]},'
            b'{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]}]}'
        )
        response = decode_response(body, "application/json")
        assert response["f"].dtype == np.float32 and response["f"].shape == (2, 2)
        assert response["f"][0, 0] == np.float32(0.1)
        assert response["f"][1, 1] == np.float32(1e-45)
        assert list(response["s"]) == ["café".encode(), b""]
        assert response["b"].tolist() == [True, False]
        assert response.datatypes == {"f": "FP32", "s": "BYTES", "b": "BOOL"}

    def test_nested_data_is_accepted_like_triton(self) -> None:
        body = b'{"outputs":[{"name":"x","datatype":"INT32","shape":[2,2],"data":[[1,2],[3,4]]}]}'
        assert decode_response(body)["x"].tolist() == [[1, 2], [3, 4]]

    def test_ragged_nesting_counts_leaves_like_triton(self) -> None:
        body = b'{"outputs":[{"name":"x","datatype":"INT32","shape":[2,2],"data":[[1,2,3],[4]]}]}'
        assert decode_response(body)["x"].tolist() == [[1, 2], [3, 4]]

    def test_nan_and_infinity_tokens(self) -> None:
        body = b'{"outputs":[{"name":"x","datatype":"FP64","shape":[4],"data":[NaN,Infinity,-Infinity,1.0]}]}'
        values = decode_response(body)["x"]
        assert np.isnan(values[0]) and values[1:].tolist() == [np.inf, -np.inf, 1.0]

    def test_non_utf8_bytes_inside_a_json_string_survive(self) -> None:
        # Triton does not validate UTF-8 when it writes BYTES outputs into JSON (edge case 18).
        body = b'{"outputs":[{"name":"s","datatype":"BYTES","shape":[2],"data":["ok","\xff\xfe"]}]}'
        assert list(decode_response(body)["s"]) == [b"ok", b"\xff\xfe"]

    def test_integer_extremes(self) -> None:
        body = (
            b'{"outputs":[{"name":"u","datatype":"UINT64","shape":[2],"data":[0,18446744073709551615]},'
            b'{"name":"i","datatype":"INT64","shape":[2],"data":[-9223372036854775808,9223372036854775807]}]}'
        )
        response = decode_response(body)
        assert int(response["u"][1]) == 2**64 - 1
        assert int(response["i"][0]) == -(2**63)

    def test_scalar_output(self) -> None:
        body = b'{"outputs":[{"name":"s","datatype":"BYTES","shape":[],"data":["one"]}]}'
        assert decode_response(body)["s"].shape == ()

    def test_response_metadata(self) -> None:
        body = (
            b'{"model_name":"m","model_version":"3","id":"r-1","parameters":{"b":true,"i":7,"s":"x","d":0.5},'
            b'"unknown":{"ignored":1},"outputs":[]}'
        )
        response = decode_response(body)
        assert (response.model_name, response.model_version, response.id) == ("m", "3", "r-1")
        assert response.parameters == {"b": True, "i": 7, "s": "x", "d": 0.5}
        assert len(response) == 0

    def test_missing_id_and_integer_version(self) -> None:
        response = decode_response(b'{"model_name":"m","model_version":2,"outputs":[]}')
        assert response.id is None and response.model_version == "2"

    def test_missing_output_lists_what_exists(self) -> None:
        response = decode_response(b'{"outputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[1]}]}')
        with pytest.raises(KeyError, match=r"'b'.*\['a'\]"):
            response["b"]
        assert "a" in response and list(response) == ["a"]

    @pytest.mark.parametrize(
        ("datatype", "data", "message"),
        [
            ("BOOL", "[0,1]", "true/false"),
            ("INT32", "[1.0,2]", "integers"),
            ("UINT8", "[1,256]", "outside the UINT8 range"),
            ("UINT64", "[-1,5]", "outside the UINT64 range"),
            ("FP32", '["1",2]', "numbers"),
            ("BYTES", "[1,2]", "strings"),
            ("FP16", "[1,2]", "FP16 cannot travel in JSON"),
            ("INT8", '[1,{"a":1}]', "integers"),
        ],
    )
    def test_wrong_json_elements_name_the_field(self, datatype: str, data: str, message: str) -> None:
        body = f'{{"outputs":[{{"name":"x","datatype":"{datatype}","shape":[2],"data":{data}}}]}}'.encode()
        with pytest.raises(PayloadError, match=message) as info:
            decode_response(body)
        assert info.value.field == "outputs[0].data"


class TestBinaryResponses:
    def test_outputs_are_matched_by_name_not_position(self) -> None:
        second, first = np.arange(3, dtype=np.int32), np.array([1.5, 2.5])
        body, length = binary_body(
            [entry("OUT1", "INT32", [3], 12), entry("OUT0", "FP64", [2], 16)],
            [second.tobytes(), first.tobytes()],
        )
        response = decode_response(body, {"Inference-Header-Content-Length": str(length)})
        assert_identical(response["OUT0"], first)
        assert_identical(response["OUT1"], second)

    def test_zero_size_outputs_interleaved(self) -> None:
        values = np.arange(4, dtype=np.uint16)
        body, length = binary_body(
            [
                entry("empty", "FP32", [0], 0),
                entry("v", "UINT16", [4], 8),
                entry("none", "BYTES", [0, 2], 0),
                entry("json", "INT8", [1], data=[3]),
            ],
            [values.tobytes()],
        )
        response = decode_response(body, {"inference-header-content-length": str(length)})
        assert response["empty"].shape == (0,) and response["empty"].dtype == np.float32
        assert response["none"].shape == (0, 2) and response["none"].dtype == object
        assert_identical(response["v"], values)
        assert response["json"].tolist() == [3]

    def test_all_zero_size_outputs_without_header(self) -> None:
        # Triton sends application/json and no header length when no binary output has bytes.
        body, _ = binary_body([entry("e", "FP32", [0], 0)], [])
        assert decode_response(body, {"Content-Type": "application/json"})["e"].shape == (0,)

    @pytest.mark.parametrize("header_length_padding", [1, 3, 5, 7])
    def test_unaligned_views_read_correctly(self, header_length_padding: int) -> None:
        doubles, longs = np.array([1.25, -2.0, 1e300]), np.array([-(2**63), 2**62, 7])
        body, length = binary_body(
            [entry("d", "FP64", [3], 24), entry("l", "INT64", [3], 24)],
            [doubles.tobytes(), longs.tobytes()],
            id="x" * header_length_padding,
        )
        response = decode_response(body, {"Inference-Header-Content-Length": str(length)})
        assert_identical(response["d"], doubles)
        assert_identical(response["l"], longs)
        assert response["d"].sum() == doubles.sum()

    def test_binary_outputs_are_zero_copy_views(self) -> None:
        values = np.arange(1000, dtype=np.float32)
        body, length = binary_body([entry("v", "FP32", [1000], 4000)], [values.tobytes()])
        mutable = bytearray(body)
        response = decode_response(mutable, {"Inference-Header-Content-Length": str(length)})
        mutable[length : length + 4] = np.float32(42).tobytes()
        assert response["v"][0] == 42
        assert not decode_response(body, {"Inference-Header-Content-Length": str(length)})[
            "v"
        ].flags.writeable

    def test_bf16_comes_back_as_float32(self) -> None:
        bits = np.array([0x3FC0, 0xC010, 0x7FC0], "<u2")
        body, length = binary_body([entry("h", "BF16", [3], 6)], [bits.tobytes()])
        values = decode_response(body, {"Inference-Header-Content-Length": str(length)})["h"]
        assert values.dtype == np.float32
        assert values[:2].tolist() == [1.5, -2.25] and np.isnan(values[2])

    def test_bytes_fast_path_and_general_path(self) -> None:
        same = [b"abcd", b"efgh", b"\x00\x00\x00\x00"]
        varied = [b"", b"a", b"\x00\xff", b"longer element"]
        chunks = [
            b"".join(len(item).to_bytes(4, "little") + item for item in group) for group in (same, varied)
        ]
        body, length = binary_body(
            [entry("same", "BYTES", [3], len(chunks[0])), entry("varied", "BYTES", [2, 2], len(chunks[1]))],
            chunks,
        )
        response = decode_response(body, {"Inference-Header-Content-Length": str(length)})
        assert list(response["same"]) == same
        assert response["varied"].reshape(-1).tolist() == varied

    def test_all_empty_bytes_elements(self) -> None:
        body, length = binary_body([entry("s", "BYTES", [3], 12)], [b"\x00" * 12])
        assert list(decode_response(body, {"Inference-Header-Content-Length": str(length)})["s"]) == [b""] * 3

    def test_sagemaker_content_type_gives_the_length(self) -> None:
        values = np.arange(5, dtype=np.int64)
        body, length = binary_body([entry("v", "INT64", [5], 40)], [values.tobytes()])
        content_type = f"application/vnd.sagemaker-triton.binary+json;json-header-size={length}"
        assert_identical(decode_response(body, content_type)["v"], values)
        assert_identical(decode_response(body, {"content-type": content_type})["v"], values)

    @pytest.mark.parametrize(
        "template",
        [
            "application/vnd.sagemaker-triton.binary+json; json-header-size={n}",
            "APPLICATION/VND.SAGEMAKER-TRITON.BINARY+JSON;JSON-HEADER-SIZE={n}",
            "application/vnd.sagemaker-triton.binary+json;json-header-size={n};charset=utf-8",
        ],
    )
    def test_sagemaker_content_type_variants_are_read_leniently(self, template: str) -> None:
        body, length = binary_body([entry("v", "INT8", [2], 2)], [b"\x01\x02"])
        assert decode_response(body, template.format(n=length))["v"].tolist() == [1, 2]

    def test_header_mapping_of_any_case_and_pairs(self) -> None:
        body, length = binary_body([entry("v", "INT8", [1], 1)], [b"\x07"])
        for headers in (
            {"INFERENCE-HEADER-CONTENT-LENGTH": str(length)},
            [("Inference-Header-Content-Length", str(length)), ("Content-Type", "application/octet-stream")],
        ):
            assert decode_response(body, headers)["v"].tolist() == [7]

    def test_sequence_of_buffers(self) -> None:
        body, length = binary_body([entry("v", "INT8", [1], 1)], [b"\x07"])
        parts: list[bytes | memoryview] = [memoryview(body)[:10], bytes(body[10:])]
        assert decode_response(parts, {"Inference-Header-Content-Length": str(length)})["v"].tolist() == [7]


class TestCompression:
    @pytest.mark.parametrize(
        ("encoding", "compress"),
        [
            ("gzip", gzip.compress),
            ("deflate", zlib.compress),
            ("GZip", gzip.compress),
            ("x-gzip", gzip.compress),
        ],
    )
    def test_header_length_refers_to_the_uncompressed_json(self, encoding: str, compress: Any) -> None:
        values = np.arange(100, dtype=np.float32)
        body, length = binary_body([entry("v", "FP32", [100], 400)], [values.tobytes()])
        headers = {"Content-Encoding": encoding, "Inference-Header-Content-Length": str(length)}
        assert_identical(decode_response(compress(body), headers)["v"], values)

    def test_raw_deflate_is_accepted(self) -> None:
        compressor = zlib.compressobj(wbits=-15)
        body = b'{"outputs":[{"name":"v","datatype":"INT8","shape":[1],"data":[5]}]}'
        raw = compressor.compress(body) + compressor.flush()
        assert decode_response(raw, {"content-encoding": "deflate"})["v"].tolist() == [5]

    def test_identity_encoding(self) -> None:
        body = b'{"outputs":[]}'
        assert len(decode_response(body, {"Content-Encoding": "identity"})) == 0

    def test_unknown_encoding(self) -> None:
        with pytest.raises(PayloadError, match="unsupported Content-Encoding 'br'") as info:
            decode_response(b"{}", {"Content-Encoding": "br"})
        assert info.value.field == "Content-Encoding"

    def test_corrupt_gzip(self) -> None:
        with pytest.raises(PayloadError, match="not a complete gzip stream"):
            decode_response(gzip.compress(b'{"outputs":[]}')[:-5], {"Content-Encoding": "gzip"})


class TestEncodeResponse:
    @pytest.mark.parametrize("protocol", ["triton", "sagemaker"])
    @pytest.mark.parametrize("binary", [True, None])
    def test_every_datatype_round_trips(self, datatype: str, protocol: str, binary: bool | None) -> None:
        array = sample(datatype, (3, 2))
        encoded = encode_response(
            [Tensor("OUT", array, datatype)],
            model_name="m",
            binary=binary,
            protocol=protocol,
            request_id="abc",
        )
        response = decode_response(encoded.to_bytes(), encoded.headers)
        assert isinstance(response, InferResponse)
        assert (response.model_name, response.model_version, response.id) == ("m", "1", "abc")
        assert_identical(response["OUT"], array, datatype)
        assert response.datatypes["OUT"] == datatype

    def test_triton_headers_for_binary(self) -> None:
        encoded = encode_response({"o": np.zeros(2, np.float16)}, model_name="m")
        assert encoded.headers["Content-Type"] == "application/octet-stream"
        assert encoded.headers["Inference-Header-Content-Length"] == str(encoded.json_header_length)

    def test_model_version_is_a_string(self) -> None:
        encoded = encode_response({"o": [1]}, model_name="m", model_version="7", binary=False)
        assert b'"model_version":"7"' in encoded.to_bytes()


class TestClassification:
    def test_parse_values_indexes_and_labels(self) -> None:
        body = (
            b'{"outputs":[{"name":"c","datatype":"BYTES","shape":[2,2],'
            b'"data":["0.9:3:cat","0.05:1:dog: big","1.5:0","-2:7"]}]}'
        )
        parsed = parse_classification(decode_response(body)["c"])
        assert parsed.shape == (2, 2)
        assert parsed[0, 0] == Classification(0.9, 3, "cat")
        assert parsed[0, 1] == Classification(0.05, 1, "dog: big")
        assert parsed[1, 0] == Classification(1.5, 0, None)

    def test_bad_classification_element(self) -> None:
        with pytest.raises(PayloadError, match="not 'value:index"):
            parse_classification(np.array([b"nonsense"], dtype=object))
