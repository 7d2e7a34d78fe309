"""broker.seams.uvicorn.HttpProtocol: uvicorn's protocol with one socket write per response, over real sockets.

The write counts come from a recorder between uvicorn's protocol and the event loop's real transport: it
forwards every call and only counts. The same recorder under uvicorn's own protocol counts two writes
for the same answer, so the count test fails if the joining ever stops working."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from broker.devstack.servers import LOOPBACK, asgi_server
from broker.seams.uvicorn import HOLD_MAX, HttpProtocol

BIG = 3 * HOLD_MAX + 17
WRITES: list[int] = []  # sizes of the writes that reached the real transport, in order


class _Recorder:
    """Forwards everything to the real transport; records the size of each write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RecordedJoined(HttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport))  # type: ignore[arg-type]


class RecordedUvicorn(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport))  # type: ignore[arg-type]


async def small(request: Request) -> Response:
    return JSONResponse({"ok": True, "pad": "x" * 500})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(BIG // 1000):
            yield bytes([65 + i % 26]) * 1000  # no await between chunks: all in one loop turn
        yield b"z" * (BIG % 1000)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


APP = Starlette(routes=[Route("/small", small), Route("/small", small, methods=["HEAD"]), Route("/stream", stream)])


@pytest.fixture(params=[RecordedJoined, RecordedUvicorn], ids=["joined", "uvicorn"], scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[tuple[type, int]]:
    with asgi_server(APP, protocol=request.param) as port:
        yield request.param, port


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response with a Content-Length or chunked body; what follows stays in buffer."""
    while b"\r\n\r\n" not in buffer:
        _recv_into(sock, buffer)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    if length is None:  # chunked
        chunked = bytearray()
        while True:
            while b"\r\n" not in buffer:
                _recv_into(sock, buffer)
            size_line, _, rest = bytes(buffer).partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                _recv_into(sock, buffer)
                size_line, _, rest = bytes(buffer).partition(b"\r\n")
            chunked += rest[:size]
            buffer[:] = rest[size + 2:]
            if size == 0:
                return head, bytes(chunked)
    while len(buffer) < length:
        _recv_into(sock, buffer)
    body = bytes(buffer[:length])
    buffer[:] = buffer[length:]
    return head, body


def _recv_into(sock: socket.socket, buffer: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed before the response was complete")
    buffer += data


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def test_a_response_is_one_write_where_uvicorn_makes_two(served: tuple[type, int]) -> None:
    protocol, port = served
    with _connect(port) as sock:
        buffer = bytearray()
        sock.sendall(_get("/small"))
        _read_response(sock, buffer)  # warms the route; the count is taken on the next request
        WRITES.clear()
        sock.sendall(_get("/small"))
        head, body = _read_response(sock, buffer)
    assert head.startswith(b"HTTP/1.1 200") and body.startswith(b'{"ok":true')
    expected = [len(head) + 4 + len(body)] if protocol is RecordedJoined else [len(head) + 4, len(body)]
    assert expected == WRITES


def test_keep_alive_and_pipelined_requests_answer_in_order(served: tuple[type, int]) -> None:
    _, port = served
    with _connect(port) as sock:
        buffer = bytearray()
        sock.sendall(_get("/small") + _get("/nowhere") + _get("/small", "HEAD") + _get("/small"))
        statuses = []
        for expect_body in (True, True, False, True):
            if expect_body:
                head, _ = _read_response(sock, buffer)
            else:  # HEAD: the head only, its Content-Length describes the GET
                while b"\r\n\r\n" not in buffer:
                    _recv_into(sock, buffer)
                head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                buffer[:] = rest
            statuses.append(head.split(b" ")[1])
    assert statuses == [b"200", b"404", b"200", b"200"]


def test_connection_close_sends_everything_before_closing(served: tuple[type, int]) -> None:
    _, port = served
    with _connect(port) as sock:
        sock.sendall(_get("/small", extra="Connection: close\r\n"))
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert len(body) == int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                 if line.lower().startswith(b"content-length:")))


def test_a_large_body_written_in_one_turn_arrives_whole_and_in_order(served: tuple[type, int]) -> None:
    protocol, port = served
    with _connect(port) as sock:
        buffer = bytearray()
        WRITES.clear()
        sock.sendall(_get("/stream"))
        head, body = _read_response(sock, buffer)
    expected = b"".join(bytes([65 + i % 26]) * 1000 for i in range(BIG // 1000)) + b"z" * (BIG % 1000)
    assert head.startswith(b"HTTP/1.1 200") and body == expected
    if protocol is RecordedJoined:
        # Never more than HOLD_MAX (plus the write that crossed it) held back from the transport's flow control.
        assert len(WRITES) >= BIG // HOLD_MAX and max(WRITES) <= HOLD_MAX + 1100
