"""A stub STS for benchmarks and tests: answers every AssumeRoleWithWebIdentity (or AssumeRole, whichever the
Action says) after a fixed delay with valid XML (fresh credentials each call), checks nothing. GET /calls says
how many calls it answered.

    python -m broker.devstack.stub_sts --port 9500 --delay 0.05

Plain asyncio (no framework), HTTP/1.1 keep-alive, Content-Length bodies only: it must stay far cheaper
than what it stands in for, so a benchmark measures the broker. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import cast
from urllib.parse import unquote_plus

import uvloop

from broker.devstack.servers import LOOPBACK

ANSWER = (
    '<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    "<{action}Result><Credentials><AccessKeyId>{key}</AccessKeyId>"
    "<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>"
    "<Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser>"
    "<Arn>arn:aws:sts::123456789012:assumed-role/{role}/{name}</Arn><AssumedRoleId>AROASTUB:{name}</AssumedRoleId>"
    "</AssumedRoleUser>{extra}"
    "</{action}Result><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata>"
    "</{action}Response>"
)
MAX_REQUEST = 64 * 1024


# The parameters the answer echoes, read without decoding the rest of the body (mostly the token).
_PARAM = re.compile(rb"(?:^|&)(Action|RoleArn|RoleSessionName|DurationSeconds)=([^&]*)")
_ACTIONS = {"AssumeRole": "",
            "AssumeRoleWithWebIdentity": "<SubjectFromWebIdentityToken>stub</SubjectFromWebIdentityToken>"}


class StubSts:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        # Fresh credentials per call only need to be unique, not random: a per-process random prefix and
        # the call number (no urandom per call, so the stub stays cheap beside the broker it measures).
        self._secret = secrets.token_urlsafe(24)
        self._session = secrets.token_urlsafe(48)

    def answer(self, body: bytes) -> bytes:
        self.calls += 1
        params = {name.decode(): unquote_plus(value.decode("utf-8", "replace")) for name, value in _PARAM.findall(body)}
        seconds = int(params.get("DurationSeconds", "3600"))
        expiration = _expiration(int(time.time()) + seconds)
        role = params.get("RoleArn", "x/Stub").rsplit("/", 1)[-1]
        action = params.get("Action", "AssumeRoleWithWebIdentity")
        action = action if action in _ACTIONS else "AssumeRoleWithWebIdentity"
        return ANSWER.format(action=action, extra=_ACTIONS[action], key=f"ASIASTUB{self.calls:012d}",
                             secret=f"{self._secret}{self.calls:08d}",
                             session=f"{self._session}{self.calls:016d}", expiration=expiration, role=role,
                             name=params.get("RoleSessionName", "stub")).encode()


@functools.lru_cache(maxsize=64)
def _expiration(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Protocol(asyncio.Protocol):
    def __init__(self, stub: StubSts) -> None:
        self.stub, self.buffer = stub, b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_REQUEST and self.transport is not None:
            self.transport.close()
            return
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = next((int(v) for k, _, v in (line.partition(":") for line in head[1:])
                           if k.strip().lower() == "content-length"), 0)
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            if head[0].startswith("GET /calls"):
                self._reply(str(self.stub.calls).encode(), "text/plain")
            else:
                answer = self.stub.answer(body)
                asyncio.get_running_loop().call_later(self.stub.delay, self._reply, answer, "text/xml")

    def _reply(self, body: bytes, content_type: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


async def serve(stub: StubSts, port: int, started: threading.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Protocol(stub), LOOPBACK, port)
    async with server:
        if started is not None:
            started.set()
        await (stop.wait() if stop is not None else server.serve_forever())


@contextmanager
def running_stub_sts(port: int, delay: float = 0.05) -> Iterator[StubSts]:
    """In a thread of this process (tests). Benchmarks run it as its own process (see __main__)."""
    stub, started = StubSts(delay), threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(stub, port, started, stop),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("stub STS did not start")
    try:
        yield stub
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    uvloop.run(serve(StubSts(args.delay), args.port))  # the cheaper loop: the stub must not be what is measured


if __name__ == "__main__":
    main()
