"""The broker's keys as they are now: broker.yaml's `keys:`, or the rotation state file once there is one,
looked at again every `poll` seconds so every replica follows a rotation step without a restart.

Signers and certificates are cached by source (key_sources.py, saml_idp.py), so a reload re-reads only the
small state file; a key that did not change is not loaded again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.issuers.key_state import read_state
from broker.issuers.saml_idp import SamlKey, load_saml_keys
from broker.issuers.signing import KeyRing
from broker.settings import KeyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeySnapshot:
    ring: KeyRing
    saml_keys: list[SamlKey]
    saml_key: SamlKey | None


def _snapshot(configs: list[KeyConfig]) -> KeySnapshot:
    saml_keys, saml_key = load_saml_keys(configs)
    return KeySnapshot(KeyRing.load(configs), saml_keys, saml_key)


class LiveKeys:
    """Raises ConfigError at construction when a key cannot be loaded; later reloads that fail keep the keys
    in use (a half-written rotation must not stop signing) and are retried at the next poll."""

    def __init__(self, configs: list[KeyConfig], state_file: Path | None = None, *, poll: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._configs, self._state_file, self._poll, self._clock = configs, state_file, poll, clock
        self._lock = threading.Lock()
        self._seen = self._stamp()
        self._checked = clock()
        self._now = self._load()

    def __repr__(self) -> str:
        return f"LiveKeys({self._now.ring!r}, state_file={self._state_file})"

    def _stamp(self) -> tuple[int, int] | None:
        if self._state_file is None:
            return None
        try:
            stat = self._state_file.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def _load(self) -> KeySnapshot:
        state = read_state(self._state_file) if self._state_file is not None else None
        return _snapshot(state.configs() if state is not None else self._configs)

    def current(self) -> KeySnapshot:
        if self._state_file is None or self._clock() - self._checked < self._poll:
            return self._now
        with self._lock:
            self._checked = self._clock()
            stamp = self._stamp()
            if stamp != self._seen:
                try:
                    self._now = self._load()
                    self._seen = stamp
                except Exception as exc:  # a broken step keeps the keys in use
                    log.warning("signing keys not reloaded from %s: %s", self._state_file, exc)
        return self._now

    # What the issuers and routes ask for.
    @property
    def active_kid(self) -> str:
        return self.current().ring.active_kid

    def jwks(self) -> dict[str, Any]:
        return self.current().ring.jwks()

    def sign(self, claims: dict[str, Any]) -> str:
        return self.current().ring.sign(claims)

    @property
    def remote(self) -> bool:
        return self.current().ring.remote

    def saml_keys(self) -> list[SamlKey]:
        return self.current().saml_keys

    def saml_key(self) -> SamlKey | None:
        return self.current().saml_key
