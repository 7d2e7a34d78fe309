"""The live CLI session with its token, and what happens locally when the broker says it is over."""

from __future__ import annotations

from broker.client import cache, keystore, state
from broker.client.errors import SessionEnded

TYPE_CHECKING = False  # without importing typing
if TYPE_CHECKING:
    from broker.client.http import Broker


def open_session(flag: str | None) -> state.SessionInfo:
    """The session for --broker / $STS_BROKER_URL (or the saved one); SessionEnded when there is none."""
    url = state.broker_url(flag)
    return state.current_session(state.check_broker_url(url) if url else None)


def authorized(info: state.SessionInfo) -> Broker:
    """The broker client holding the session token (urllib is imported here: not on a warm cache's path)."""
    from broker.client.http import Broker

    token = keystore.load(state.dirs().config, info.broker, info.token_store)
    if token is None:
        raise SessionEnded(info.broker)
    return Broker(info.broker, token)


def ended(info: state.SessionInfo) -> None:
    """The broker refused the token: forget it and the cached credentials; keep the session file, marked
    over, so that every later command says so at once without asking the broker."""
    dirs = state.dirs()
    keystore.delete(dirs.config, info.broker, info.token_store)
    cache.clear(dirs.cache)
    state.save_session(state.SessionInfo(info.broker, info.session_id, 0.0, info.token_store))


def call(info: state.SessionInfo, method: str, path: str, body: dict[str, object] | None = None
         ) -> dict[str, object]:
    broker = authorized(info)
    try:
        return broker.call(method, path, body=body)
    except SessionEnded:
        ended(info)
        raise


def forget(info: state.SessionInfo) -> None:
    dirs = state.dirs()
    keystore.delete(dirs.config, info.broker, info.token_store)
    cache.clear(dirs.cache)
    state.forget_session()
