"""A client home (STS_BROKER_HOME) in a temp directory, and a logged-in session written the way login does,
for the tests that need no broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.client import cache, files, keystore, state

BROKER = "http://127.0.0.1:9"  # nothing listens there: a test that reaches the broker fails loudly


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("STS_BROKER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STS_BROKER_URL", raising=False)
    yield tmp_path / "home"


@pytest.fixture
def session(home: Path) -> state.SessionInfo:
    dirs = state.dirs()
    info = state.SessionInfo(BROKER, "sid-1", time.time() + 3600, keystore.store(dirs.config, BROKER, "tok"))
    state.save_session(info)
    state.save_broker(BROKER)
    files.private_dir(dirs.cache)
    return info


def credentials(key: str, expires_at: float) -> dict[str, object]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
    return {"Version": 1, "AccessKeyId": key, "SecretAccessKey": "secret-" + key, "SessionToken": "token-" + key,
            "Expiration": stamp}


def warm(info: state.SessionInfo, role: str, key: str = "ASIACACHED", lifetime: float = 3600.0,
         left: float = 3600.0) -> str:
    """A cache entry for `role` issued `lifetime - left` seconds ago; returns its path."""
    now = time.time()
    path = cache.cache_file(state.dirs().cache, role, None)
    creds = credentials(key, now + left)
    cache.write(path, info, role, cache.Entry(creds, now + left - lifetime, now + left))
    return path
