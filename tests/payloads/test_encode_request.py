"""encode_request: datatypes, the JSON/binary choice, framing, validation (reference edge cases 1-12)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import orjson
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    INFERENCE_HEADER_CONTENT_LENGTH,
    SAGEMAKER_BINARY_CONTENT_TYPE,
    RequestedOutput,
    Tensor,
    decode_request,
    encode_request,
)
from endpointkit.payloads._binary import check_bytes_lengths
from tests.payloads.conftest import ALL_DATATYPES, JSON_DATATYPES, NUMPY_DTYPES, assert_identical, sample


def header_of(encoded: Any) -> dict[str, Any]:
    body = encoded.to_bytes()
    length = encoded.json_header_length or len(body)
    document: dict[str, Any] = orjson.loads(body[:length])
    return document


def roundtrip(encoded: Any) -> Any:
    return decode_request(encoded.body, encoded.headers)


class TestDatatypes:
    def test_every_datatype_round_trips_in_binary(self, datatype: str) -> None:
        array = sample(datatype)
        encoded = encode_request([Tensor("x", array, datatype)], binary=True)
        entry = header_of(encoded)["inputs"][0]
        assert entry["datatype"] == datatype
        assert entry["shape"] == [2, 3]
        assert_identical(roundtrip(encoded).inputs["x"], array, datatype)

    @pytest.mark.parametrize("datatype", JSON_DATATYPES)
    def test_json_datatypes_round_trip_in_json(self, datatype: str) -> None:
        array = sample(datatype)
        encoded = encode_request([Tensor("x", array, datatype)], binary=False)
        assert encoded.content_type == "application/json"
        assert isinstance(encoded.body, bytes)
        assert "data" in header_of(encoded)["inputs"][0]
        assert_identical(roundtrip(encoded).inputs["x"], array, datatype)

    @pytest.mark.parametrize(
        ("dtype", "datatype"),
        [(NUMPY_DTYPES[name], name) for name in NUMPY_DTYPES if name not in ("BF16", "BYTES")]
        + [(np.dtype("S3"), "BYTES"), (np.dtype("U3"), "BYTES"), (np.dtype(object), "BYTES")],
    )
    def test_numpy_dtype_picks_the_datatype(self, dtype: np.dtype[Any], datatype: str) -> None:
        array = np.zeros(2, dtype=dtype) if dtype.kind not in "OSU" else np.array(["ab", "c"], dtype=dtype)
        assert header_of(encode_request({"x": array}))["inputs"][0]["datatype"] == datatype

    def test_python_lists_and_scalars(self) -> None:
        decoded = roundtrip(encode_request({"i": [1, 2], "f": 0.5, "b": [True], "s": "text", "y": b"raw"}))
        assert decoded.datatypes == {"i": "INT64", "f": "FP64", "b": "BOOL", "s": "BYTES", "y": "BYTES"}
        assert decoded.inputs["s"].shape == ()
        assert decoded.inputs["y"][()] == b"raw"

    def test_unsupported_dtype_names_the_tensor(self) -> None:
        with pytest.raises(PayloadError, match=r"inputs\[c\].*complex") as info:
            encode_request({"c": np.zeros(2, np.complex64)})
        assert info.value.field == "inputs[c]"

    def test_unknown_datatype_name(self) -> None:
        with pytest.raises(PayloadError, match="unknown Triton datatype 'fp32'") as info:
            encode_request([Tensor("x", [1.0], "fp32")])
        assert info.value.field == "inputs[x].datatype"


class TestShapes:
    @pytest.mark.parametrize("shape", [(0,), (2, 0, 3)])
    def test_zero_size_binary_has_size_zero_and_no_bytes(self, shape: tuple[int, ...]) -> None:
        after = np.arange(4, dtype=np.int32)
        encoded = encode_request({"empty": np.zeros(shape, np.float32), "after": after}, binary=True)
        entries = header_of(encoded)["inputs"]
        assert entries[0]["parameters"] == {"binary_data_size": 0}
        assert encoded.json_header_length is not None
        assert encoded.nbytes == encoded.json_header_length + after.nbytes
        decoded = roundtrip(encoded)
        assert decoded.inputs["empty"].shape == shape
        assert_identical(decoded.inputs["after"], after)

    def test_zero_size_json_has_empty_data(self) -> None:
        encoded = encode_request({"empty": np.zeros((2, 0), np.int64), "after": [7]}, binary=False)
        assert header_of(encoded)["inputs"][0]["data"] == []
        assert roundtrip(encoded).inputs["empty"].shape == (2, 0)

    def test_zero_size_bytes(self) -> None:
        encoded = encode_request({"s": np.zeros(0, dtype=object)}, binary=True)
        assert roundtrip(encoded).inputs["s"].shape == (0,)

    @pytest.mark.parametrize(
        ("datatype", "binary"),
        [(name, True) for name in ALL_DATATYPES] + [(name, False) for name in JSON_DATATYPES],
    )
    def test_scalar_shape_for_every_datatype(self, datatype: str, binary: bool) -> None:
        value = sample(datatype, (1,)).reshape(())
        encoded = encode_request([Tensor("x", value, datatype)], binary=binary)
        entry = header_of(encoded)["inputs"][0]
        assert entry["shape"] == []
        if not binary:
            assert isinstance(entry["data"], list) and len(entry["data"]) == 1
        assert_identical(roundtrip(encoded).inputs["x"], value, datatype)


class TestBytes:
    def test_empty_and_nul_elements_keep_every_byte(self) -> None:
        values = np.array([b"", b"a\x00", b"\x00\x00", b"end\x00"], dtype=object)
        encoded = encode_request({"s": values}, binary=True)
        chunk = bytes(encoded.body[1])
        assert chunk[:4] == b"\x00\x00\x00\x00"
        assert chunk[4:10] == b"\x02\x00\x00\x00a\x00"
        assert_identical(roundtrip(encoded).inputs["s"], values)

    def test_all_empty_tensor(self) -> None:
        encoded = encode_request({"s": np.array([b"", b""], dtype=object)}, binary=True)
        assert bytes(encoded.body[1]) == b"\x00" * 8
        assert list(roundtrip(encoded).inputs["s"]) == [b"", b""]

    def test_mixed_str_and_bytes_objects(self) -> None:
        values = np.array(["é", b"\xff", np.str_("np"), np.bytes_(b"nb")], dtype=object)
        decoded = roundtrip(encode_request({"s": values}))
        assert list(decoded.inputs["s"]) == ["é".encode(), b"\xff", b"np", b"nb"]

    def test_numpy_bytes_dtype_loses_trailing_nuls_object_keeps_them(self) -> None:
        # numpy's S dtype cannot hold trailing NULs (server issue #2545); object arrays can.
        fixed = roundtrip(encode_request({"s": np.array([b"a\x00"], dtype="S2")}, binary=True))
        kept = roundtrip(encode_request({"s": np.array([b"a\x00"], dtype=object)}, binary=True))
        assert fixed.inputs["s"][0] == b"a"
        assert kept.inputs["s"][0] == b"a\x00"

    def test_list_of_bytes_keeps_trailing_nuls(self) -> None:
        assert roundtrip(encode_request({"s": [b"a\x00", b"b"]})).inputs["s"][0] == b"a\x00"

    def test_non_utf8_forces_binary(self) -> None:
        encoded = encode_request({"s": [b"\xff\xfe"]})
        assert encoded.is_binary
        assert header_of(encoded)["parameters"] == {"binary_data_output": True}

    def test_non_utf8_refused_in_json(self) -> None:
        with pytest.raises(PayloadError, match=r"element 1 is not UTF-8.*binary") as info:
            encode_request({"s": [b"ok", b"\xff"]}, binary=False)
        assert info.value.field == "inputs[s]"

    def test_utf8_bytes_travel_as_json_strings(self) -> None:
        encoded = encode_request({"s": ["é", b"\xc3\xa9"]}, binary=False)
        assert header_of(encoded)["inputs"][0]["data"] == ["é", "é"]

    def test_element_that_is_not_text_is_refused(self) -> None:
        with pytest.raises(PayloadError, match="element 1 is a int"):
            encode_request([Tensor("s", np.array([b"a", 3], dtype=object), "BYTES")])

    def test_length_prefix_limit_is_checked_without_allocating(self) -> None:
        lengths = np.array([3, 0xFFFF_FFFF], dtype=np.int64)
        assert check_bytes_lengths(lengths, "s") == 3 + 0xFFFF_FFFF + 8
        with pytest.raises(PayloadError, match="element 1 is 4,294,967,296 bytes"):
            check_bytes_lengths(np.array([3, 0x1_0000_0000], dtype=np.int64), "s")

    def test_numbers_given_as_bytes_datatype_are_refused(self) -> None:
        with pytest.raises(PayloadError, match="BYTES"):
            encode_request([Tensor("s", np.arange(3), "BYTES")])


class TestBool:
    def test_binary_bytes_are_zero_and_one(self) -> None:
        encoded = encode_request({"b": np.array([True, False, True])}, binary=True)
        assert bytes(encoded.body[1]) == b"\x01\x00\x01"

    def test_json_uses_true_false(self) -> None:
        encoded = encode_request({"b": np.array([True, False])}, binary=False)
        assert b'"data":[true,false]' in encoded.to_bytes()

    def test_integers_are_not_booleans(self) -> None:
        with pytest.raises(PayloadError, match="BOOL needs booleans"):
            encode_request([Tensor("b", [0, 1], "BOOL")])


class TestHalfPrecision:
    @pytest.mark.parametrize("datatype", ["FP16", "BF16"])
    def test_always_binary_when_auto(self, datatype: str) -> None:
        encoded = encode_request([Tensor("h", np.ones(2, np.float32), datatype)])
        assert encoded.is_binary

    @pytest.mark.parametrize("datatype", ["FP16", "BF16"])
    def test_json_refused_with_advice(self, datatype: str) -> None:
        with pytest.raises(PayloadError, match=f"{datatype} cannot travel in JSON.*binary=True"):
            encode_request([Tensor("h", np.ones(2, np.float32), datatype)], binary=False)

    def test_bf16_rounds_to_nearest_even(self) -> None:
        # 1 + 2**-8 lies halfway between two bfloat16 values: ties go to the even one (1.0); 1 + 3 * 2**-8
        # goes up to 1 + 2**-6. Truncation (older tritonclient) would give 1.0 and 1 + 2**-7.
        values = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 3 * 2**-8)], np.float32)
        encoded = encode_request([Tensor("x", values, "BF16")], binary=True)
        bits = np.frombuffer(bytes(encoded.body[1]), "<u2")
        assert list(bits) == [0x3F80, 0x3F82, 0x3F81, 0xBF82]
        assert list(roundtrip(encoded).inputs["x"]) == [1.0, 1 + 2**-6, 1 + 2**-7, -(1 + 2**-6)]

    def test_bf16_matches_ml_dtypes(self) -> None:
        rng = np.random.default_rng(5)
        values = rng.integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
        values = values[~np.isnan(values)]
        encoded = encode_request([Tensor("x", values, "BF16")], binary=True)
        ours = np.frombuffer(bytes(encoded.body[1]), "<u2")
        assert np.array_equal(ours, values.astype(ml_dtypes.bfloat16).view(np.uint16))

    def test_bf16_keeps_nan_inf_and_signed_zero(self) -> None:
        values = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40], np.float32)
        decoded = roundtrip(encode_request([Tensor("x", values, "BF16")])).inputs["x"]
        assert np.isnan(decoded[0])
        assert list(decoded[1:3]) == [np.inf, -np.inf]
        assert np.signbit(decoded[3]) and not np.signbit(decoded[4])
        assert decoded[5] != 0  # a float32 subnormal stays a (bfloat16) subnormal

    def test_ml_dtypes_bfloat16_arrays_are_sent_as_they_are(self) -> None:
        values = np.array([1.5, -3.0], dtype=ml_dtypes.bfloat16)
        encoded = encode_request({"x": values})
        assert header_of(encoded)["inputs"][0]["datatype"] == "BF16"
        assert list(roundtrip(encoded).inputs["x"]) == [1.5, -3.0]

    def test_fp16_special_values_are_bit_exact(self) -> None:
        values = np.array([np.nan, np.inf, -np.inf, -0.0, 6e-8, 65504], np.float16)
        assert_identical(roundtrip(encode_request({"h": values})).inputs["h"], values)


class TestMemoryLayout:
    @pytest.mark.parametrize(
        "make",
        [
            lambda a: a.astype(a.dtype.newbyteorder(">")),
            lambda a: np.asfortranarray(a),
            lambda a: a[::-1, ::-1],
            lambda a: a[:, ::2],
            lambda a: a.T,
        ],
        ids=["big-endian", "fortran", "negative-stride", "strided", "transposed"],
    )
    @pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float64, np.uint16])
    def test_sent_as_c_order_little_endian(self, make: Any, dtype: Any) -> None:
        base = np.arange(24, dtype=dtype).reshape(4, 6)
        array = make(base)
        encoded = encode_request({"x": array}, binary=True)
        expected = np.ascontiguousarray(array).astype(np.dtype(dtype).newbyteorder("<"))
        assert bytes(encoded.body[1]) == expected.tobytes()
        assert_identical(roundtrip(encoded).inputs["x"], array)

    def test_big_endian_in_json(self) -> None:
        array = np.array([1, 2**40], dtype=">i8")
        assert header_of(encode_request({"x": array}, binary=False))["inputs"][0]["data"] == [1, 2**40]

    def test_contiguous_little_endian_arrays_are_not_copied(self) -> None:
        array = np.arange(1000, dtype=np.float32)
        encoded = encode_request({"x": array})
        view = encoded.body[1]
        assert isinstance(view, memoryview)
        assert np.shares_memory(np.frombuffer(view, np.float32), array)


class TestIntegers:
    def test_int64_and_uint64_extremes_stay_exact_in_json(self) -> None:
        encoded = encode_request(
            {"i": np.array([-(2**63), 2**63 - 1]), "u": np.array([0, 2**64 - 1], np.uint64)}, binary=False
        )
        body = encoded.to_bytes()
        assert b"[-9223372036854775808,9223372036854775807]" in body
        assert b"[0,18446744073709551615]" in body
        decoded = roundtrip(encoded)
        assert decoded.inputs["u"][1] == 2**64 - 1
        assert decoded.inputs["i"][0] == -(2**63)

    def test_python_ints_at_the_uint64_limit(self) -> None:
        decoded = roundtrip(encode_request([Tensor("u", [0, 2**64 - 1], "UINT64")], binary=False))
        assert decoded.inputs["u"].dtype == np.uint64
        assert int(decoded.inputs["u"][1]) == 2**64 - 1

    @pytest.mark.parametrize(
        ("datatype", "values", "bad"),
        [
            ("UINT8", [1, 256], "256"),
            ("UINT8", [-1], "-1"),
            ("INT8", [128], "128"),
            ("UINT64", [2**64], "2**64"),
        ],
    )
    def test_out_of_range_python_ints_are_refused(self, datatype: str, values: list[int], bad: str) -> None:
        with pytest.raises(PayloadError, match=f"outside the {datatype} range") as info:
            encode_request([Tensor("x", values, datatype)])
        assert info.value.field == "inputs[x]"

    def test_out_of_range_array_values_are_refused(self) -> None:
        with pytest.raises(PayloadError, match="value 300 is outside the UINT8 range"):
            encode_request([Tensor("x", np.array([1, 300]), "UINT8")])

    def test_in_range_array_is_narrowed(self) -> None:
        decoded = roundtrip(encode_request([Tensor("x", np.array([1, 255]), "UINT8")]))
        assert decoded.inputs["x"].dtype == np.uint8

    def test_floats_are_not_silently_truncated(self) -> None:
        with pytest.raises(PayloadError, match="INT32 needs integers"):
            encode_request([Tensor("x", [1.5], "INT32")])


class TestBinaryChoice:
    def test_small_json_friendly_request_is_json(self) -> None:
        encoded = encode_request({"x": np.arange(256, dtype=np.float32)})
        assert encoded.content_type == "application/json"
        assert encoded.json_header_length is None
        assert "parameters" not in header_of(encoded)

    def test_more_than_one_kib_goes_binary(self) -> None:
        encoded = encode_request({"x": np.arange(256, dtype=np.float32), "y": np.zeros(1, np.uint8)})
        assert encoded.is_binary
        assert encoded.headers == {
            "Content-Type": "application/octet-stream",
            INFERENCE_HEADER_CONTENT_LENGTH: str(encoded.json_header_length),
        }

    def test_binary_request_asks_for_binary_outputs(self) -> None:
        assert header_of(encode_request({"x": [1]}, binary=True))["parameters"] == {
            "binary_data_output": True
        }

    def test_json_request_asks_for_json_outputs(self) -> None:
        document = header_of(encode_request({"x": [1]}, ["out"], binary=False))
        assert document["outputs"] == [{"name": "out", "parameters": {"binary_data": False}}]

    def test_listed_outputs_follow_the_request_or_their_own_choice(self) -> None:
        outputs: list[str | RequestedOutput] = [
            "a",
            RequestedOutput("b", binary=False),
            RequestedOutput("c", class_count=3),
        ]
        document = header_of(encode_request({"x": [1]}, outputs, binary=True))
        assert "parameters" not in document  # binary_data_output does not apply to listed outputs
        assert document["outputs"] == [
            {"name": "a", "parameters": {"binary_data": True}},
            {"name": "b", "parameters": {"binary_data": False}},
            {"name": "c", "parameters": {"binary_data": True, "classification": 3}},
        ]

    def test_auto_choice_follows_a_body_that_is_binary_anyway(self) -> None:
        tensors = [Tensor("a", [1], binary=True), Tensor("b", [2])]
        document = header_of(encode_request(tensors))
        assert "data" in document["inputs"][1]
        assert document["parameters"] == {"binary_data_output": True}

    def test_explicit_json_request_keeps_json_outputs_despite_a_binary_tensor(self) -> None:
        document = header_of(encode_request([Tensor("a", [1], binary=True)], binary=False))
        assert "parameters" not in document

    def test_json_inputs_with_binary_outputs(self) -> None:
        document = header_of(encode_request({"x": [1]}, [RequestedOutput("y", binary=True)], binary=False))
        assert "data" in document["inputs"][0]
        assert document["outputs"][0]["parameters"] == {"binary_data": True}

    def test_mixed_json_and_binary_inputs_in_one_body(self) -> None:
        tensors = [
            Tensor("json", np.arange(3, dtype=np.int32), binary=False),
            Tensor("big", np.arange(8, dtype=np.float64), binary=True),
            Tensor("empty", np.zeros(0, np.float32), binary=True),
            Tensor("text", ["a", "b"], binary=False),
            Tensor("tail", np.array([5, 6], np.int16), binary=True),
        ]
        encoded = encode_request(tensors)
        entries = header_of(encoded)["inputs"]
        assert ["data" in entry for entry in entries] == [True, False, False, True, False]
        assert encoded.json_header_length is not None
        assert encoded.nbytes == encoded.json_header_length + 64 + 4
        decoded = roundtrip(encoded)
        for tensor in tensors:
            assert_identical(decoded.inputs[tensor.name], np.asarray(tensor.data))


class TestFraming:
    def test_sagemaker_binary_content_type_is_exact(self) -> None:
        encoded = encode_request({"x": np.zeros(300, np.float64)}, protocol="sagemaker")
        assert encoded.content_type == f"{SAGEMAKER_BINARY_CONTENT_TYPE}{encoded.json_header_length}"
        assert encoded.content_type.startswith(
            "application/vnd.sagemaker-triton.binary+json;json-header-size="
        )
        assert encoded.headers == {"Content-Type": encoded.content_type}

    def test_sagemaker_json_is_application_json(self) -> None:
        assert encode_request({"x": [1]}, protocol="sagemaker").content_type == "application/json"

    def test_unknown_protocol(self) -> None:
        with pytest.raises(PayloadError, match="protocol"):
            encode_request({"x": [1]}, protocol="kserve")

    def test_header_length_counts_bytes_not_characters(self) -> None:
        encoded = encode_request(
            [Tensor("名前", np.zeros(2, np.float16))], request_id="ïd-✓", parameters={"note": "日本"}
        )
        header = bytes(encoded.body[0])
        assert encoded.json_header_length == len(header) > len(header.decode())
        decoded = roundtrip(encoded)
        assert decoded.id == "ïd-✓"
        assert decoded.parameters["note"] == "日本"
        assert "名前" in decoded.inputs

    def test_body_is_header_then_array_views(self) -> None:
        first, second = np.arange(300, dtype=np.float32), np.arange(10, dtype=np.int8)
        encoded = encode_request({"a": first, "b": second})
        assert isinstance(encoded.body, tuple) and len(encoded.body) == 3
        assert encoded.to_bytes() == bytes(encoded.body[0]) + first.tobytes() + second.tobytes()
        assert encoded.nbytes == len(encoded.to_bytes())

    def test_request_id_and_custom_parameters(self) -> None:
        document = header_of(
            encode_request({"x": [1]}, request_id="r1", parameters={"k": 1, "f": 0.5, "b": True})
        )
        assert document["id"] == "r1"
        assert document["parameters"] == {"k": 1, "f": 0.5, "b": True}

    def test_empty_request_id_is_omitted(self) -> None:
        assert "id" not in header_of(encode_request({"x": [1]}, request_id=""))


class TestValidation:
    @pytest.mark.parametrize(
        "key",
        [
            "triton_anything",
            "binary_data_output",
            "headers",
            "sequence_id",
            "sequence_start",
            "sequence_end",
            "priority",
            "timeout",
        ],
    )
    def test_reserved_parameters_are_refused_naming_the_key(self, key: str) -> None:
        with pytest.raises(PayloadError, match=f"parameter '{key}' is reserved") as info:
            encode_request({"x": [1]}, parameters={key: 1})
        assert key in str(info.value.field)

    @pytest.mark.parametrize("value", [None, [1], {"a": 1}, float("nan")])
    def test_parameter_values_must_be_scalars(self, value: Any) -> None:
        with pytest.raises(PayloadError, match="parameter 'k' must be"):
            encode_request({"x": [1]}, parameters={"k": value})

    def test_duplicate_input_names(self) -> None:
        with pytest.raises(PayloadError, match="'x' appears twice"):
            encode_request([Tensor("x", [1]), Tensor("x", [2])])

    def test_duplicate_output_names(self) -> None:
        with pytest.raises(PayloadError, match="requested twice"):
            encode_request({"x": [1]}, ["y", RequestedOutput("y")])

    def test_empty_input_name(self) -> None:
        with pytest.raises(PayloadError, match="non-empty"):
            encode_request({"": [1]})

    def test_negative_class_count(self) -> None:
        with pytest.raises(PayloadError, match="class_count"):
            encode_request({"x": [1]}, [RequestedOutput("y", class_count=-1)])

    def test_ragged_data(self) -> None:
        with pytest.raises(PayloadError, match="cannot make an array of ragged"):
            encode_request({"x": [[1, 2], [3]]})

    def test_inputs_of_the_wrong_type(self) -> None:
        with pytest.raises(PayloadError, match="mapping of name to array"):
            encode_request("x")  # type: ignore[arg-type]
        with pytest.raises(PayloadError, match="Tensor objects"):
            encode_request([("x", [1])])  # type: ignore[list-item]

    def test_request_id_must_be_a_string(self) -> None:
        with pytest.raises(PayloadError, match="request_id"):
            encode_request({"x": [1]}, request_id=5)  # type: ignore[arg-type]

    def test_binary_must_be_a_bool(self) -> None:
        with pytest.raises(PayloadError, match="binary must be"):
            encode_request({"x": [1]}, binary="yes")  # type: ignore[arg-type]


class TestNonFinite:
    def test_nan_and_infinity_go_as_json_tokens(self) -> None:
        # orjson would write null, which Triton refuses; Triton parses NaN/Infinity (kParseNanAndInfFlag).
        values = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
        encoded = encode_request({"x": values}, binary=False)
        assert b"[NaN,Infinity,-Infinity,1.5]" in encoded.to_bytes()
        decoded = roundtrip(encoded).inputs["x"]
        assert np.isnan(decoded[0]) and list(decoded[1:]) == [np.inf, -np.inf, 1.5]

    def test_float32_json_is_exact(self) -> None:
        values = np.array([0.1, 1 / 3, 3.4028235e38, 1e-45, -0.0], np.float32)
        assert_identical(roundtrip(encode_request({"x": values}, binary=False)).inputs["x"], values)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("every", [400, 3, 1], ids=["few", "many", "all"])
    def test_non_finite_values_keep_orjsons_text_for_the_finite_ones(
        self, dtype: type[np.floating[Any]], every: int
    ) -> None:
        # "many" and "all" pass 65,536 non-finite values, where the encoder stops joining pieces.
        values = np.random.default_rng(7).standard_normal(200_000).astype(dtype)
        cycle = np.array([np.nan, np.inf, -np.inf, -np.nan, np.inf])
        values[::every] = np.resize(cycle, len(values[::every]))
        values[1::400] = -0.0
        text = encode_request({"x": values}, binary=False).to_bytes()
        data_start = text.index(b'"data":[') + len(b'"data":[')
        written = text[data_start : text.index(b"]", data_start)].split(b",")
        finite = np.isfinite(values)
        finite_text = orjson.dumps(np.where(finite, values, 0), option=orjson.OPT_SERIALIZE_NUMPY)
        expected = finite_text[1:-1].split(b",")
        tokens = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}
        for index in np.flatnonzero(~finite).tolist():
            expected[index] = tokens[str(values[index]).lower()]
        assert written == expected
        decoded = roundtrip(encode_request({"x": values}, binary=False)).inputs["x"]
        assert_identical(decoded[finite], values[finite])
        assert np.array_equal(decoded[~finite], values[~finite], equal_nan=True)

    @pytest.mark.parametrize(
        ("special", "token"), [(np.nan, b"NaN"), (np.inf, b"Infinity"), (-np.inf, b"-Infinity")]
    )
    def test_one_kind_of_non_finite_value_everywhere(self, special: float, token: bytes) -> None:
        values = np.full((3, 2), special, np.float32)
        values[1, 1] = 2.5
        text = encode_request({"x": values}, binary=False).to_bytes()
        assert b"[" + b",".join([token] * 3 + [b"2.5", token, token]) + b"]" in text
        assert b"null" not in text

    def test_non_finite_scalar(self) -> None:
        encoded = encode_request({"x": np.float64(-np.inf)}, binary=False)
        assert b'"shape":[],' in encoded.to_bytes() and b'"data":[-Infinity]' in encoded.to_bytes()
        assert roundtrip(encoded).inputs["x"].tolist() == -np.inf
