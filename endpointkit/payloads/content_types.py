"""Content types and framing headers of Triton's two HTTP front ends.

* ``/v2/models/NAME/infer`` (``protocol="triton"``): a binary body is a JSON header followed by tensor bytes,
  and the ``Inference-Header-Content-Length`` header gives the JSON length in bytes (server
  ``docs/protocol/extension_binary_data.md``).
* SageMaker ``/invocations`` (``protocol="sagemaker"``): SageMaker strips unknown headers, so the length
  travels in the content type ``application/vnd.sagemaker-triton.binary+json;json-header-size=N``, which
  Triton matches only at offset 0 and without a space after ``;`` (server ``src/sagemaker_server.cc``
  ``GetInferenceHeaderLength``).

Both send pure JSON bodies as ``application/json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, cast

from endpointkit.errors import PayloadError

__all__ = [
    "BINARY_CONTENT_TYPE",
    "CONTENT_ENCODING",
    "INFERENCE_HEADER_CONTENT_LENGTH",
    "JSON_CONTENT_TYPE",
    "PROTOCOLS",
    "SAGEMAKER_BINARY_CONTENT_TYPE",
    "Framing",
    "HeaderItems",
    "HeadersLike",
    "ProtocolName",
    "framing_headers",
    "parse_framing",
    "sagemaker_binary_content_type",
]

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
SAGEMAKER_BINARY_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json;json-header-size="
"""Prefix of the SageMaker binary content type; the JSON header length in bytes follows it."""
INFERENCE_HEADER_CONTENT_LENGTH = "Inference-Header-Content-Length"
"""Header giving the JSON header length of a binary body on Triton's own HTTP port."""
CONTENT_ENCODING = "Content-Encoding"

ProtocolName: TypeAlias = Literal["triton", "sagemaker"]
PROTOCOLS: tuple[ProtocolName, ...] = ("triton", "sagemaker")


class HeaderItems(Protocol):
    """Anything with ``items()`` of header name and value: a dict, ``http.client.HTTPMessage``, ..."""

    def items(self) -> Iterable[tuple[str, str]]: ...


HeadersLike: TypeAlias = str | Mapping[str, str] | HeaderItems | Iterable[tuple[str, str]] | None
"""Headers in any case (a mapping, an ``http.client`` message, pairs), or just a Content-Type string."""

_SAGEMAKER_MEDIA_TYPE = SAGEMAKER_BINARY_CONTENT_TYPE.split(";", 1)[0]
_HEADER_SIZE_PARAMETER = "json-header-size"
_MAX_LENGTH_DIGITS = 19  # the digits of 2**63 - 1: no body is longer


def sagemaker_binary_content_type(json_header_length: int) -> str:
    """The exact SageMaker binary content type for a JSON header of ``json_header_length`` bytes."""
    return f"{SAGEMAKER_BINARY_CONTENT_TYPE}{json_header_length}"


def framing_headers(protocol: ProtocolName, json_header_length: int | None) -> dict[str, str]:
    """Headers for a body: JSON when ``json_header_length`` is None, else binary framing for ``protocol``."""
    if json_header_length is None:
        return {"Content-Type": JSON_CONTENT_TYPE}
    if protocol == "sagemaker":
        return {"Content-Type": sagemaker_binary_content_type(json_header_length)}
    return {
        "Content-Type": BINARY_CONTENT_TYPE,
        INFERENCE_HEADER_CONTENT_LENGTH: str(json_header_length),
    }


@dataclass(frozen=True, slots=True)
class Framing:
    """What the headers say about a body.

    ``json_header_length`` is ``None`` when no header gives it (the whole body is JSON); ``source`` names
    where it came from, for error messages; ``encoding`` is ``"gzip"``, ``"deflate"`` or ``None``.
    """

    json_header_length: int | None = None
    source: str = INFERENCE_HEADER_CONTENT_LENGTH
    encoding: Literal["gzip", "deflate"] | None = None


def _header_items(headers: HeadersLike) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, (str, bytes)):
        return {"content-type": _text(headers)}
    items = getattr(headers, "items", None)
    pairs = cast("Iterable[Any]", items() if callable(items) else headers)
    lowered: dict[str, str] = {}
    try:
        for key, value in pairs:
            lowered[_text(key).strip().lower()] = _text(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"headers must be a mapping, (name, value) pairs or a Content-Type string, got {type(headers)}",
            field="headers",
        ) from exc
    return lowered


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _shown(raw: str, limit: int = 40) -> str:
    """``repr`` of a header value, cut short so a huge value does not flood the error message."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


def _parse_length(raw: str, field: str) -> int:
    text = raw.strip()
    if text.startswith("-") and text[1:].isdigit():
        raise PayloadError(f"{field} is negative ({_shown(raw)}); it must be a byte count >= 0", field=field)
    # Plain ASCII digits only: Triton's std::stoi would read "12abc" as 12, a decoder must not guess.
    if not (text.isascii() and text.isdigit()):
        raise PayloadError(f"{field} is not a number: {_shown(raw)}", field=field)
    # Checked before int(), which raises ValueError past sys.get_int_max_str_digits() (leading zeros count).
    significant = text.lstrip("0") or "0"
    if len(significant) > _MAX_LENGTH_DIGITS:
        raise PayloadError(
            f"{field} has {len(significant)} digits ({_shown(raw)}), more than any body could need (at most "
            f"{_MAX_LENGTH_DIGITS}): send the byte length of the JSON part of the body",
            field=field,
        )
    return int(significant)


def _sagemaker_header_size(content_type: str) -> int | None:
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != _SAGEMAKER_MEDIA_TYPE:
        return None
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == _HEADER_SIZE_PARAMETER:
            return _parse_length(value, f"Content-Type {_HEADER_SIZE_PARAMETER}")
    raise PayloadError(
        f"Content-Type {_shown(content_type)} is the SageMaker binary type but has no {_HEADER_SIZE_PARAMETER}",
        field="Content-Type",
    )


def parse_framing(headers: HeadersLike) -> Framing:
    """Read the JSON header length and the content encoding from response or request headers.

    Header names match in any case (Triton uses ``strcasecmp``: libevhtp ``evhtp_kv_find``). The length comes
    from ``Inference-Header-Content-Length`` or from the SageMaker content type's ``json-header-size``.

    Raises:
        PayloadError: a length that is negative, not a number or over 19 digits, two sources that disagree,
            or an unsupported ``Content-Encoding``; ``field`` names the header.
    """
    lowered = _header_items(headers)
    length: int | None = None
    source = INFERENCE_HEADER_CONTENT_LENGTH
    raw_length = lowered.get(INFERENCE_HEADER_CONTENT_LENGTH.lower())
    if raw_length is not None:
        length = _parse_length(raw_length, INFERENCE_HEADER_CONTENT_LENGTH)
    content_type = lowered.get("content-type")
    if content_type is not None:
        sagemaker_length = _sagemaker_header_size(content_type)
        if sagemaker_length is not None:
            if length is not None and length != sagemaker_length:
                raise PayloadError(
                    f"{INFERENCE_HEADER_CONTENT_LENGTH} says {length} but the Content-Type says "
                    f"{_HEADER_SIZE_PARAMETER}={sagemaker_length}",
                    field="Content-Type",
                )
            length, source = sagemaker_length, f"Content-Type {_HEADER_SIZE_PARAMETER}"
    return Framing(length, source, _parse_encoding(lowered.get(CONTENT_ENCODING.lower())))


def _parse_encoding(raw: str | None) -> Literal["gzip", "deflate"] | None:
    if raw is None:
        return None
    encoding = raw.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return "gzip"
    if encoding == "deflate":
        return "deflate"
    raise PayloadError(
        f"unsupported Content-Encoding {_shown(raw)}: Triton sends gzip or deflate", field=CONTENT_ENCODING
    )
