"""FastResponse reads a response as http.client's own HTTPResponse does, headers excepted (a dict by lower-case name)."""

from __future__ import annotations

import gzip
import http.client
import io

import pytest

from endpointkit.adapters._http_response import FastResponse, Headers, inflate_response
from endpointkit.adapters.base import RawResponse
from endpointkit.errors import PayloadError


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))  # type: ignore[arg-type]


def _both(raw: bytes, method: str = "POST") -> tuple[FastResponse, http.client.HTTPResponse]:
    ours = FastResponse(_Socket(raw), method=method)  # type: ignore[arg-type]
    theirs = http.client.HTTPResponse(_Socket(raw), method=method)  # type: ignore[arg-type]
    ours.begin()
    theirs.begin()
    return ours, theirs


RESPONSES = {
    "triton binary": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Inference-Header-Content-Length: 5\r\nContent-Length: 9\r\n\r\n{}   abcd"
    ),
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    "connection close": b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbad",
    "no length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    "http/1.0 keep-alive": b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
    "100 continue first": (
        b"HTTP/1.1 100 Continue\r\nX-Ignored: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    ),
    "no content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nbody",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nbody",
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_reads_like_http_client(name: str) -> None:
    ours, theirs = _both(RESPONSES[name])
    assert (ours.status, ours.reason, ours.version) == (theirs.status, theirs.reason, theirs.version)
    assert (ours.chunked, ours.length, ours.will_close) == (theirs.chunked, theirs.length, theirs.will_close)
    assert dict(ours.headers.items()) == {name.lower(): value for name, value in theirs.getheaders()}
    assert ours.read() == theirs.read()


def test_head_has_no_body() -> None:
    ours, theirs = _both(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method="HEAD")
    assert ours.length == theirs.length == 0


def test_repeated_and_folded_headers() -> None:
    ours, _ = _both(
        b"HTTP/1.1 200 OK\r\nVia: a\r\nvia: b\r\nX-Long: one\r\n  two\r\nContent-Length: 0\r\n\r\n"
    )
    assert ours.getheader("VIA") == "a, b"
    assert ours.headers.get("x-long") == "one two"
    assert ours.getheader("missing", "default") == "default"


def test_header_lines_are_bounded() -> None:
    too_many = b"".join(b"X-%d: 1\r\n" % index for index in range(101))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        _both(b"HTTP/1.1 200 OK\r\n" + too_many + b"\r\n")
    with pytest.raises(http.client.LineTooLong):
        _both(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n")


def test_a_line_without_a_colon_is_malformed() -> None:
    response = FastResponse(_Socket(b"HTTP/1.1 200 OK\r\nnot a header\r\n\r\n"))  # type: ignore[arg-type]
    with pytest.raises(http.client.HTTPException, match="malformed response header line"):
        response.begin()


def test_headers_parse_decodes_latin_1() -> None:
    headers = Headers.parse([b"X-Name: caf\xe9\r\n"])
    assert headers == {"x-name": "caf\u00e9"} and headers.get("X-NAME") == "caf\u00e9"


def test_inflate_response_inflates_and_drops_the_encoding() -> None:
    headers = {"content-encoding": "GZip", "content-length": "99", "x-other": "kept"}
    inflated = inflate_response(
        RawResponse(200, headers, gzip.compress(b"payload" * 100)), limit=700, setting="knob"
    )
    assert bytes(inflated.body) == b"payload" * 100
    assert inflated.headers == {"content-length": "700", "x-other": "kept"}
    assert inflated.status == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-encoding": "identity"}, {"content-encoding": "br"}],
    ids=["none", "identity", "other"],
)
def test_inflate_response_leaves_other_encodings_to_the_decoder(headers: dict[str, str]) -> None:
    raw = RawResponse(200, headers, b"body")
    assert inflate_response(raw, limit=10, setting="knob") is raw


def test_inflate_response_leaves_an_empty_body_alone() -> None:
    raw = RawResponse(204, {"content-encoding": "gzip"}, b"")
    assert inflate_response(raw, limit=10, setting="knob") is raw


def test_inflate_response_is_bounded() -> None:
    raw = RawResponse(200, {"content-encoding": "gzip"}, gzip.compress(bytes(10_000)))
    with pytest.raises(PayloadError, match="inflates past 9,999 bytes.*raise the bound with knob"):
        inflate_response(raw, limit=9_999, setting="knob")
