"""ASGI middleware: every request gets an id (broker/request_ids.py). A trusted proxy's (the load balancers of
`serve --forwarded-allow-ips`) well-formed X-Request-Id is kept, so its logs and the broker's share one id;
from any other peer, or malformed, the header is ignored and the broker makes its own: a client must not be
able to choose the id of its own requests' audit events (to collide with another person's, or to forge a
line into a log). The id goes back in X-Request-Id on every response."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker import request_ids
from broker.web.proxy import IpNetwork, parse_hop

SCOPE_KEY = "broker.request_id"
HEADER = b"x-request-id"


def request_id_of(scope: Scope) -> str | None:
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


class RequestId:
    """Outermost: it sees the TCP peer before ForwardedFor replaces it with the forwarded client."""

    def __init__(self, app: ASGIApp, trusted: Iterable[IpNetwork] = ()) -> None:
        self.app, self.trusted = app, tuple(trusted)

    def _from_proxy(self, scope: Scope) -> str | None:
        if not self.trusted or not scope.get("client"):
            return None
        peer = parse_hop(str(scope["client"][0]))
        if peer is None or not any(peer in net for net in self.trusted):
            return None
        values = [value for name, value in scope["headers"] if name == HEADER]
        return request_ids.accepted(values[0]) if len(values) == 1 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self._from_proxy(scope) or request_ids.new_id()
        scope[SCOPE_KEY] = rid
        # Not reset afterwards: the server runs each request in a task of its own, and the handler of an
        # unexpected error (outside this middleware) still audits with it.
        request_ids.current.set(rid)
        header = (HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append(header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
