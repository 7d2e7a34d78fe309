"""The session token goes to the OS keyring when `keyring` is importable with a usable backend, else to a
0600 file; keyring's "fail" backend (no keyring on this machine) counts as none."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from broker.client import keystore


class Backend:
    priority = 5.0

    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], str] = {}


def fake_keyring(monkeypatch: pytest.MonkeyPatch, backend: Backend, module: str) -> None:
    errors = types.ModuleType("keyring.errors")
    errors.KeyringError = type("KeyringError", (Exception,), {})  # type: ignore[attr-defined]
    ring = types.ModuleType("keyring")
    ring.get_keyring = lambda: backend  # type: ignore[attr-defined]
    ring.set_password = lambda s, u, p: backend.saved.__setitem__((s, u), p)  # type: ignore[attr-defined]
    ring.get_password = lambda s, u: backend.saved.get((s, u))  # type: ignore[attr-defined]
    ring.delete_password = lambda s, u: backend.saved.pop((s, u))  # type: ignore[attr-defined]
    type(backend).__module__ = module
    monkeypatch.setitem(sys.modules, "keyring", ring)
    monkeypatch.setitem(sys.modules, "keyring.errors", errors)


def test_usable_keyring_holds_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend()
    fake_keyring(monkeypatch, backend, "keyring.backends.SecretService")
    assert keystore.store(str(tmp_path), "https://b", "tok-1") == "keyring"
    assert backend.saved == {("sts-broker", "https://b"): "tok-1"} and not (tmp_path / "session.token").exists()
    assert keystore.load(str(tmp_path), "https://b", "keyring") == "tok-1"
    keystore.delete(str(tmp_path), "https://b", "keyring")
    assert backend.saved == {}


def test_fail_backend_means_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend()
    backend.priority = 0
    fake_keyring(monkeypatch, backend, "keyring.backends.fail")
    assert keystore.store(str(tmp_path / "c"), "https://b", "tok-2") == "file"
    token_file = tmp_path / "c" / "session.token"
    assert os.stat(token_file).st_mode & 0o777 == 0o600 and backend.saved == {}
    assert keystore.load(str(tmp_path / "c"), "https://b", "file") == "tok-2"


def test_no_keyring_module_means_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring raises ImportError
    assert keystore.store(str(tmp_path), "https://b", "tok-3") == "file"
