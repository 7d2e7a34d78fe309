"""uvicorn's internals (the one module that reaches them): the HTTP/1.1 protocol `sts-broker serve` runs.

`HttpProtocol` subclasses uvicorn's `HttpToolsProtocol` (not a public API: its constructor, `connection_made`,
`data_received`, the httptools callbacks `on_message_begin` / `on_headers_complete` and the attributes
`transport`, `loop`, `server_state`, `connections`, `headers`, `url` are uvicorn's own) for two things
uvicorn does not offer with httptools: bounded request heads (size, field count, time: a security limit)
and one socket write per response (speed); and `DrainingServer`, a subclass of uvicorn's `Server` (its
`handle_exit` signal handler, `on_tick`, `should_exit`, `_captured_signals` and `timeout_graceful_shutdown`
are uvicorn's own) for a drain before the graceful shutdown (tests/deploy/test_graceful_shutdown.py).
tests/test_server_protocol.py and
tests/security/test_web_limits.py prove both over real sockets against uvicorn's own protocol;
tests/test_seam_pins.py pins the versions below. Upgrading: docs/upgrade-checklist.md.

uvicorn writes a response's head as soon as the app sends `http.response.start`, and its body with the
next message: two send() calls, two TCP segments, for every answer. Over loopback each send also runs the
receiver's side of TCP in the sender's time, so the second one is most of a syscall's cost again
(py-spy under the token-exchange bench: the two writes were 10.5% of the broker's time). Here the
writes of one event-loop turn are joined and sent once, at the end of that turn: the same bytes, in the
same order, one turn later at most (measured under bench/token_exchange.py, same run, alternating: broker
CPU per exchange 395 -> 318 us with STS calls, 200 -> 153 us from the credential cache; the bare endpoint
133 -> 103 us; and by bench/seams.py, the seam against itself with writes not joined, server thread CPU
per request under wrk -c32: 10-13% less). Everything else is uvicorn's own protocol. The broker serves no
WebSockets: `ws="none"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The releases this module was read against; any other installed release fails tests/test_seam_pins.py.
WRITTEN_FOR = {"uvicorn": "0.54.0", "httptools": "0.9.0"}

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
# trickling bytes (slowloris) is cut off instead of holding a connection for ever. Checked by one sweep
# per server every SWEEP_INTERVAL (not a timer per request: arming and cancelling one cost more than the
# rest of the head's handling).
HEAD_TIMEOUT = 10.0
SWEEP_INTERVAL = 1.0
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"content-length: 32\r\nconnection: close\r\n\r\nRequest header fields too large.")


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops parsing (uvicorn's own 400 then finds the connection
    closing and is dropped); the 431 is already written."""


class _HeadSweep:
    """Closes the connections of one server whose head has been arriving for longer than HEAD_TIMEOUT.
    Runs while the server has connections; the next connection starts it again."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop, self.connections = loop, connections
        self.handle: asyncio.TimerHandle | None = None

    def ensure(self) -> None:
        if self.handle is None:
            self.handle = self.loop.call_later(SWEEP_INTERVAL, self.sweep)

    def sweep(self) -> None:
        self.handle = None
        deadline = self.loop.time() - HEAD_TIMEOUT
        for protocol in list(self.connections):
            if isinstance(protocol, HttpProtocol) and protocol.head_started < deadline:
                protocol.head_timed_out()
        if self.connections:
            self.ensure()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over `_JoinedWrites`: `uvicorn.run(..., http=HttpProtocol)`; bounded
    request heads (size, field count, time)."""

    # When the head being received began (loop time); infinity while none is (a request being handled,
    # an idle keep-alive connection: uvicorn's keep-alive timeout covers that).
    head_started = math.inf
    _unparsed = 0  # bytes received while a head was incomplete (httptools holds a header until it ends)
    _read = 0  # the size of the read being parsed
    join_writes = True  # False only in bench/seams.py, which measures the head limits alone against this

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        joined = _JoinedWrites(transport, self.loop) if self.join_writes else transport
        super().connection_made(joined)  # type: ignore[arg-type]
        self.head_started = self.loop.time()
        sweeper: _HeadSweep | None = getattr(self.server_state, "head_sweep", None)
        if sweeper is None:
            sweeper = _HeadSweep(self.loop, self.connections)
            self.server_state.head_sweep = sweeper  # type: ignore[attr-defined]
        sweeper.ensure()

    def head_timed_out(self) -> None:
        self.head_started = math.inf
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._read = len(data)
        super().data_received(data)
        if self.head_started != math.inf:  # still in a head: one endless header is caught here
            self._unparsed += self._read
            if self._unparsed > MAX_HEAD_BYTES:
                self._refuse_head()

    def _refuse_head(self) -> None:
        self.head_started = math.inf
        if not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unparsed = 0
        if self.head_started == math.inf:  # a keep-alive connection's next request
            self.head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        self.head_started = math.inf
        headers = self.headers
        # The head is at most what was received since it began; only when that could exceed the limit is
        # it measured (a read may carry the body too).
        if len(headers) > MAX_HEADER_FIELDS or (self._unparsed + self._read > MAX_HEAD_BYTES and len(self.url)
                                                 + sum(len(n) + len(v) for n, v in headers) > MAX_HEAD_BYTES):
            self._refuse_head()
            raise HeadTooLarge  # httptools stops here: no request is started
        super().on_headers_complete()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first SIGTERM (or SIGINT) starts a drain instead of the shutdown.

    uvicorn on a signal closes its listener at once, then gives connections `timeout_graceful_shutdown` to
    finish. A load balancer keeps sending to a replica until its health check fails, so here the signal first
    calls `on_draining` (the app's readiness goes 503), keeps the listener open for `drain` seconds, and only
    then lets uvicorn's own shutdown run: listener closed, idle connections closed, requests in flight given
    the deadline. A second signal during the drain ends the drain at once (uvicorn's rules from there: a
    further SIGINT forces the exit). The signal is still recorded in `_captured_signals`, so uvicorn re-raises
    it once shut down and a server started before this one (the metrics listener) stops after it."""

    def __init__(self, config: uvicorn.Config, drain: float, on_draining: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain, self.on_draining = drain, on_draining
        self.drain_ends: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_ends is None and not self.should_exit:
            self.drain_ends = time.monotonic() + self.drain
            self._captured_signals.append(sig)
            self.on_draining()  # sets a flag: safe in a signal handler
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        # uvicorn's main loop calls this every 0.1 s and shuts down once it returns True.
        if self.drain_ends is not None and time.monotonic() >= self.drain_ends:
            self.should_exit = True
        return await super().on_tick(counter)


@contextlib.contextmanager
def exit_code_0_after_signal() -> Iterator[None]:
    """While the servers run, the handlers uvicorn restores when it stops are no-ops.

    uvicorn, once shut down by a signal, re-raises it against the handler it found (capture_signals): with the
    default handler the process then dies of its own SIGTERM (exit status 143, -15 to Popen) after a clean
    shutdown, which a supervisor reads as a crash. The no-op outermost handler makes a clean shutdown exit 0."""
    def ignore(sig: int, frame: FrameType | None) -> None:
        return None

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
