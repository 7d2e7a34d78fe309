"""The state store asked once at start-up. A setting that can never work (a wrong password, an ACL user without
the commands, an untrusted certificate, TLS toward a plain port or plain TCP toward a TLS port, a Sentinel
service nobody knows) stops the start with a clear message. A store that is only down (refused, timed out)
does not: the broker starts, /readyz answers 503 until the store answers, and it recovers by itself."""

from __future__ import annotations

import logging

from broker.errors import ConfigError, StoreUnavailable
from broker.store import StateStore

log = logging.getLogger(__name__)

# (what the failure says, the fix); matched against the failure's text, which holds codes, never secrets.
_FATAL = (
    ("WRONGPASS", "Redis refused the user name or password: check store.username / store.password (or the URL)"),
    ("NOAUTH", "Redis wants a password: set store.password (and store.username for an ACL user)"),
    ("NOPERM", "the ACL user may not run the store's commands: grant it ~PREFIX* and +@read +@write "
               "+@scripting +ping (+cluster|slots in cluster mode)"),
    ("SSLCertVerificationError", "the server's certificate is not trusted: set store.tls.ca_file to its CA, "
                                 "or store.tls.server_name to the name it was issued for"),
    ("WRONG_VERSION_NUMBER", "TLS spoken to a port without TLS: use redis:// (or the server's TLS port)"),
    ("TLS handshake not answered", "no TLS handshake from the server: a port without TLS? use redis:// (or "
                                   "the server's TLS port)"),
    ("not a cluster", "the server is not in cluster mode: use redis:// or rediss:// for it"),
    ("a cluster node", "the server is a cluster node: use redis+cluster:// or rediss+cluster://"),
    ("do not know the service", "the sentinels monitor no such service: check the URL's /service_name"),
)
_PLAIN_TO_TLS = "the server closed the connection at once: a TLS port spoken to without TLS? use rediss://"


async def check_at_start(store: StateStore, url: str) -> None:
    """Raise ConfigError for a store setting that cannot work; log (and go on) when the store is only down."""
    try:
        await store.ping()
    except StoreUnavailable as exc:
        detail = exc.detail
        for code, fix in _FATAL:
            if code in detail:
                raise ConfigError([f"store: {detail}: {fix}"]) from None
        if detail.endswith("connection lost") and not url.lower().startswith("rediss"):
            raise ConfigError([f"store: {detail}: {_PLAIN_TO_TLS}"]) from None
        log.warning("state store not reachable at start-up (starting anyway, /readyz is 503 until it is): %s",
                    detail)
