"""The HTTP/1.1 protocol `sts-broker serve` runs: uvicorn's httptools protocol, one socket write per response.

uvicorn writes a response's head as soon as the app sends `http.response.start`, and its body with the
next message: two send() calls, two TCP segments, for every answer. Over loopback each send also runs the
receiver's side of TCP in the sender's time, so the second one is most of a syscall's cost again
(py-spy under the token-exchange bench: the two writes were 10.5% of the broker's time). Here the
writes of one event-loop turn are joined and sent once, at the end of that turn: the same bytes, in the
same order, one turn later at most (measured under bench/token_exchange.py, same run, alternating: broker
CPU per exchange 395 -> 318 us with STS calls, 200 -> 153 us from the credential cache; the bare endpoint
133 -> 103 us). Everything else is uvicorn's own protocol. The broker serves no WebSockets: `ws="none"`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Past this many held bytes the writes go out at once, so the transport's own flow control (pause_writing
# past its high-water mark) still sees a large body written within one turn.
HOLD_MAX = 64 * 1024


class _JoinedWrites:
    """A transport that holds what is written during one loop turn and writes it in one call.

    Only what uvicorn's protocol calls is here; a close, an EOF or a size query first sends what is held,
    so nothing is reordered or lost, and an abort drops it as an abort drops the transport's own buffer."""

    __slots__ = ("_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))  # a bytearray or memoryview is copied: its owner may reuse it
        self._size += len(data)
        if self._size > HOLD_MAX:
            self._flush()

    def _flush(self) -> None:
        if self._held:
            held, self._held, self._size = self._held, [], 0
            if not self._transport.is_closing():
                self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()


# A request head (request line and headers) is bounded: httptools itself takes any size (a 10 MB header
# was read whole) and any number of fields, and every field is kept in the ASGI scope. Past either limit:
# 431 and the connection closed. Cookies and a bearer token fit well within these.
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100
# A head must arrive whole within this long after the connection opens or the request begins; a client
# trickling bytes (slowloris) is cut off instead of holding a connection for ever.
HEAD_TIMEOUT = 10.0
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"content-length: 32\r\nconnection: close\r\n\r\nRequest header fields too large.")


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops parsing (uvicorn's own 400 then finds the connection
    closing and is dropped); the 431 is already written."""


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over `_JoinedWrites`: `uvicorn.run(..., http=HttpProtocol)`; bounded
    request heads (size, field count, time)."""

    _head_bytes = 0
    _head_fields = 0
    _head_timer: asyncio.TimerHandle | None = None
    # Bytes received while a head is incomplete. httptools holds a header's value until it ends, so one
    # endless header is counted here, not in on_header; a read is at most 256 KiB (asyncio and uvloop).
    _unparsed = 0
    _in_head = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head:
            self._unparsed += len(data)
            if self._unparsed > MAX_HEAD_BYTES:
                self._refuse_head()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_fields = self._unparsed = 0
        self._in_head = True
        if self._head_timer is None:  # a keep-alive connection's next request
            self._arm_head_timer()

    def _refuse_head(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        """A head that arrived within one read is measured here, once (cheaper than a check per field)."""
        self._disarm_head_timer()
        self._in_head = False
        headers = self.headers
        if len(headers) > MAX_HEADER_FIELDS or \
                len(self.url) + sum(len(name) + len(value) for name, value in headers) > MAX_HEAD_BYTES:
            self._refuse_head()
            raise HeadTooLarge  # httptools stops here: no request is started
        super().on_headers_complete()
