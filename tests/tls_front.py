"""A TLS-terminating TCP front for tests: what a Gateway does for an HTTPS endpoint, on loopback.

It listens on ``127.0.0.1`` (a free port), completes the TLS handshake with the certificate it is given, and
forwards the decrypted bytes both ways to a backend. ALPN offers ``h2`` and ``http/1.1``: a client that negotiates
``h2`` (gRPC) goes to ``h2_backend``, any other to ``backend``, as a Gateway sends gRPC and HTTP/1.1 to their own
routes. It runs an asyncio loop in a thread of its own (one ``SSLObject`` per connection driven from that one
thread, which OpenSSL needs); ``close()`` stops it and every connection.

    with TlsFront(certificate_pem, key_pem, ("127.0.0.1", http_port), h2_backend=("127.0.0.1", grpc_port)) as front:
        ... https://localhost:{front.port} ...
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["TlsFront"]

_CHUNK = 256 * 1024
_START_TIMEOUT = 30.0


class TlsFront:
    """A TLS front on ``127.0.0.1:port`` forwarding to ``backend`` (``h2`` to ``h2_backend``); starts at once.

    Args:
        certificate_pem: the server certificate (and its chain), PEM.
        key_pem: its private key, PEM.
        backend: ``(host, port)`` for HTTP/1.1 and clients without ALPN.
        h2_backend: ``(host, port)`` for clients that negotiate ``h2`` (default: ``backend``).
    """

    def __init__(
        self,
        certificate_pem: str,
        key_pem: str,
        backend: tuple[str, int],
        *,
        h2_backend: tuple[str, int] | None = None,
    ) -> None:
        self.backends = {"h2": h2_backend or backend, None: backend}
        self.context = _server_context(certificate_pem, key_pem)
        #: the ALPN protocol of each accepted connection, in order (None: the client offered none we speak)
        self.protocols: list[str | None] = []
        #: the server name (SNI) each client asked for, in order, handshakes that failed included
        self.server_names: list[str | None] = []
        self.context.sni_callback = self._record_server_name
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-front", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._server is None:
            self.close()
            raise RuntimeError("the TLS front did not start listening")
        self.port: int = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Stop listening, drop every connection and stop the thread. Idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(_START_TIMEOUT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> TlsFront:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record_server_name(self, _sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.server_names.append(name)

    # ---- the loop's thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accepted, "127.0.0.1", 0, ssl=self.context)
            )
        finally:
            self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # one more turn for the transports to finish closing
        if self._server is not None:
            await self._server.wait_closed()

    async def _accepted(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            protocol = client_writer.get_extra_info("ssl_object").selected_alpn_protocol()
            self.protocols.append(protocol)
            host, port = self.backends["h2" if protocol == "h2" else None]
            backend_reader, backend_writer = await asyncio.open_connection(host, port)
            try:
                await asyncio.gather(
                    _pipe(client_reader, backend_writer, half_close=True),
                    _pipe(backend_reader, client_writer, half_close=False),
                )
            finally:
                backend_writer.close()
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # a client or backend that went away: nothing to forward any more
        except asyncio.CancelledError:
            # close() cancels the connections. Ending normally: asyncio's start_server callback reads the task's
            # exception, which raises (and is logged) for a cancelled task in Python 3.11.
            pass
        finally:
            client_writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, half_close: bool) -> None:
    """Copy ``reader`` to ``writer`` until end of stream; then half-close ``writer`` (TCP) or close it (TLS)."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        if half_close and writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()
        else:
            writer.close()


def _server_context(certificate_pem: str, key_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # load_cert_chain reads files only.
    with tempfile.TemporaryDirectory(prefix="tls-front-") as folder:
        certificate_file, key_file = Path(folder, "server.pem"), Path(folder, "server.key")
        certificate_file.write_text(certificate_pem)
        key_file.write_text(key_pem)
        context.load_cert_chain(certificate_file, key_file)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
