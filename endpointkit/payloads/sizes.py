"""Body size limits of the places a payload goes, checked before sending."""

from __future__ import annotations

from collections.abc import Sequence

from endpointkit.errors import PayloadError
from endpointkit.payloads.content_types import JSON_CONTENT_TYPE
from endpointkit.payloads.types import Buffer, EncodedBody

__all__ = ["SAGEMAKER_REALTIME_LIMIT", "SAGEMAKER_SERVERLESS_LIMIT", "check_size"]

SAGEMAKER_REALTIME_LIMIT = 6_291_456
"""InvokeEndpoint request and response body limit, 6 MiB (botocore ``sagemaker-runtime`` ``BodyBlob`` max)."""
SAGEMAKER_SERVERLESS_LIMIT = 4_000_000
"""Serverless endpoint request and response limit, 4 MB (SageMaker serverless-endpoints-invoke docs)."""

_LIMIT_NAMES = {
    SAGEMAKER_REALTIME_LIMIT: "SageMaker real-time InvokeEndpoint limit",
    SAGEMAKER_SERVERLESS_LIMIT: "SageMaker serverless limit",
}


def _body_size(body: EncodedBody | Buffer | Sequence[Buffer]) -> int:
    if isinstance(body, EncodedBody):
        return body.nbytes
    if isinstance(body, (bytes, bytearray, memoryview)):
        return memoryview(body).nbytes
    return sum(memoryview(part).nbytes for part in body)


def check_size(body: EncodedBody | Buffer | Sequence[Buffer], limit: int) -> int:
    """Raise if ``body`` is larger than ``limit`` bytes; return its size otherwise.

    A body of exactly ``limit`` bytes passes. ``body`` is an encoded request or response, a bytes-like
    object or a sequence of buffers.

    Raises:
        PayloadError: the body is too large; the message gives the size, the limit and what to do instead.
    """
    size = _body_size(body)
    if size <= limit:
        return size
    limit_name = _LIMIT_NAMES.get(limit, "limit")
    advice = [
        "use SageMaker asynchronous inference (the payload goes through S3, up to 1 GB)",
        "send smaller batches",
    ]
    if not isinstance(body, EncodedBody) or body.content_type == JSON_CONTENT_TYPE:
        advice.append("send tensors in binary form instead of JSON (binary=True), which is far more compact")
    raise PayloadError(
        f"body is {size:,} bytes, over the {limit:,}-byte {limit_name} by {size - limit:,} bytes: "
        + "; ".join(advice)
    )
