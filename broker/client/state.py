"""What the client keeps between runs, under $STS_BROKER_HOME (else ~/.config/sts-broker and
~/.cache/sts-broker):

- config.json: the broker URL saved at login (not secret);
- session.json: the session's public id, its broker, when it ends, where its token is (not secret: the
  credential-process path reads it on every call, without touching the keyring);
- the session token itself: the OS keyring when there is a usable one (broker/client/keystore.py), else
  session.token, mode 0600;
- cache/: the per-role credential cache (broker/client/cache.py)."""

from __future__ import annotations

import json
import os
import time

from broker.client import files
from broker.client.errors import ClientError, Refused, SessionEnded

HOME_ENV = "STS_BROKER_HOME"
URL_ENV = "STS_BROKER_URL"


class Dirs:
    # Plain classes, not dataclasses, here and in cache.py: dataclasses imports inspect, a tenth of the
    # credential-process start-up budget.
    __slots__ = ("cache", "config")

    def __init__(self, config: str, cache: str) -> None:
        self.config, self.cache = config, cache


def dirs() -> Dirs:
    home = os.environ.get(HOME_ENV)
    if home:
        return Dirs(config=home, cache=os.path.join(home, "cache"))
    user = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(user, ".config")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(user, ".cache")
    return Dirs(config=os.path.join(config, "sts-broker"), cache=os.path.join(cache, "sts-broker"))


class SessionInfo:
    __slots__ = ("broker", "expires_at", "session_id", "token_store")

    def __init__(self, broker: str, session_id: str, expires_at: float, token_store: str) -> None:
        self.broker, self.session_id, self.expires_at = broker, session_id, expires_at
        self.token_store = token_store  # "keyring" or "file"

    def __repr__(self) -> str:
        return f"SessionInfo({self.broker!r}, {self.session_id!r}, expires_at={self.expires_at})"

    def ended(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def _read_json(path: str) -> dict[str, object] | None:
    raw = files.read_private(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise Refused(f"{path} is not valid JSON; remove it or run sts-broker login") from None
    if not isinstance(data, dict):
        raise Refused(f"{path} is not a JSON object; remove it or run sts-broker login")
    return data


def _write_json(path: str, data: dict[str, object]) -> None:
    files.private_dir(os.path.dirname(path))
    files.write_private(path, json.dumps(data, indent=1).encode())


def saved_broker() -> str | None:
    data = _read_json(os.path.join(dirs().config, "config.json"))
    broker = data.get("broker") if data else None
    return broker if isinstance(broker, str) else None


def broker_url(flag: str | None) -> str | None:
    """--broker, else $STS_BROKER_URL, else the one saved at login."""
    return flag or os.environ.get(URL_ENV) or saved_broker()


def save_broker(url: str) -> None:
    _write_json(os.path.join(dirs().config, "config.json"), {"broker": url})


def load_session() -> SessionInfo | None:
    path = os.path.join(dirs().config, "session.json")
    data = _read_json(path)
    if data is None:
        return None
    broker, sid, expires, store = (data.get(k) for k in ("broker", "session_id", "expires_at", "token_store"))
    if not (isinstance(broker, str) and isinstance(sid, str) and isinstance(expires, int | float)
            and store in ("keyring", "file")):
        raise Refused(f"{path} is not a session file of sts-broker; remove it or run sts-broker login")
    return SessionInfo(broker=broker, session_id=sid, expires_at=float(expires), token_store=str(store))


def current_session(broker: str | None) -> SessionInfo:
    """The live session for `broker` (None: the saved one); SessionEnded when there is none or it is over."""
    session = load_session()
    if session is None or (broker is not None and session.broker != broker.rstrip("/")):
        raise SessionEnded(broker or (session.broker if session else None), "you are not logged in")
    if session.ended():
        raise SessionEnded(session.broker)
    return session


def save_session(info: SessionInfo) -> None:
    _write_json(os.path.join(dirs().config, "session.json"), {
        "broker": info.broker, "session_id": info.session_id, "expires_at": info.expires_at,
        "token_store": info.token_store})


def forget_session() -> None:
    files.remove(os.path.join(dirs().config, "session.json"))


def check_broker_url(url: str) -> str:
    """The bearer token travels to this URL: https, or http to this machine only (the devstack, a tunnel)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not loopback):
        raise ClientError(f"broker URL {url!r}: use https:// (http:// only for 127.0.0.1 or localhost)")
    if parts.query or parts.fragment:
        raise ClientError(f"broker URL {url!r}: no query or fragment")
    return url.rstrip("/")
