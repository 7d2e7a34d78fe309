"""Readiness during a graceful shutdown: once `sts-broker serve` gets SIGTERM, `/readyz` answers 503 at once
(load balancers and Kubernetes stop sending new requests) while every other request is still served, and
each answer carries `Connection: close` so clients move their kept-alive connections to another replica
before the listener closes. The signal handling itself is uvicorn's (broker/seams/uvicorn.py,
`DrainingServer`); this is the ASGI side, a wrapper around the app that costs one attribute read per
request while the process is not shutting down."""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any

READINESS_PATH = "/readyz"
DRAINING_BODY = orjson.dumps({"ready": False, "checks": {"shutdown": "draining"}})


class ShutdownGate:
    """The app as uvicorn serves it; `start_draining()` is called from the signal handler (it only sets a flag,
    which is safe there)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.draining = False

    def start_draining(self) -> None:
        self.draining = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.draining or scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == READINESS_PATH:
            await _not_ready(send)
        else:
            await self.app(scope, receive, _closing(send))


async def _not_ready(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(DRAINING_BODY)).encode()),
        (b"cache-control", b"no-store"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": DRAINING_BODY})


def _closing(send: Send) -> Send:
    async def send_closing(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)
    return send_closing
