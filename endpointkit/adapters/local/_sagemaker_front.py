"""The SageMaker protocol of a local endpoint, served on 127.0.0.1: ``GET /ping`` and ``POST /invocations``.

Triton's own SageMaker listener binds 0.0.0.0 and has no option to choose the address: ``sagemaker_address_`` is
fixed to "0.0.0.0" in https://github.com/triton-inference-server/server/blob/main/src/command_line_parser.h and
``tritonserver --help`` of 2.51 lists no address flag. So ``sagemaker_protocol: true`` runs this small front
instead: a process per variant, on a listening socket its parent bound to 127.0.0.1 and handed over, that
translates each request to Triton's v2 HTTP API on the same machine, as Triton's SageMaker front end does inside
the server (https://github.com/triton-inference-server/server/blob/main/src/sagemaker_server.cc):

- ``GET /ping``: 200 when ``/v2/health/ready`` answers 200, else 400;
- ``POST /invocations``: ``/v2/models/<default model>/infer``; a ``Content-Type`` of
  ``application/vnd.sagemaker-triton.binary+json;json-header-size=N`` becomes ``Inference-Header-Content-Length:
  N``, and a binary response gets that content type back with its own N; JSON stays ``application/json``;
- the other request headers go through (Triton's ``--http-restricted-api`` checks the endpoint key there);
- any other path: 400 with an empty body; a wrong method on a known path: 405.

:func:`spawn` starts it as a script (``python -I _sagemaker_front.py --listen-fd FD --upstream-port PORT --model
NAME``); the module imports the standard library only, so it starts without loading endpointkit. SIGTERM ends
it at once.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

__all__ = ["BINARY_JSON_PREFIX", "main", "spawn"]

# The same constant as endpointkit.payloads', repeated: this module imports the standard library only.
BINARY_JSON_PREFIX = "application/vnd.sagemaker-triton.binary+json;json-header-size="
_HEADER_LENGTH = "Inference-Header-Content-Length"
# Set here from the request itself, or meaningless one hop further.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "accept-encoding",
        "inference-header-content-length",  # ignored on Triton's SageMaker port too
    }
)


class _Upstream:
    """Keep-alive connections to tritonserver's HTTP port, one per handler thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; a kept-alive connection that the server closed meanwhile is retried once."""
        for attempt in range(2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port)
                self._local.connection = connection
            try:
                connection.request(method, path, body, dict(headers))
                response = connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                connection.close()
                self._local.connection = None
                if reused and attempt == 0:
                    continue
                raise
            return response.status, {name.lower(): value for name, value in response.getheaders()}, payload
        raise AssertionError("unreachable: the second attempt returns or raises")


class _Front(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listener: socket.socket, upstream: _Upstream, model: str) -> None:
        super().__init__(listener.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.upstream = upstream
        self.infer_path = f"/v2/models/{quote(model, safe='')}/infer"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Front

    def do_GET(self) -> None:
        if self.path == "/ping":
            try:
                status, _, _ = self.server.upstream.request("GET", "/v2/health/ready", None, {})
            except OSError:
                status = 503
            self._reply(200 if status == 200 else 400, b"", None)
        else:
            self._reply(405 if self.path == "/invocations" else 400, b"", None)

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._reply(405 if self.path == "/ping" else 400, b"", None)
            return
        try:
            body = self._read_body()
        except ValueError:
            self._error(400, "the chunked request body is malformed")
            return
        if body is None:
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _NOT_FORWARDED}
        headers["Accept-Encoding"] = "identity"  # Triton's SageMaker port never compresses
        content_type = self.headers.get("Content-Type", "")
        if BINARY_JSON_PREFIX in content_type:
            json_size = _json_header_size(content_type)
            if json_size is None:
                self._error(400, f"Unable to parse inference header size, got: {content_type}")
                return
            headers[_HEADER_LENGTH] = str(json_size)
            headers["Content-Type"] = "application/octet-stream"
        else:
            headers["Content-Type"] = "application/json"
        try:
            status, answer, payload = self.server.upstream.request(
                "POST", self.server.infer_path, body, headers
            )
        except OSError as error:
            self._error(502, f"tritonserver on port {self.server.upstream.port} did not answer: {error}")
            return
        json_size_out = answer.get(_HEADER_LENGTH.lower())
        content = f"{BINARY_JSON_PREFIX}{json_size_out}" if json_size_out is not None else "application/json"
        self._reply(status, payload, content)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "a request body needs Content-Length or chunked Transfer-Encoding")
            return None
        return self.rfile.read(int(length))

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({"error": message}).encode(), "application/json")

    def _reply(self, status: int, payload: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """No access log: the endpoint's log is Triton's."""


def _json_header_size(content_type: str) -> int | None:
    """N of ``…json-header-size=N``: leading digits, as Triton's ``std::stoi`` reads it; None when unreadable."""
    if not content_type.startswith(BINARY_JSON_PREFIX):
        return None
    rest = content_type[len(BINARY_JSON_PREFIX) :].lstrip()
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return int(rest[:digits]) if digits else None


def spawn(
    *, upstream_port: int, model: str, log_path: Path, address: str = "127.0.0.1"
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a front for tritonserver's HTTP port ``upstream_port`` in its own session; the process and its port.

    The listening socket is bound to ``address`` and listening here, then handed to the front, so its port is
    never raced for and connections made before the front runs wait in the backlog. Output goes to
    ``log_path``. Returns at once: ``GET /ping`` answers 200 once the front runs and Triton is ready.
    """
    with socket.create_server((address, 0)) as listener, log_path.open("wb") as log_stream:
        process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(Path(__file__).resolve()),
                f"--listen-fd={listener.fileno()}",
                f"--upstream-port={upstream_port}",
                f"--model={model}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=True,
        )
        return process, int(listener.getsockname()[1])


def main(argv: Sequence[str]) -> int:
    """Serve the SageMaker protocol on an inherited listening socket until the process is ended."""
    parser = argparse.ArgumentParser(prog="_sagemaker_front", description=__doc__.splitlines()[0])
    parser.add_argument("--listen-fd", type=int, required=True, help="a listening TCP socket, inherited")
    parser.add_argument(
        "--upstream-port", type=int, required=True, help="tritonserver's HTTP port on 127.0.0.1"
    )
    parser.add_argument("--model", required=True, help="the model /invocations serves")
    options = parser.parse_args(argv)
    listener = socket.socket(fileno=options.listen_fd)
    front = _Front(listener, _Upstream(options.upstream_port), options.model)
    front.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
