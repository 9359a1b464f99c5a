"""Values the wire cannot carry faithfully are refused, never altered: floats beyond their type's range, and
JSON booleans in numeric tensors (one rule for requests and responses, Triton's)."""

from __future__ import annotations

import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import Tensor, decode_request, decode_response, encode_request, encode_response

FP32_MAX = float(np.finfo(np.float32).max)


def roundtrip(tensor: Tensor) -> np.ndarray[Any, Any]:
    encoded = encode_request([tensor], binary=True)
    return decode_request(encoded.to_bytes(), encoded.headers)[tensor.name]


class TestFloatRange:
    @pytest.mark.parametrize(
        ("datatype", "data", "shown"),
        [
            ("FP16", np.array([1.0, 70000.0]), "70000.0"),
            ("FP16", np.array([-70000.0], np.float32), "-70000.0"),
            ("FP16", np.array([65520.0]), "65520.0"),  # the first value that rounds to inf
            ("FP16", np.array([3, 65535], np.uint16), "65535"),
            ("FP16", np.array([100_000], np.int32), "100000"),
            ("FP32", np.array([1e39]), "1e+39"),
            ("FP32", [0.5, -1e300], "-1e+300"),
            ("FP32", [10**39], "1e+39"),  # Python ints numpy keeps as objects
            ("BF16", np.array([FP32_MAX], np.float32), "3.40282"),  # rounds past bfloat16's largest
            ("BF16", np.array([1e300]), "1e+300"),
        ],
    )
    def test_finite_values_beyond_the_type_are_refused(self, datatype: str, data: Any, shown: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # refused with a PayloadError, not a numpy RuntimeWarning
            with pytest.raises(PayloadError, match=f"outside the {datatype} range") as raised:
                encode_request([Tensor("x", data, datatype)])
        assert raised.value.field == "inputs[x]"
        assert f"value {shown}" in str(raised.value)

    def test_the_offending_element_is_located(self) -> None:
        data = np.array([[1.0, 2.0], [1e39, 3.0]])
        with pytest.raises(PayloadError, match=r"value 1e\+39 at index \[1, 0\]"):
            encode_request([Tensor("x", data, "FP32")])

    def test_beyond_fp64_is_refused(self) -> None:
        with pytest.raises(PayloadError, match="beyond the FP64 range"):
            encode_request([Tensor("x", [10**400], "FP64")])

    @pytest.mark.parametrize(
        ("datatype", "data", "expected"),
        [
            ("FP16", np.array([65504.0, -65504.0, 65519.0]), [65504.0, -65504.0, 65504.0]),
            ("FP32", np.array([FP32_MAX, -FP32_MAX]), [FP32_MAX, -FP32_MAX]),
            ("BF16", np.array([3.3895313892515355e38]), [3.3895313892515355e38]),
            ("FP16", np.array([65504], np.int64), [65504.0]),
        ],
    )
    def test_values_that_round_to_the_largest_finite_pass(
        self, datatype: str, data: Any, expected: list[float]
    ) -> None:
        assert roundtrip(Tensor("x", data, datatype)).tolist() == expected

    @pytest.mark.parametrize("datatype", ["FP16", "FP32", "BF16"])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_infinities_and_nan_given_as_such_still_encode(self, datatype: str, dtype: Any) -> None:
        values = np.array([np.inf, -np.inf, np.nan, 1.5], dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            decoded = roundtrip(Tensor("x", values, datatype))
        assert np.array_equal(decoded, values.astype(np.float32), equal_nan=True)

    def test_infinities_in_json_still_encode(self) -> None:
        encoded = encode_request([Tensor("x", np.array([np.inf, -np.inf, 2.0]), "FP32")], binary=False)
        assert b"[Infinity,-Infinity,2.0]" in encoded.to_bytes()

    def test_data_already_of_the_wire_type_is_not_copied(self) -> None:
        for array in (np.arange(4, dtype=np.float16), np.arange(4, dtype=ml_dtypes.bfloat16)):
            encoded = encode_request({"x": array}, binary=True)
            assert np.shares_memory(np.frombuffer(encoded.body[1], np.uint16), array)

    def test_response_encoding_is_checked_too(self) -> None:
        with pytest.raises(PayloadError, match="outside the FP16 range") as raised:
            encode_response([Tensor("y", np.array([1e6]), "FP16")], model_name="m")
        assert raised.value.field == "outputs[y]"

    @pytest.mark.parametrize("decode", [decode_request, decode_response])
    def test_json_decoding_refuses_finite_values_beyond_fp32(self, decode: Any) -> None:
        role = "inputs" if decode is decode_request else "outputs"
        body = f'{{"{role}":[{{"name":"x","datatype":"FP32","shape":[3],"data":[1,2,1e39]}}]}}'.encode()
        with pytest.raises(
            PayloadError, match=r"value 1e\+39 at index \[2\] is outside the FP32 range"
        ) as info:
            decode(body)
        assert info.value.field == f"{role}[0].data"

    def test_json_decoding_keeps_non_finite_tokens_and_fp64_extremes(self) -> None:
        body = (
            b'{"outputs":[{"name":"f","datatype":"FP32","shape":[2],"data":[Infinity,NaN]},'
            b'{"name":"d","datatype":"FP64","shape":[1],"data":[1e308]}]}'
        )
        response = decode_response(body)
        assert np.isposinf(response["f"][0]) and np.isnan(response["f"][1])
        assert response["d"].tolist() == [1e308]


class TestJsonBooleansInNumericTensors:
    @pytest.mark.parametrize(
        ("datatype", "data", "element"),
        [
            ("FP32", "[1.5,true]", "element 1 is true"),
            ("FP64", "[false]", "element 0 is false"),
            ("INT32", "[true,false]", "element 0 is true"),
            ("INT64", "[2,3,false]", "element 2 is false"),
            ("UINT8", "[0,1,true]", "element 2 is true"),
            ("UINT64", "[18446744073709551615,true]", "element 1 is true"),  # kept as Python ints
            ("INT16", "[[1,2],[true,4]]", "element 2 is true"),  # nested: the row-major element
        ],
    )
    @pytest.mark.parametrize("role", ["inputs", "outputs"])
    def test_refused_naming_the_tensor_and_element(
        self, datatype: str, data: str, element: str, role: str
    ) -> None:
        count = data.count(",") + 1
        body = f'{{"{role}":[{{"name":"x","datatype":"{datatype}","shape":[{count}],"data":{data}}}]}}'
        decode = decode_request if role == "inputs" else decode_response
        with pytest.raises(
            PayloadError, match=f"{element}, but {datatype} data must be JSON numbers"
        ) as info:
            decode(body.encode())
        assert info.value.field == f"{role}[0].data"

    def test_zeros_and_ones_as_numbers_are_read(self) -> None:
        body = (
            b'{"outputs":[{"name":"i","datatype":"INT8","shape":[4],"data":[0,1,1,0]},'
            b'{"name":"f","datatype":"FP32","shape":[3],"data":[0,1.0,0.0]}]}'
        )
        response = decode_response(body)
        assert response["i"].tolist() == [0, 1, 1, 0] and response["f"].tolist() == [0.0, 1.0, 0.0]

    def test_bool_tensors_still_hold_only_true_and_false(self) -> None:
        with pytest.raises(PayloadError, match="true/false for BOOL"):
            decode_response(b'{"outputs":[{"name":"b","datatype":"BOOL","shape":[2],"data":[true,1]}]}')

    def test_encoding_bool_data_for_a_numeric_datatype_writes_numbers(self) -> None:
        encoded = encode_request([Tensor("x", np.array([True, False]), "FP32")], binary=False)
        body = encoded.to_bytes()
        assert b"true" not in body and b"false" not in body
        assert decode_request(body, encoded.headers)["x"].tolist() == [1.0, 0.0]
