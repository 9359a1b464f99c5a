"""``http.client``'s response, with the header block read by a small loop instead of the ``email`` package.

``http.client.parse_headers`` builds an ``email.message.Message`` through the email feed parser: about 64 us
for the three headers of a Triton response on the development machine, a tenth of the client's CPU per call on
the invoke hot path, which shares the cores with the server. :class:`FastResponse` keeps everything else of
``HTTPResponse`` (status line, 100 Continue, chunked bodies, keep-alive decisions) and only swaps the headers
for :class:`Headers`, a dict by lower-case name. Header values are decoded as ISO-8859-1, as http.client does.

:func:`inflate_response` undoes a gzip or deflate ``Content-Encoding`` with a bound on the inflated size
(through :func:`~endpointkit.payloads.inflate`, re-exported here), for every endpointkit HTTP transport.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from endpointkit.adapters.base import RawResponse
from endpointkit.payloads import inflate

__all__ = ["FastResponse", "Headers", "inflate", "inflate_response"]

# The limits http.client applies (_MAXLINE, _MAXHEADERS).
_MAX_LINE = 65536
_MAX_HEADERS = 100


# What inflate() undoes; any other Content-Encoding is left for the payload decoder to refuse by name.
_INFLATABLE = frozenset({"gzip", "x-gzip", "deflate"})


def inflate_response(response: RawResponse, *, limit: int, setting: str) -> RawResponse:
    """``response`` with a gzip or deflate body inflated and its ``content-encoding`` header gone.

    ``content-length`` then gives the inflated length. A response without a body, or with no or another
    encoding, comes back unchanged. Pure; does not block on I/O.

    Args:
        response: as read from the wire, headers by lower-case name.
        limit: the most bytes the inflated body may hold.
        setting: how the caller raises ``limit``, named in the error
            (``"HttpTransport(max_response_bytes=...)"``).

    Raises:
        PayloadError: the body inflates past ``limit``, or is not a complete stream of its encoding.
    """
    encoding = response.headers.get("content-encoding")
    if not response.body or encoding is None or encoding.strip().lower() not in _INFLATABLE:
        return response
    body = inflate(response.body, encoding, limit=limit, setting=setting)
    headers = {name: value for name, value in response.headers.items() if name != "content-encoding"}
    headers["content-length"] = str(len(body))
    return replace(response, headers=headers, body=body)


class Headers(dict[str, str]):
    """Response headers by lower-case name; a repeated header's values joined with ", " (RFC 9110 5.3).

    Answers what ``HTTPResponse`` asks of its ``headers``: ``get`` and ``get_all`` by any case, ``items``.
    """

    @classmethod
    def parse(cls, lines: Iterable[bytes]) -> Headers:
        headers = cls()
        last: str | None = None
        for raw in lines:
            line = raw.decode("iso-8859-1").rstrip("\r\n")
            if line[:1] in (" ", "\t") and last is not None:  # obsolete line folding (RFC 9112 5.2)
                headers[last] = f"{headers[last]} {line.strip()}"
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise http.client.HTTPException(f"malformed response header line: {line[:80]!r}")
            last = name.strip().lower()
            value = value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        value = self.get(name)
        return failobj if value is None else [value]


def _header_lines(fp: BinaryIO) -> list[bytes]:
    """The header lines up to the blank line that ends them (which is consumed, not returned)."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


class FastResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` whose headers are a :class:`Headers` (see the module docstring)."""

    def begin(self) -> None:
        # Mirrors HTTPResponse.begin (CPython 3.10-3.13), with Headers.parse in place of parse_headers.
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)  # a 100 Continue's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = Headers.parse(_header_lines(self.fp))
        # HTTPResponse types these as email messages; it only ever calls get, get_all and items on them.
        self.headers = self.msg = headers
        self.chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                parsed = int(length)
            except ValueError:
                parsed = -1
            self.length = parsed if parsed >= 0 else None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
