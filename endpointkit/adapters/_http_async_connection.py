"""One HTTP/1.1 keep-alive connection on asyncio's protocol layer, for :mod:`endpointkit.adapters._http_async`.

:class:`Connection` is a ``BufferedProtocol``: it writes a request without joining its buffers and parses the
response as bytes arrive, into a future the request awaits.

- Writes: while the transport's own buffer is empty, the request head and the arrays' buffers leave in one
  ``socket.sendmsg`` call on the connection's socket, resumed after partial sends. When the socket's send
  buffer is full, the rest goes through the transport one slice of at most :data:`WRITE_SLICE` bytes at a time,
  each awaited until the transport drained it, so memory stays flat whatever the tensor size (the transport
  module says why not asyncio's ``writelines``, with measurements). Slices go through ``write``, since 3.12's
  ``writelines`` skipped the flow control check (https://github.com/python/cpython/issues/127655), except on
  TLS, whose transport takes a list without joining it (encryption copies anyway).
- Reads: a body of ``Content-Length`` bytes is received straight into its own ``bytearray`` (the protocol hands
  asyncio a view of it as the receive buffer); heads, chunked bodies (RFC 9112 7.1) and bodies that end with the
  connection go through a small scratch buffer.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
from collections.abc import Callable, Sequence
from typing import Literal, cast

from endpointkit.adapters._http_response import Headers
from endpointkit.adapters.base import RawResponse

__all__ = ["WRITE_SLICE", "BodyTooLarge", "Connection", "IncompleteBody", "running_loop"]

WRITE_SLICE = 256 * 1024
"""Bytes handed to the transport at a time once the socket's send buffer is full."""

# Linux refuses sendmsg with more than IOV_MAX (1024) buffers.
_MAX_BUFFERS_PER_SEND = 1024
_SCRATCH_BYTES = 16 * 1024
# Room for what http.client accepts (100 header lines of up to 64 KiB).
_MAX_SCRATCH_BYTES = 100 * 64 * 1024
_DIGITS = re.compile(r"[0-9]+")

_Phase = Literal["idle", "head", "body", "chunks", "until_close"]
_ChunkStep = Literal["size", "data", "data_end", "trailer"]


class IncompleteBody(ConnectionError):
    """The connection ended inside a response body."""

    def __init__(self, received: int, expected: int | None) -> None:
        of = "an unknown number of" if expected is None else f"{expected}"
        super().__init__(f"connection after {received} of {of} body bytes")
        self.received = received
        self.expected = expected


class BodyTooLarge(Exception):
    """The response body is over the exchange's bound; ``field`` and ``offset`` as ``PayloadError`` has them."""

    def __init__(self, what: str, *, field: str | None = None, offset: int | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.field = field
        self.offset = offset


class Connection(asyncio.BufferedProtocol):
    """One keep-alive connection over ``sock``: one exchange at a time (see the module docstring).

    Args:
        loop: the event loop the connection lives on.
        sock: the connected socket the transport wraps; kept to write with ``sendmsg`` and to close it even
            after the loop closed.
        generation: the pool generation it was opened in (a pool closed since does not take it back).
        track_open: called with ``(self, True)`` when the connection is made and ``(self, False)`` when its
            socket is closed.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        generation: int,
        track_open: Callable[[Connection, bool], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.generation = generation
        self.transport: asyncio.Transport | None = None
        #: done when the socket is closed
        self.lost: asyncio.Future[None] = loop.create_future()
        #: whether the last response ended cleanly on a connection both sides keep open
        self.reusable = False
        #: whether any byte of the current exchange's response arrived
        self.response_started = False
        self._track_open = track_open
        self._tracked_open = False
        self._direct_send = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._filled = 0
        self._searched = 0
        self._phase: _Phase = "idle"
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._method = "GET"
        self._max_body = 0
        self._status = 0
        self._headers = Headers()
        self._keep_alive = True
        self._body = bytearray()
        self._body_view = memoryview(self._body)
        self._body_filled = 0
        self._chunk_step: _ChunkStep = "size"
        self._chunk_left = 0

    # ---- the exchange --------------------------------------------------------------------------------------
    def usable(self) -> bool:
        """Idle, kept alive, and not closed by either side."""
        transport = self.transport
        return (
            self.reusable
            and self._phase == "idle"
            and transport is not None
            and not transport.is_closing()
            and not self.lost.done()
        )

    async def exchange(
        self, method: str, head: bytes, buffers: Sequence[memoryview], *, max_body: int
    ) -> RawResponse:
        """Send one request (``head``, then ``buffers``) and wait for its whole response.

        Raises:
            BodyTooLarge: the response body is over ``max_body`` bytes (the connection is then closed).
            ConnectionError, http.client.HTTPException: the connection failed or the response is malformed.
        """
        waiter: asyncio.Future[RawResponse] = self.loop.create_future()
        self._waiter = waiter
        self._method = method
        self._max_body = max_body
        self._phase = "head"
        self.reusable = False
        self.response_started = False
        try:
            await self._send([memoryview(head), *buffers])
        except BaseException:
            # The send error is the one reported; an answer or failure that lands on the waiter later is not.
            self._waiter = None
            if not waiter.cancel() and not waiter.cancelled():
                waiter.exception()
            raise
        return await waiter

    def closing_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether the connection lives on ``loop`` and is closing: ``lost`` is then done soon."""
        return self.loop is loop and self.transport is not None and self.transport.is_closing()

    def abort(self) -> None:
        """Close now, dropping anything unsent. Idempotent; works from another loop and after the loop closed."""
        self.reusable = False
        transport = self.transport
        if transport is not None:
            try:
                transport.abort()  # unregisters the socket from its loop at once, closes it on the loop's next turn
            except RuntimeError:  # the loop is closed
                pass
            else:
                if running_loop() is self.loop:
                    return
        # No turn of this connection's loop may come (closed, or not running): close the socket here.
        self.sock.close()
        self._untrack()

    async def _send(self, pieces: list[memoryview]) -> None:
        transport = self.transport
        assert transport is not None
        index = 0
        while index < len(pieces):
            if transport.is_closing():
                raise ConnectionResetError("connection closed while sending")
            if self._direct_send and transport.get_write_buffer_size() == 0:
                try:
                    sent = self.sock.sendmsg(pieces[index : index + _MAX_BUFFERS_PER_SEND])
                except (BlockingIOError, InterruptedError):
                    sent = 0
                index = _advance(pieces, index, sent)
                if index == len(pieces):
                    return
            # The socket's buffer is full (or this is TLS): hand the transport one bounded slice; it writes it
            # when the socket can take it and calls resume_writing once its buffer is empty again.
            group, index = _take_slice(pieces, index, WRITE_SLICE)
            if self._direct_send:
                for view in group:  # not writelines(): see the module docstring
                    transport.write(view)
            else:
                transport.writelines(group)
            await self._drained()

    async def _drained(self) -> None:
        if not self._write_paused:
            return
        if self.lost.done():
            raise ConnectionResetError("connection closed while sending")
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def _wake_writer(self, error: BaseException | None) -> None:
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    # ---- asyncio protocol callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._tracked_open = True
        self._track_open(self, True)
        plain = transport.get_extra_info("sslcontext") is None
        self._direct_send = plain and hasattr(self.sock, "sendmsg")  # no sendmsg on Windows
        # Plain: pause at any buffered byte, so "resumed" means empty and sendmsg may write directly again.
        # TLS: asyncio's SSL transport pauses at size >= high, so high must be above zero there.
        self.transport.set_write_buffer_limits(high=0 if plain else WRITE_SLICE, low=0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._phase == "until_close" and exc is None:
            self._finish()
        elif self._phase != "idle":
            self._fail(exc or self._ended_early())
        self._wake_writer(exc or ConnectionResetError("connection closed"))
        self._untrack()
        if not self.lost.done():
            self.lost.set_result(None)

    def eof_received(self) -> bool:
        if self._phase == "until_close":
            self._finish()
        elif self._phase != "idle":
            self._fail(self._ended_early())
        self.reusable = False
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._phase == "body":
            return self._body_view[self._body_filled :]
        return memoryview(self._scratch)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._phase == "body":
            self._body_filled += nbytes
            if self._body_filled == len(self._body):
                self._finish()
            return
        if self._phase == "idle":  # bytes nobody asked for: the connection is out of step
            self.abort()
            return
        self.response_started = True
        self._filled += nbytes
        try:
            self._parse_scratch()
            if self._filled == len(self._scratch):  # a head or a chunk line longer than the buffer so far
                self._grow_scratch()
        except (http.client.HTTPException, ValueError, BodyTooLarge) as error:
            self._fail(error)
            self.abort()

    def _untrack(self) -> None:
        if self._tracked_open:
            self._tracked_open = False
            self._track_open(self, False)

    # ---- response parsing ----------------------------------------------------------------------------------
    def _grow_scratch(self) -> None:
        if len(self._scratch) >= _MAX_SCRATCH_BYTES:
            raise http.client.HTTPException(f"response head or chunk line over {_MAX_SCRATCH_BYTES} bytes")
        grown = bytearray(len(self._scratch) * 2)
        grown[: self._filled] = self._scratch[: self._filled]
        self._scratch = grown

    def _parse_scratch(self) -> None:
        consumed = 0
        while consumed < self._filled and self._phase not in ("idle", "body"):
            if self._phase == "head":
                end = self._scratch.find(b"\r\n\r\n", max(consumed, self._searched - 3), self._filled)
                if end < 0:
                    self._searched = self._filled
                    break
                phase = self._start_response(bytes(self._scratch[consumed:end]))
                consumed = end + 4
                self._searched = consumed
                if phase == "body":
                    consumed += self._fill_body(consumed)
            elif self._phase == "chunks":
                consumed = self._parse_chunks(consumed)
                if self._phase == "chunks":
                    break
            else:  # until_close
                self._append_body(self._scratch[consumed : self._filled])
                consumed = self._filled
        remaining = self._filled - consumed
        if self._phase == "idle":
            if remaining:
                self.reusable = False  # bytes after the response: the server is out of step
            self._filled = self._searched = 0
        elif consumed:
            self._scratch[:remaining] = self._scratch[consumed : self._filled]
            self._filled = remaining
            self._searched = max(0, self._searched - consumed)

    def _start_response(self, head: bytes) -> _Phase:
        """Take in a status line and headers; the phase the body is read in (``head`` after an interim 1xx)."""
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].decode("iso-8859-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not _DIGITS.fullmatch(code) or rest[3:4] not in ("", " "):
            raise http.client.BadStatusLine(lines[0][:80].decode("iso-8859-1"))
        status = int(code)
        if 100 <= status < 200:  # an interim answer: the real one follows on the same connection
            return "head"
        headers = Headers.parse(lines[1:])
        tokens = {token.strip().lower() for token in (headers.get("connection") or "").split(",")}
        self._status, self._headers = status, headers
        self._keep_alive = "close" not in tokens and (version != "HTTP/1.0" or "keep-alive" in tokens)
        transfer = (headers.get("transfer-encoding") or "").lower()
        length = headers.get("content-length")
        self._body = bytearray()
        if self._method == "HEAD" or status in (204, 304):
            self._begin_body(0)
        elif transfer:
            if transfer.rsplit(",", 1)[-1].strip() != "chunked":
                raise http.client.HTTPException(f"unsupported Transfer-Encoding {transfer!r}")
            self._chunk_step, self._phase = "size", "chunks"
        elif length is not None:
            values = {value.strip() for value in length.split(",")}
            if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
                raise http.client.HTTPException(f"bad Content-Length {length!r}")
            size = int(values.pop())
            if size > self._max_body:
                raise BodyTooLarge(
                    f"the response has Content-Length {size:,}, over the transport's bound of "
                    f"{self._max_body:,} bytes",
                    field="Content-Length",
                )
            self._begin_body(size)
        else:
            self._keep_alive = False
            self._phase = "until_close"
        return self._phase

    def _begin_body(self, length: int) -> None:
        self._body = bytearray(length)
        self._body_view = memoryview(self._body)
        self._body_filled = 0
        self._phase = "body"
        if not length:
            self._finish()

    def _fill_body(self, start: int) -> int:
        """Move body bytes that arrived with the head into the body; how many were taken."""
        taken = min(self._filled - start, len(self._body))
        self._body_view[:taken] = self._scratch[start : start + taken]
        self._body_filled = taken
        if taken == len(self._body):
            self._finish()
        return taken

    def _append_body(self, data: bytearray) -> None:
        """Add to a body without ``Content-Length``, within the exchange's bound."""
        if len(self._body) + len(data) > self._max_body:
            raise BodyTooLarge(
                f"the response body passed the transport's bound of {self._max_body:,} bytes "
                "(reading stopped there)",
                offset=self._max_body,
            )
        self._body += data

    def _parse_chunks(self, position: int) -> int:
        """Decode chunked framing from the scratch buffer; the position reached."""
        scratch, end = self._scratch, self._filled
        while position < end:
            if self._chunk_step == "data":
                taken = min(self._chunk_left, end - position)
                self._append_body(scratch[position : position + taken])
                position += taken
                self._chunk_left -= taken
                if not self._chunk_left:
                    self._chunk_step = "data_end"
                continue
            line_end = scratch.find(b"\r\n", position, end)
            if line_end < 0:
                return position
            line = bytes(scratch[position:line_end])
            position = line_end + 2
            if self._chunk_step == "size":
                try:
                    self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise http.client.HTTPException(f"bad chunk size line {line[:40]!r}") from None
                self._chunk_step = "data" if self._chunk_left else "trailer"
            elif self._chunk_step == "data_end":
                if line:
                    raise http.client.HTTPException("chunk data longer than its size")
                self._chunk_step = "size"
            elif not line:  # the blank line after the trailers ends the message
                self._finish()
                return position
        return position

    def _finish(self) -> None:
        waiter = self._waiter
        self._phase = "idle"
        self._waiter = None
        self.reusable = self._keep_alive
        body, self._body = self._body, bytearray()
        self._body_view = memoryview(self._body)
        if waiter is not None and not waiter.done():
            waiter.set_result(RawResponse(self._status, self._headers, body))

    def _fail(self, error: BaseException) -> None:
        waiter = self._waiter
        self._phase = "idle"
        self._waiter = None
        self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _ended_early(self) -> ConnectionError:
        if self._phase == "head" and not self.response_started:
            return http.client.RemoteDisconnected("the server closed the connection without answering")
        if self._phase == "body":
            return IncompleteBody(self._body_filled, len(self._body))
        return IncompleteBody(len(self._body), None)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _advance(pieces: list[memoryview], index: int, sent: int) -> int:
    """Skip what a send took from ``pieces[index:]``; a partly sent piece keeps its unsent tail."""
    while sent and index < len(pieces):
        piece = pieces[index]
        if sent >= piece.nbytes:
            sent -= piece.nbytes
            index += 1
        else:
            pieces[index] = piece[sent:]
            sent = 0
    return index


def _take_slice(pieces: list[memoryview], index: int, budget: int) -> tuple[list[memoryview], int]:
    """Views of at most ``budget`` bytes from ``pieces[index:]`` (never joined); the index after them."""
    group: list[memoryview] = []
    while index < len(pieces) and budget:
        piece = pieces[index]
        if piece.nbytes > budget:
            group.append(piece[:budget])
            pieces[index] = piece[budget:]
            return group, index
        group.append(piece)
        budget -= piece.nbytes
        index += 1
    return group, index
