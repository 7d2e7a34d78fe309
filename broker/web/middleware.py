"""ASGI middleware: request body cap, security headers, an access log without query strings."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import PayloadTooLarge
from broker.metrics import Metrics

access_log = logging.getLogger("broker.access")

CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
CSP_HEADER, CSP_BYTES = b"content-security-policy", CSP.encode()
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The callback URL carries an authorization code and the console URL a sign-in token: never leak
    # them to another site through Referer.
    (b"referrer-policy", b"no-referrer"),
    (CSP_HEADER, CSP_BYTES),
]


def csp_with(*directives: str) -> str:
    """The broker's policy plus directives for one page (e.g. the SAML POST page's `script-src 'self'` and
    `form-action` of the IdP's origin). A response that carries a policy built here (one that starts with
    the broker's own) keeps it instead of the default: two policies would both apply, and the default one
    would block that page's script. Any other policy a response carries gets the default beside it, so no
    route can loosen the broker's policy by accident."""
    return "; ".join((CSP, *directives))


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

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, access: str = "all") -> None:
        self.app, self.metrics = app, metrics
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
                own = any(name.lower() == CSP_HEADER and value.startswith(CSP_BYTES) for name, value in headers)
                message["headers"] = headers + [h for h in SECURITY_HEADERS if not (own and h[0] == CSP_HEADER)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            if self.log_from is not None and (status >= self.log_from or status == 0):
                # Path only: query strings carry codes and states.
                access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed * 1000)
            if self.metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded labels
                self.metrics.observe_request(route, scope["method"], status, elapsed)
