"""check_size (reference edge case 33) and error_message (edge case 27)."""

from __future__ import annotations

import numpy as np
import pytest

from endpointkit.errors import PayloadError
from endpointkit.payloads import (
    SAGEMAKER_REALTIME_LIMIT,
    SAGEMAKER_SERVERLESS_LIMIT,
    check_size,
    encode_request,
    error_message,
)


class TestCheckSize:
    def test_limits(self) -> None:
        assert SAGEMAKER_REALTIME_LIMIT == 6_291_456
        assert SAGEMAKER_SERVERLESS_LIMIT == 4_000_000

    def test_exactly_the_limit_passes(self) -> None:
        assert (
            check_size(b"x" * SAGEMAKER_REALTIME_LIMIT, SAGEMAKER_REALTIME_LIMIT) == SAGEMAKER_REALTIME_LIMIT
        )

    def test_one_byte_over_fails_with_size_limit_and_advice(self) -> None:
        with pytest.raises(PayloadError) as info:
            check_size(b"x" * (SAGEMAKER_REALTIME_LIMIT + 1), SAGEMAKER_REALTIME_LIMIT)
        message = str(info.value)
        assert "6,291,457 bytes" in message and "6,291,456-byte" in message
        assert "asynchronous inference" in message and "S3" in message
        assert "smaller batches" in message and "binary" in message

    def test_encoded_request_counts_every_buffer(self) -> None:
        encoded = encode_request({"x": np.zeros(1_000_000, np.float32)}, protocol="sagemaker")
        assert check_size(encoded, SAGEMAKER_REALTIME_LIMIT) == encoded.nbytes
        with pytest.raises(PayloadError, match="serverless") as info:
            check_size(encode_request({"x": np.zeros(1_100_000, np.float32)}), SAGEMAKER_SERVERLESS_LIMIT)
        assert "instead of JSON" not in str(info.value)  # already binary

    def test_json_body_suggests_binary(self) -> None:
        encoded = encode_request({"x": np.zeros(100, np.float32)}, binary=False)
        with pytest.raises(PayloadError, match="binary instead of JSON|in binary form instead of JSON"):
            check_size(encoded, 10)

    def test_sequence_of_buffers(self) -> None:
        assert check_size([b"ab", memoryview(b"cde")], 5) == 5


class TestErrorMessage:
    def test_triton_json_error(self) -> None:
        assert error_message(b'{"error":"Request for unknown model: \'x\' is not found"}') == (
            "Request for unknown model: 'x' is not found"
        )

    def test_non_string_error_value(self) -> None:
        assert error_message(b'{"error":{"code":5}}') == '{"code":5}'

    def test_html_from_a_proxy(self) -> None:
        page = (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
        )
        assert error_message(page) == "502 Bad Gateway 502 Bad Gateway"

    def test_plain_text_and_str(self) -> None:
        assert error_message("upstream timed out\n") == "upstream timed out"

    @pytest.mark.parametrize("body", [b"", b"   ", None])
    def test_empty(self, body: bytes | None) -> None:
        assert error_message(body) is None

    def test_long_bodies_are_cut(self) -> None:
        message = error_message(b"x" * 10_000)
        assert message is not None and len(message) == 2000

    def test_invalid_utf8_never_raises(self) -> None:
        assert error_message(b"\xff\xfe oops") == "\ufffd\ufffd oops"
