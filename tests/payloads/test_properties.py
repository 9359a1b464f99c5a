"""Property tests: encode -> decode is the identity; no input makes a decoder raise anything but PayloadError."""

from __future__ import annotations

import contextlib
import gzip
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    INFERENCE_HEADER_CONTENT_LENGTH,
    SAGEMAKER_BINARY_CONTENT_TYPE,
    RequestedOutput,
    Tensor,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from endpointkit.payloads._binary import bf16_bits_to_float32, float32_to_bf16_bits
from endpointkit.payloads._json import loads as json_loads
from tests.payloads.conftest import ALL_DATATYPES, NUMPY_DTYPES

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
bytes_elements = st.one_of(st.binary(max_size=12), st.text(max_size=6))
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)
_BF16_MAX = np.float32(np.frombuffer(np.array([0x7F7F0000], np.uint32).tobytes(), np.float32)[0])
"""BF16's largest finite value (0x7F7F as the top half of a float32), 3.3895314e38."""


@st.composite
def tensors(draw: st.DrawFn) -> tuple[Tensor, np.ndarray[Any, Any]]:
    """A Tensor of any datatype and layout, and the array a decoder must give back."""
    datatype = draw(st.sampled_from(ALL_DATATYPES))
    shape = draw(shapes)
    if datatype == "BYTES":
        array = draw(hnp.arrays(object, shape, elements=bytes_elements))
        expected = np.empty(shape, dtype=object)
        expected.reshape(-1)[:] = [
            item.encode() if isinstance(item, str) else item for item in array.reshape(-1)
        ]
    else:
        dtype = NUMPY_DTYPES[datatype]
        array = draw(hnp.arrays(dtype, shape))
        expected = array
        if datatype == "BF16":
            # A finite float32 above BF16's largest finite value would round to inf, which the encoder
            # refuses (test_value_rules covers that): keep finite values within BF16's range here.
            finite = np.isfinite(array)
            array = np.where(finite, np.clip(array, -_BF16_MAX, _BF16_MAX), array).astype(np.float32)
            expected = bf16_bits_to_float32(float32_to_bf16_bits(array)).reshape(shape)
        layout = draw(st.sampled_from(["c", "fortran", "reversed", "big-endian"]))
        if layout == "fortran":
            array = np.array(array, order="F")
        elif layout == "reversed" and array.ndim:
            array = np.flip(np.ascontiguousarray(np.flip(array, 0)), 0)  # same values, negative strides
        elif layout == "big-endian" and dtype.itemsize > 1:
            array = array.astype(dtype.newbyteorder(">"))
    binary = draw(st.sampled_from([None, None, True, False]))
    return Tensor(draw(names), array, datatype, binary), expected


def json_safe(tensor: Tensor, expected: np.ndarray[Any, Any]) -> bool:
    if tensor.datatype in ("FP16", "BF16"):
        return False
    if tensor.datatype == "BYTES":
        try:
            [item.decode("utf-8") for item in expected.reshape(-1)]
        except UnicodeDecodeError:
            return False
    return True


def assert_same(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], exact_nan: bool) -> None:
    assert actual.shape == expected.shape
    if expected.dtype == object:
        assert actual.reshape(-1).tolist() == expected.reshape(-1).tolist()
        return
    assert actual.dtype == expected.dtype.newbyteorder("=")
    if expected.dtype.kind == "f":
        width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[expected.dtype.itemsize]
        nan = np.isnan(expected)
        assert np.array_equal(np.isnan(actual), nan)
        left = np.ascontiguousarray(actual).view(width)
        right = np.ascontiguousarray(expected.astype(actual.dtype)).view(width)
        # JSON carries NaN as a token without payload or sign; binary keeps every bit.
        assert np.array_equal(left if exact_nan else left[~nan], right if exact_nan else right[~nan])
    else:
        assert np.array_equal(actual, expected)


def unique(items: list[tuple[Tensor, np.ndarray[Any, Any]]]) -> list[tuple[Tensor, np.ndarray[Any, Any]]]:
    seen: dict[str, tuple[Tensor, np.ndarray[Any, Any]]] = {}
    for tensor, expected in items:
        seen.setdefault(tensor.name, (tensor, expected))
    return list(seen.values())


def json_form_names(encoded: Any, key: str) -> set[str]:
    """Names of the tensors that travelled in JSON ``data`` (their NaNs lose payload and sign)."""
    body = encoded.to_bytes()
    document = json_loads(body[: encoded.json_header_length or len(body)])
    return {entry["name"] for entry in document[key] if "data" in entry}


def headers_for(encoded: Any, protocol: str, as_content_type: bool) -> Any:
    if protocol == "sagemaker" and as_content_type:
        return encoded.content_type
    return {key.upper() if as_content_type else key.lower(): value for key, value in encoded.headers.items()}


@SETTINGS
@given(
    items=st.lists(tensors(), min_size=1, max_size=4).map(unique),
    binary=st.sampled_from([None, True, False]),
    protocol=st.sampled_from(["triton", "sagemaker"]),
    request_id=st.none() | names,
    outputs=st.none() | st.lists(names, max_size=3, unique=True),
    flag=st.booleans(),
)
def test_request_round_trip(
    items: list[tuple[Tensor, np.ndarray[Any, Any]]],
    binary: bool | None,
    protocol: str,
    request_id: str | None,
    outputs: list[str] | None,
    flag: bool,
) -> None:
    tensors_in = [tensor for tensor, _ in items]
    json_tensors = [(t, e) for t, e in items if t.binary is False or (t.binary is None and binary is False)]
    if not all(json_safe(t, e) for t, e in json_tensors):
        with pytest.raises(PayloadError, match="binary"):
            encode_request(tensors_in, outputs, binary=binary, protocol=protocol)
        return
    encoded = encode_request(tensors_in, outputs, binary=binary, protocol=protocol, request_id=request_id)
    body = encoded.body if flag else encoded.to_bytes()
    request = decode_request(body, headers_for(encoded, protocol, flag))
    in_json = json_form_names(encoded, "inputs")
    for tensor, expected in items:
        assert_same(request.inputs[tensor.name], expected, exact_nan=tensor.name not in in_json)
        assert request.datatypes[tensor.name] == tensor.datatype
    assert request.id == (request_id or None)
    assert [output.name for output in request.outputs] == (outputs or [])


@SETTINGS
@given(
    items=st.lists(tensors(), min_size=0, max_size=4).map(unique),
    binary=st.sampled_from([None, True]),
    protocol=st.sampled_from(["triton", "sagemaker"]),
    model_name=names,
    flag=st.booleans(),
)
def test_response_round_trip(
    items: list[tuple[Tensor, np.ndarray[Any, Any]]],
    binary: bool | None,
    protocol: str,
    model_name: str,
    flag: bool,
) -> None:
    outputs = [
        Tensor(t.name, t.data, t.datatype, True if binary else t.binary if json_safe(t, e) else None)
        for t, e in items
    ]
    encoded = encode_response(outputs, model_name=model_name, binary=binary, protocol=protocol)
    response = decode_response(
        encoded.body if flag else encoded.to_bytes(), headers_for(encoded, protocol, flag)
    )
    assert response.model_name == model_name
    in_json = json_form_names(encoded, "outputs")
    for tensor, expected in items:
        assert_same(response[tensor.name], expected, exact_nan=tensor.name not in in_json)


# ---- decoders never raise anything but PayloadError --------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
plausible_datatypes = st.sampled_from([*ALL_DATATYPES, "fp32", "STRING", ""]) | json_values
plausible_shapes = st.lists(st.integers(-2, 5), max_size=3) | json_values
plausible_sizes = st.integers(-2, 40) | json_values


@st.composite
def tensor_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if draw(st.booleans()):
        entry["name"] = draw(st.sampled_from(["a", "b"]) | json_values)
    if draw(st.integers(0, 9)):
        entry["datatype"] = draw(plausible_datatypes)
    if draw(st.integers(0, 9)):
        entry["shape"] = draw(plausible_shapes)
    choice = draw(st.integers(0, 3))
    if choice in (1, 3):
        entry["data"] = draw(json_values)
    if choice in (2, 3):
        entry["parameters"] = {"binary_data_size": draw(plausible_sizes)}
    return entry


def call_decoder(decoder: Any, body: Any, headers: Any) -> None:
    """Run a decoder; PayloadError is the one allowed failure, anything else fails the test."""
    with contextlib.suppress(PayloadError):
        decoder(body, headers)


# Lengths past int()'s 4300-digit limit (sys.get_int_max_str_digits), past int64, zero-padded, negative.
digit_strings = st.one_of(
    st.text("0123456789", min_size=1, max_size=30),
    st.builds(
        lambda digit, count, tail: digit * count + tail,
        st.sampled_from("0159"),
        st.integers(4290, 5000),
        st.text("0123456789", max_size=3),
    ),
)
header_texts = st.one_of(
    st.text(max_size=8),
    digit_strings,
    digit_strings.map("-".__add__),
    digit_strings.map(" {} ".format),
    st.text(min_size=100, max_size=3000),
)
headers_values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.builds(lambda n: f"{SAGEMAKER_BINARY_CONTENT_TYPE}{n}", st.integers(-5, 400) | header_texts),
    st.dictionaries(
        st.sampled_from([INFERENCE_HEADER_CONTENT_LENGTH, "content-type", "Content-Encoding"]),
        header_texts
        | st.integers(-5, 400).map(str)
        | st.sampled_from(["gzip", "deflate", "identity"])
        | header_texts.map(SAGEMAKER_BINARY_CONTENT_TYPE.__add__),
        max_size=3,
    ),
)


@FUZZ
@given(
    body=st.binary(max_size=300),
    headers=headers_values,
    decoder=st.sampled_from([decode_request, decode_response]),
)
def test_random_bytes_raise_only_payload_error(body: bytes, headers: Any, decoder: Any) -> None:
    call_decoder(decoder, body, headers)


@FUZZ
@given(
    entries=st.lists(tensor_entries(), max_size=3),
    extra=st.dictionaries(
        st.sampled_from(["id", "model_name", "model_version", "parameters", "outputs"]), json_values
    ),
    tail=st.binary(max_size=40),
    header_delta=st.none() | st.integers(-3, 3),
    compress=st.booleans(),
    key=st.sampled_from(["inputs", "outputs"]),
)
def test_structurally_wrong_documents_raise_only_payload_error(
    entries: list[dict[str, Any]],
    extra: dict[str, Any],
    tail: bytes,
    header_delta: int | None,
    compress: bool,
    key: str,
) -> None:
    try:
        header = orjson.dumps({**extra, key: entries})
    except (TypeError, orjson.JSONEncodeError):
        assume(False)
        return
    body = header + tail
    headers: dict[str, str] = {}
    if header_delta is not None:
        headers[INFERENCE_HEADER_CONTENT_LENGTH] = str(len(header) + header_delta)
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    call_decoder(decode_request if key == "inputs" else decode_response, body, headers)


@FUZZ
@given(
    item=tensors(),
    position=st.integers(0, 10_000),
    replacement=st.binary(min_size=0, max_size=4),
    cut=st.integers(0, 3),
    header_delta=st.integers(-4, 4),
    header_value=st.none() | header_texts,
    response=st.booleans(),
)
def test_mutated_valid_bodies_raise_only_payload_error(
    item: tuple[Tensor, np.ndarray[Any, Any]],
    position: int,
    replacement: bytes,
    cut: int,
    header_delta: int,
    header_value: str | None,
    response: bool,
) -> None:
    tensor, _ = item
    try:
        if response:
            encoded: Any = encode_response([tensor], model_name="m")
        else:
            encoded = encode_request([tensor], [RequestedOutput("o")])
    except PayloadError:
        return
    body = bytearray(encoded.to_bytes())
    if body:
        index = position % len(body)
        body[index : index + cut] = replacement
    headers = dict(encoded.headers)
    if INFERENCE_HEADER_CONTENT_LENGTH in headers:
        headers[INFERENCE_HEADER_CONTENT_LENGTH] = str(
            int(headers[INFERENCE_HEADER_CONTENT_LENGTH]) + header_delta
        )
    if header_value is not None:
        headers[INFERENCE_HEADER_CONTENT_LENGTH] = header_value
    call_decoder(decode_response if response else decode_request, bytes(body), headers)
