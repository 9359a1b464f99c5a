"""The codecs against a real tritonserver: /v2/models/NAME/infer and the SageMaker /invocations listener.

One server per module serves Python-backend identity models for every datatype
(``tests/triton_identity_models.py``); its SageMaker listener routes ``/invocations`` to ``identity_mixed``.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit.adapters._http import HttpTransport, Origin
from endpointkit.errors import MissingDependencyError, PayloadError
from endpointkit.payloads import (
    EncodedRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    decode_request,
    decode_response,
    encode_request,
    error_message,
    parse_classification,
)
from tests.payloads.conftest import (
    ALL_DATATYPES,
    JSON_DATATYPES,
    NUMPY_DTYPES,
    assert_identical,
    missing_triton_dependency,
    sample,
)
from tests.triton_identity_models import (
    MIXED_MODEL,
    SCALAR_DATATYPES,
    SCALAR_MODEL,
    identity_model_name,
    stub_environment,
    write_identity_models,
)

pytestmark = pytest.mark.triton


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def decoded(self) -> InferResponse:
        assert self.status == 200, (self.status, self.body[:500])
        return decode_response(self.body, self.headers)


class Triton:
    """The running server and a small http.client transport for it."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def post(self, port: int, path: str, body: Any, headers: Mapping[str, str]) -> Reply:
        """POST ``body`` as it is to ``path`` on ``port``."""
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", path, body, dict(headers))
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def infer(self, model: str, encoded: EncodedRequest, *, extra: Mapping[str, str] | None = None) -> Reply:
        """POST to /v2/models/MODEL/infer, sending the body's buffers as they are (no join)."""
        headers = {**encoded.headers, "Content-Length": str(encoded.nbytes), **(extra or {})}
        body = encoded.body if isinstance(encoded.body, bytes) else list(encoded.body)
        return self.post(self.server.http_port, f"/v2/models/{model}/infer", body, headers)

    def invocations(self, encoded: EncodedRequest) -> Reply:
        """POST to SageMaker /invocations with a joined body, as botocore sends it."""
        assert self.server.sagemaker_port is not None
        return self.post(self.server.sagemaker_port, "/invocations", encoded.to_bytes(), encoded.headers)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triton]:
    try:
        from endpointkit.adapters.local._tritonserver import TritonServerProcess, find_tritonserver

        find_tritonserver()
    except (ImportError, MissingDependencyError) as exc:
        missing_triton_dependency(
            "tritonserver", "pip install -e '.[local,dev]' (nvidia-pytriton bundles tritonserver)", exc
        )
    repository = write_identity_models(Path(tmp_path_factory.mktemp("identity-models")))
    server = TritonServerProcess.start(
        repository,
        sagemaker=True,
        default_model=MIXED_MODEL,
        environment=stub_environment(),
        ready_timeout=120.0,
    )
    try:
        yield Triton(server)
    finally:
        server.stop()


def both_shapes(datatype: str) -> dict[str, np.ndarray[Any, Any]]:
    return {"INPUT0": sample(datatype, (5,)), "INPUT1": sample(datatype, (2, 3))}


def as_tensors(arrays: Mapping[str, np.ndarray[Any, Any]], datatype: str) -> Sequence[Tensor]:
    return [Tensor(name, array, datatype) for name, array in arrays.items()]


def non_finite_sample(datatype: str) -> np.ndarray[Any, Any]:
    """Finite values of every magnitude the type holds, with NaN, +Inf and -Inf at the ends and in between."""
    dtype = NUMPY_DTYPES[datatype]
    decades = np.linspace(-np.finfo(dtype).maxexp, np.finfo(dtype).maxexp, 300) * np.log10(2) * 0.95
    values = (np.random.default_rng(11).standard_normal(300) * 10.0**decades).astype(dtype)
    values[[0, 7, 8, 150, 151, 299]] = [np.nan, np.inf, -np.inf, np.nan, np.nan, -np.inf]
    values[20] = -0.0
    return values


def assert_same_non_finite(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> None:
    """Non-finite values by kind (JSON tokens carry no NaN payload), finite ones as Triton can keep them.

    FP32 comes back bit for bit. FP64 may not: Triton parses JSON numbers without rapidjson's
    kParseFullPrecisionFlag (common ``triton_json.h`` ``Parse``), whose fast path can miss by a few ULP
    (Tencent/rapidjson#2002) however exactly the text was written.
    """
    finite = np.isfinite(expected)
    assert actual.shape == expected.shape
    assert np.array_equal(np.isfinite(actual), finite)
    assert np.array_equal(actual[~finite], expected[~finite], equal_nan=True)
    if expected.dtype == np.float32:
        assert_identical(actual[finite], expected[finite])
    else:
        ulps = np.abs(actual[finite] - expected[finite]) / np.spacing(np.abs(expected[finite]))
        assert ulps.max() <= 3, ulps.max()


class TestV2Infer:
    @pytest.mark.parametrize("datatype", ALL_DATATYPES)
    def test_every_datatype_in_binary(self, triton: Triton, datatype: str) -> None:
        arrays = both_shapes(datatype)
        reply = triton.infer(
            identity_model_name(datatype), encode_request(as_tensors(arrays, datatype), binary=True)
        )
        assert reply.headers["Content-Type"] == "application/octet-stream"
        response = reply.decoded()
        assert response.model_name == identity_model_name(datatype) and response.model_version == "1"
        assert response.datatypes == {"OUTPUT0": datatype, "OUTPUT1": datatype}
        assert_identical(response["OUTPUT0"], arrays["INPUT0"], datatype)
        assert_identical(response["OUTPUT1"], arrays["INPUT1"], datatype)

    @pytest.mark.parametrize("datatype", JSON_DATATYPES)
    def test_json_datatypes_in_json(self, triton: Triton, datatype: str) -> None:
        arrays = both_shapes(datatype)
        reply = triton.infer(
            identity_model_name(datatype), encode_request(as_tensors(arrays, datatype), binary=False)
        )
        assert reply.headers["Content-Type"] == "application/json"
        response = reply.decoded()
        assert_identical(response["OUTPUT0"], arrays["INPUT0"], datatype)
        assert_identical(response["OUTPUT1"], arrays["INPUT1"], datatype)

    @pytest.mark.parametrize("datatype", ALL_DATATYPES)
    @pytest.mark.parametrize("binary", [True, False])
    def test_zero_size_tensors(self, triton: Triton, datatype: str, binary: bool) -> None:
        json_input = not binary and datatype in JSON_DATATYPES
        tensors = [
            Tensor("INPUT0", sample(datatype, (0,)), datatype, binary=not json_input),
            Tensor("INPUT1", sample(datatype, (3, 0)), datatype, binary=True),
        ]
        response = triton.infer(identity_model_name(datatype), encode_request(tensors)).decoded()
        assert response["OUTPUT0"].shape == (0,) and response["OUTPUT1"].shape == (3, 0)

    def test_scalar_outputs_of_every_datatype_matched_by_name(self, triton: Triton) -> None:
        values = {datatype: sample(datatype, (1,)) for datatype in SCALAR_DATATYPES}
        tensors = [Tensor(f"IN_{datatype}", value, datatype) for datatype, value in values.items()]
        response = triton.infer(SCALAR_MODEL, encode_request(tensors, binary=True)).decoded()
        # The model emits outputs in reverse order; they must still land under the right names.
        assert list(response.outputs) == [f"OUT_{datatype}" for datatype in reversed(SCALAR_DATATYPES)]
        for datatype, value in values.items():
            assert_identical(response[f"OUT_{datatype}"], value.reshape(()), datatype)

    def test_mixed_json_and_binary_inputs_and_outputs(self, triton: Triton) -> None:
        tensors = [
            Tensor("IN_FP32", np.array([0.1, np.nan, np.inf, -0.0], np.float32), binary=False),
            Tensor("IN_BYTES", np.array([b"", b"a\x00", b"\xff\xfe"], dtype=object), binary=True),
            Tensor("IN_BOOL", np.array([True, False]), binary=False),
            Tensor("IN_FP16", np.array([1.5, -2.0], np.float16), binary=True),
            Tensor("IN_INT64", np.array([-(2**63), 2**63 - 1]), binary=False),
            Tensor("IN_UINT8", np.zeros(0, np.uint8), binary=True),
        ]
        outputs = [
            RequestedOutput("OUT_FP32", binary=False),
            RequestedOutput("OUT_BYTES", binary=True),
            RequestedOutput("OUT_BOOL", binary=True),
            RequestedOutput("OUT_FP16", binary=True),
            RequestedOutput("OUT_INT64", binary=False),
            RequestedOutput("OUT_UINT8", binary=True),
        ]
        response = triton.infer(MIXED_MODEL, encode_request(tensors, outputs)).decoded()
        for tensor in tensors:
            expected = np.asarray(tensor.data)
            actual = response[tensor.name.replace("IN_", "OUT_")]
            if expected.dtype.kind == "f":
                assert np.array_equal(actual, expected, equal_nan=True)
                assert np.array_equal(np.signbit(actual), np.signbit(expected))
            else:
                assert_identical(actual, expected)

    def test_json_nan_and_infinity_both_ways(self, triton: Triton) -> None:
        values = np.array([np.nan, np.inf, -np.inf, 1.5], np.float64)
        reply = triton.infer(identity_model_name("FP64"), encode_request({"INPUT0": values}, binary=False))
        assert b"NaN" in reply.body and b"-Infinity" in reply.body  # Triton writes bare tokens
        assert np.array_equal(reply.decoded()["OUTPUT0"], values, equal_nan=True)

    @pytest.mark.parametrize("datatype", ["FP32", "FP64"])
    @pytest.mark.parametrize("binary_output", [True, False])
    def test_json_non_finite_values_among_finite_ones(
        self, triton: Triton, datatype: str, binary_output: bool
    ) -> None:
        values = non_finite_sample(datatype)
        encoded = encode_request(
            {"INPUT0": values}, [RequestedOutput("OUTPUT0", binary=binary_output)], binary=False
        )
        assert b"null" not in encoded.to_bytes()
        assert_same_non_finite(
            triton.infer(identity_model_name(datatype), encoded).decoded()["OUTPUT0"], values
        )

    def test_integer_extremes_in_json(self, triton: Triton) -> None:
        values = np.array([0, 2**64 - 1, 2**63], np.uint64)
        response = triton.infer(
            identity_model_name("UINT64"), encode_request({"INPUT0": values}, binary=False)
        )
        assert_identical(response.decoded()["OUTPUT0"], values)

    def test_multibyte_request_id_and_header_length(self, triton: Triton) -> None:
        encoded = encode_request({"IN_FP32": np.arange(400, dtype=np.float32)}, request_id="zähler-✓-番号")
        assert encoded.is_binary
        response = triton.infer(MIXED_MODEL, encoded).decoded()
        assert response.id == "zähler-✓-番号"
        assert_identical(response["OUT_FP32"], np.arange(400, dtype=np.float32))

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    def test_compressed_response(self, triton: Triton, encoding: str) -> None:
        values = np.arange(3000, dtype=np.int32)
        reply = triton.infer(
            identity_model_name("INT32"),
            encode_request({"INPUT0": values}),
            extra={"Accept-Encoding": encoding},
        )
        assert reply.headers["Content-Encoding"] == encoding
        assert len(reply.body) < values.nbytes
        assert_identical(reply.decoded()["OUTPUT0"], values)

    def test_transport_inflates_a_triton_gzip_response_within_its_bound(self, triton: Triton) -> None:
        values = np.zeros(250_000, np.float32)  # 1 MB of zeros: Triton's gzip makes about 1 KB of it
        encoded = encode_request({"INPUT0": values})
        path = f"/v2/models/{identity_model_name('FP32')}/infer"
        headers = {**encoded.headers, "Accept-Encoding": "gzip"}
        origin = Origin("http", "127.0.0.1", triton.server.http_port)
        with HttpTransport(provider="test", max_response_bytes=2 * values.nbytes) as transport:
            response = transport.request("POST", origin, path, encoded.body, headers)
        assert response.status == 200 and "content-encoding" not in response.headers
        assert_identical(decode_response(response.body, response.headers)["OUTPUT0"], values)
        small = HttpTransport(provider="test", max_response_bytes=values.nbytes // 2)
        with small, pytest.raises(PayloadError, match="gzip body inflates past 500,000 bytes"):
            small.request("POST", origin, path, encoded.body, headers)

    @pytest.mark.parametrize("datatype", ["FP32", "INT32"])
    def test_json_booleans_in_numeric_tensors_are_refused_by_triton_as_by_the_decoder(
        self, triton: Triton, datatype: str
    ) -> None:
        body = f'{{"inputs":[{{"name":"INPUT0","datatype":"{datatype}","shape":[2],"data":[1,true]}}]}}'
        path = f"/v2/models/{identity_model_name(datatype)}/infer"
        reply = triton.post(
            triton.server.http_port, path, body.encode(), {"Content-Type": "application/json"}
        )
        # Triton classes its own parse failure as INTERNAL, hence 500 rather than 400 (reference 1.4)
        assert reply.status == 500, reply.body[:300]
        assert "attempt to access JSON non-" in (error_message(reply.body) or "")
        with pytest.raises(PayloadError, match="element 1 is true"):
            decode_request(body.encode())

    def test_classification_output(self, triton: Triton) -> None:
        scores = np.array([0.1, 0.7, 0.2], np.float32)
        encoded = encode_request({"INPUT0": scores}, [RequestedOutput("OUTPUT0", class_count=2)])
        response = triton.infer(identity_model_name("FP32"), encoded).decoded()
        assert response.datatypes["OUTPUT0"] == "BYTES"
        best, second = parse_classification(response["OUTPUT0"])
        assert (best.index, second.index) == (1, 2)
        assert best.value == pytest.approx(0.7) and best.label is None

    def test_fp16_output_asked_in_json_is_triton_error(self, triton: Triton) -> None:
        encoded = encode_request(
            [Tensor("INPUT0", np.ones(2, np.float16))], [RequestedOutput("OUTPUT0", binary=False)]
        )
        reply = triton.infer(identity_model_name("FP16"), encoded)
        assert reply.status == 400
        assert "FP16" in (error_message(reply.body) or "")

    def test_unknown_model_error_message(self, triton: Triton) -> None:
        reply = triton.infer("no_such_model", encode_request({"INPUT0": [1.0]}))
        assert reply.status in (400, 404)
        assert "no_such_model" in (error_message(reply.body) or "")


class TestSageMakerInvocations:
    @pytest.mark.parametrize("binary", [True, None])
    def test_every_datatype_in_binary(self, triton: Triton, binary: bool | None) -> None:
        arrays = {datatype: sample(datatype, (4,)) for datatype in ALL_DATATYPES}
        tensors = [Tensor(f"IN_{datatype}", array, datatype) for datatype, array in arrays.items()]
        encoded = encode_request(tensors, binary=binary, protocol="sagemaker")
        assert encoded.content_type.startswith(
            "application/vnd.sagemaker-triton.binary+json;json-header-size="
        )
        reply = triton.invocations(encoded)
        assert reply.headers["Content-Type"].startswith("application/vnd.sagemaker-triton.binary+json")
        assert "Inference-Header-Content-Length" not in reply.headers
        response = decode_response(reply.body, reply.headers["Content-Type"])
        for datatype, array in arrays.items():
            assert_identical(response[f"OUT_{datatype}"], array, datatype)

    def test_json_datatypes_in_json(self, triton: Triton) -> None:
        arrays = {datatype: sample(datatype, (3,)) for datatype in JSON_DATATYPES}
        tensors = [Tensor(f"IN_{datatype}", array, datatype) for datatype, array in arrays.items()]
        encoded = encode_request(tensors, binary=False, protocol="sagemaker")
        assert encoded.content_type == "application/json"
        reply = triton.invocations(encoded)
        assert reply.headers["Content-Type"] == "application/json"
        response = reply.decoded()
        for datatype, array in arrays.items():
            assert_identical(response[f"OUT_{datatype}"], array, datatype)

    def test_json_non_finite_values(self, triton: Triton) -> None:
        values = non_finite_sample("FP32")
        encoded = encode_request({"IN_FP32": values}, ["OUT_FP32"], binary=False, protocol="sagemaker")
        assert_same_non_finite(triton.invocations(encoded).decoded()["OUT_FP32"], values)

    def test_zero_size_and_listed_outputs(self, triton: Triton) -> None:
        encoded = encode_request(
            {"IN_FP32": np.zeros(0, np.float32), "IN_INT8": np.array([-1, 1], np.int8)},
            ["OUT_INT8", RequestedOutput("OUT_FP32", binary=False)],
            binary=True,
            protocol="sagemaker",
        )
        response = triton.invocations(encoded).decoded()
        assert response["OUT_FP32"].shape == (0,)
        assert response["OUT_INT8"].tolist() == [-1, 1]
