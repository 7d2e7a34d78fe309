"""ASGI middleware: request body cap, security headers, an access log without query strings, and the 500 page
of an unexpected exception answered inside them (so it carries the security headers too)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import PayloadTooLarge
from broker.metrics import Metrics
from broker.web.csp import CSP, FIXED
from broker.web.request_id import SCOPE_KEY as REQUEST_ID_KEY

access_log = logging.getLogger("broker.access")

CSP_HEADER = b"content-security-policy"
FIXED_BYTES = FIXED.encode()


def security_headers(csp: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        # The callback URL carries an authorization code and the console URL a sign-in token: never leak
        # them to another site through Referer.
        (b"referrer-policy", b"no-referrer"),
        (CSP_HEADER, csp.encode()),
    ]


class BodyLimit:
    """Refuse bodies over max_bytes. Raised inside receive(), so the route's error handler answers 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if not declared.isdigit() or int(declared) > self.max_bytes:
                raise PayloadTooLarge(f"content-length {declared[:20]!r} over {self.max_bytes}")
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge(f"body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    """Security headers on every response; the access log line and the request metric."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, access: str = "all", csp: str = CSP) -> None:
        self.app, self.metrics = app, metrics
        self.headers = security_headers(csp)
        self.log_from = {"all": 0, "errors": 400}.get(access)  # the lowest status logged; None: nothing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                # A page's own policy (csp.csp_with) replaces the default: two policies would both apply. Any
                # other gets the default beside it, so no route can loosen the broker's policy by accident.
                own = any(name.lower() == CSP_HEADER and value.startswith(FIXED_BYTES) for name, value in headers)
                message["headers"] = headers + [h for h in self.headers if not (own and h[0] == CSP_HEADER)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            if self.log_from is not None and (status >= self.log_from or status == 0):
                # Path only: query strings carry codes and states.
                access_log.info("%s %s %s %.1fms %s", scope["method"], scope["path"], status, elapsed * 1000,
                                scope.get(REQUEST_ID_KEY, "-"))
            if self.metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded labels
                self.metrics.observe_request(route, scope["method"], status, elapsed)


class Unexpected:
    """The innermost middleware: an exception no handler took becomes `handler`'s answer here, inside
    SecurityHeaders. (Starlette answers it in ServerErrorMiddleware, outside every middleware: that 500 would
    carry no security header and no access log line.) Once a response has started nothing can be sent."""

    def __init__(self, app: ASGIApp, handler: Callable[[Request, Exception], Awaitable[Response]]) -> None:
        self.app, self.handler = app, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope, receive), exc)
            await response(scope, receive, send)
