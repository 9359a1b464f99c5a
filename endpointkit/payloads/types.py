"""Value types of the payload codecs: what goes in, what comes out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy.typing as npt

__all__ = [
    "Buffer",
    "Body",
    "EncodedBody",
    "EncodedRequest",
    "EncodedResponse",
    "InferRequest",
    "InferResponse",
    "ParameterValue",
    "RequestedOutput",
    "Tensor",
]

Buffer: TypeAlias = bytes | bytearray | memoryview
"""A bytes-like object."""

Body: TypeAlias = Buffer | Sequence[Buffer]
"""A body: one bytes-like object, or buffers a transport sends back to back (``writev``) without joining."""

ParameterValue: TypeAlias = str | int | float | bool
"""A KServe v2 ``$parameters`` value."""


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named tensor to encode.

    Args:
        name: the model's input (or output) name, matched exactly.
        data: a numpy array or anything ``numpy.asarray`` takes; ``bytes``/``str`` scalars and arrays of
            them are BYTES.
        datatype: a Triton datatype name (``"FP32"``, ``"BF16"``, ...) when the dtype alone does not say it.
            ``"BF16"`` takes float data, converts it to float32 and rounds each value to the nearest bfloat16,
            ties to even (tritonclient before r26.06 truncated instead); ``ml_dtypes.bfloat16`` arrays are
            sent as they are.
        binary: this tensor's own choice of binary (``True``) or JSON (``False``) form; ``None`` follows the
            request's choice. Mixing both forms in one body is valid.
    """

    name: str
    data: Any
    datatype: str | None = None
    binary: bool | None = None


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output to ask the model for.

    Args:
        name: the output name.
        binary: ask for the binary form (``True``), JSON (``False``), or the request's choice (``None``).
        class_count: when positive, ask Triton's classification extension for the top ``class_count``
            classes instead of the raw tensor: the output comes back as BYTES ``"value:index[:label]"``
            (see :func:`~endpointkit.payloads.parse_classification`).
    """

    name: str
    binary: bool | None = None
    class_count: int = 0


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """An encoded HTTP body and the headers it needs.

    ``body`` is ``bytes`` for a pure JSON body, otherwise a tuple of buffers (the JSON header, then one
    memoryview per binary tensor) meant to be sent back to back without joining; ``to_bytes()`` joins them.
    The memoryviews share memory with the caller's arrays where no conversion was needed: do not change the
    arrays until the body is sent. ``headers`` holds ``Content-Type`` and, for binary bodies on the
    ``triton`` protocol, ``Inference-Header-Content-Length``; the transport adds ``Content-Length``
    (``nbytes``). ``json_header_length`` is the byte length of the JSON part, or ``None`` for a pure JSON
    body without binary framing.
    """

    body: bytes | tuple[bytes | memoryview, ...]
    headers: Mapping[str, str]
    content_type: str
    json_header_length: int | None = None

    @property
    def nbytes(self) -> int:
        """Total body length in bytes (the ``Content-Length``)."""
        if isinstance(self.body, bytes):
            return len(self.body)
        return sum(memoryview(part).nbytes for part in self.body)

    @property
    def is_binary(self) -> bool:
        """True when the body uses binary framing (a JSON header followed by tensor bytes)."""
        return self.json_header_length is not None

    def to_bytes(self) -> bytes:
        """Join the body into one ``bytes`` object (one copy; free for a pure JSON body)."""
        if isinstance(self.body, bytes):
            return self.body
        return b"".join(self.body)


@dataclass(frozen=True, slots=True)
class EncodedRequest(EncodedBody):
    """An encoded inference request; see :class:`EncodedBody`."""


@dataclass(frozen=True, slots=True)
class EncodedResponse(EncodedBody):
    """An encoded inference response; see :class:`EncodedBody`."""


@dataclass(frozen=True, slots=True)
class InferResponse:
    """A decoded inference response.

    ``outputs`` maps each output name to its array: binary outputs are views of the response body (read-only
    when the body was ``bytes``; possibly unaligned), BF16 is widened to float32, BYTES is an object array of
    ``bytes``. ``datatypes`` keeps the Triton datatype of each output (``"BF16"``, ``"BYTES"``, ...).
    ``model_version`` is always a string; ``id`` is ``None`` when the request had none.
    """

    outputs: dict[str, npt.NDArray[Any]]
    model_name: str = ""
    model_version: str = ""
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    datatypes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        """The output called ``name``; ``KeyError`` lists the outputs present."""
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(f"no output {name!r} in the response; outputs: {sorted(self.outputs)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded inference request, as a server (or a fake of one) sees it.

    ``inputs`` maps input names to arrays (same conventions as :class:`InferResponse`); ``outputs`` lists the
    outputs the client named, in order (empty: all outputs), each with ``binary`` set to what the client
    asked (``True``/``False``). ``parameters`` are the request-level parameters as sent, including
    ``binary_data_output``.
    """

    inputs: dict[str, npt.NDArray[Any]]
    outputs: list[RequestedOutput] = field(default_factory=list)
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    datatypes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        """The input called ``name``."""
        try:
            return self.inputs[name]
        except KeyError:
            raise KeyError(f"no input {name!r} in the request; inputs: {sorted(self.inputs)}") from None

    def output_is_binary(self, name: str) -> bool:
        """Whether Triton would send output ``name`` in binary form for this request.

        A listed output is binary only when its own ``binary_data`` is true; ``binary_data_output`` applies
        to outputs the request did not list (server ``src/http_server.cc`` ``ParseJsonTritonIO``).
        """
        for output in self.outputs:
            if output.name == name:
                return bool(output.binary)
        return self.parameters.get("binary_data_output") is True
