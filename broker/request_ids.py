"""The id of the request being served: in every audit event it causes, in the access log line, in the response's
X-Request-Id and on its error page, so one id joins them all (and the load balancer's logs, when it sent one).

Set by the web layer (broker/web/request_id.py) in the request's own context; audit events read it from here, so
no code between the route and the audit log passes it along."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

MAX_LENGTH = 128
# What a proxy's id may be made of (UUIDs, AWS trace ids `Root=1-...`, hex, base64url): nothing that can end a
# header or log line, break out of JSON or HTML, or smuggle a second field.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")  # 128: MAX_LENGTH

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_id() -> str:
    return secrets.token_hex(16)


def accepted(value: bytes | None) -> str | None:
    """A proxy's X-Request-Id if it is well-formed, else None (and the broker makes its own)."""
    if value is None or len(value) > MAX_LENGTH:
        return None
    text = value.decode("latin-1")
    return text if _ACCEPTED.fullmatch(text) else None
