"""Where the session token lives: the OS keyring (macOS Keychain, Secret Service, Windows Credential Locker)
when the `keyring` package is importable and has a usable backend, else a 0600 file. Only login, logout and
a credential refresh read it; a warm credential-process never does (keyring start-up costs tens of ms)."""

from __future__ import annotations

import contextlib
import os

from broker.client import files
from broker.client.errors import ClientError

TYPE_CHECKING = False  # without importing typing
if TYPE_CHECKING:
    from typing import Any

SERVICE = "sts-broker"


def _keyring() -> Any | None:
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
        from keyring.errors import KeyringError  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except KeyringError:
        return None
    # keyring answers with its "fail" backend (priority 0) when nothing real is there, and a "null" one
    # when the user disabled it: neither stores anything.
    name = type(backend).__module__
    if getattr(backend, "priority", 0) <= 0 or name.endswith((".fail", ".null")):
        return None
    return keyring


def _token_file(config_dir: str) -> str:
    return os.path.join(config_dir, "session.token")


def store(config_dir: str, broker: str, token: str) -> str:
    """Keep `token`; returns where ("keyring" or "file")."""
    keyring = _keyring()
    if keyring is not None:
        # A locked or broken keyring: the 0600 file below is still private.
        with contextlib.suppress(Exception):
            keyring.set_password(SERVICE, broker, token)
            files.remove(_token_file(config_dir))
            return "keyring"
    files.private_dir(config_dir)
    files.write_private(_token_file(config_dir), token.encode())
    return "file"


def load(config_dir: str, broker: str, where: str) -> str | None:
    if where == "keyring":
        keyring = _keyring()
        if keyring is None:
            raise ClientError("the session token is in the OS keyring, which is not available now")
        token = keyring.get_password(SERVICE, broker)
        return token if isinstance(token, str) and token else None
    raw = files.read_private(_token_file(config_dir))
    return raw.decode().strip() or None if raw is not None else None


def delete(config_dir: str, broker: str, where: str) -> None:
    files.remove(_token_file(config_dir))
    if where == "keyring" and (keyring := _keyring()) is not None:
        with contextlib.suppress(Exception):  # already gone
            keyring.delete_password(SERVICE, broker)
