"""Triton inference payloads: KServe v2 JSON and Triton's binary tensor extension, for both front ends.

Pure functions, no I/O. Requests are encoded for Triton's ``/v2/models/NAME/infer`` (``protocol="triton"``)
or its SageMaker ``/invocations`` listener (``protocol="sagemaker"``), responses decoded from either::

    from endpointkit.payloads import decode_response, encode_request

    request = encode_request({"INPUT0": array})          # binary when it pays, JSON otherwise
    connection.request("POST", "/v2/models/m/infer", request.to_bytes(), dict(request.headers))
    reply = connection.getresponse()
    result = decode_response(reply.read(), reply.headers)
    result["OUTPUT0"]

How it stays fast: a binary tensor that is already C-contiguous and little-endian goes out as a memoryview
of the caller's array (zero copies; others are copied once), JSON tensors are written by orjson straight
from numpy, BYTES elements are length-prefixed with one join, and decoded binary outputs are
``np.frombuffer`` views of the body.

Every fault raises :class:`~endpointkit.errors.PayloadError` with the field or byte offset.

Values the wire cannot carry faithfully are refused, never altered:

* Integers out of the datatype's range, and finite floats beyond FP16, FP32 or BF16 (``1e39`` for FP32,
  ``70000.0`` for FP16), which numpy would turn into inf. Infinities and NaN given as such are data: they
  travel unchanged (in JSON as the ``NaN``/``Infinity``/``-Infinity`` tokens Triton reads and writes).
* JSON booleans in numeric tensors, one rule both ways, Triton's: BOOL ``data`` holds only ``true``/``false``
  and every other numeric datatype only JSON numbers. Triton refuses a ``true`` in an FP32 tensor ("attempt
  to access JSON non-number as double": rapidjson ``IsNumber`` is false for it), so :func:`decode_request`
  and :func:`decode_response` refuse it, naming the tensor and the element, rather than read 1; encoders only
  ever write numbers there (a bool array given with an explicit numeric datatype is cast to 0 and 1 first).
* A gzip or deflate body that inflates past ``max_inflated_bytes`` (:data:`DEFAULT_MAX_INFLATED_BYTES`,
  64 MiB): inflation stops at the bound, so a compression bomb costs about the bound in memory.
"""

from __future__ import annotations

from endpointkit.payloads._codec import AUTO_BINARY_THRESHOLD
from endpointkit.payloads._inflate import DEFAULT_MAX_INFLATED_BYTES, inflate
from endpointkit.payloads._request import (
    RESERVED_PARAMETER_PREFIX,
    RESERVED_PARAMETERS,
    decode_request,
    encode_request,
)
from endpointkit.payloads._response import decode_response, encode_response, error_message
from endpointkit.payloads._tensor_files import read_tensor_file
from endpointkit.payloads.classification import Classification, parse_classification
from endpointkit.payloads.content_types import (
    BINARY_CONTENT_TYPE,
    INFERENCE_HEADER_CONTENT_LENGTH,
    JSON_CONTENT_TYPE,
    SAGEMAKER_BINARY_CONTENT_TYPE,
    parse_framing,
    sagemaker_binary_content_type,
)
from endpointkit.payloads.datatypes import DATATYPES, DataType, datatype_for_dtype
from endpointkit.payloads.sizes import SAGEMAKER_REALTIME_LIMIT, SAGEMAKER_SERVERLESS_LIMIT, check_size
from endpointkit.payloads.types import (
    EncodedBody,
    EncodedRequest,
    EncodedResponse,
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
)

__all__ = [
    "AUTO_BINARY_THRESHOLD",
    "BINARY_CONTENT_TYPE",
    "Classification",
    "DATATYPES",
    "DEFAULT_MAX_INFLATED_BYTES",
    "DataType",
    "EncodedBody",
    "EncodedRequest",
    "EncodedResponse",
    "INFERENCE_HEADER_CONTENT_LENGTH",
    "InferRequest",
    "InferResponse",
    "JSON_CONTENT_TYPE",
    "RESERVED_PARAMETERS",
    "RESERVED_PARAMETER_PREFIX",
    "RequestedOutput",
    "SAGEMAKER_BINARY_CONTENT_TYPE",
    "SAGEMAKER_REALTIME_LIMIT",
    "SAGEMAKER_SERVERLESS_LIMIT",
    "Tensor",
    "check_size",
    "datatype_for_dtype",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_message",
    "inflate",
    "parse_classification",
    "parse_framing",
    "read_tensor_file",
    "sagemaker_binary_content_type",
]
