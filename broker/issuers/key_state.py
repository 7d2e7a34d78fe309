"""The rotation state file: which keys are published, which one signs, and what `keys rotate` does next.

It lives in the keys directory (shared by every replica, like the key files), written whole to a temporary
file and renamed, so a replica reads either the old state or the new one. Until the first rotation there is
no file and broker.yaml's `keys:` say everything; from then on the file does (broker.yaml's keys seed it).

    {"keys": [{"kid": "k1", "file": "k1.pem"}, {"kid": "k2", "file": "k2.pem"}],
     "active": "k1", "next": "k2", "activate_after": 1767225600, "retiring": null, "retire_after": null}

Every key listed is published (JWKS, SAML metadata); `active` signs; `next` is published only, until
`activate_after`; `retiring` no longer signs but stays published until `retire_after` (tokens it signed are
still alive). Relative paths are relative to the state file's directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broker.errors import ConfigError
from broker.settings import KeyConfig


@dataclass(frozen=True)
class KeyState:
    keys: tuple[KeyConfig, ...]
    active: str
    next: str | None = None
    activate_after: float | None = None
    retiring: str | None = None
    retire_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def configs(self) -> list[KeyConfig]:
        """The published keys, the active one marked."""
        return [k.model_copy(update={"active": k.kid == self.active}) for k in self.keys]

    def without(self, kid: str) -> KeyState:
        return replace(self, keys=tuple(k for k in self.keys if k.kid != kid))


def seed(configs: list[KeyConfig]) -> KeyState:
    """The state broker.yaml's keys describe, before any rotation."""
    return KeyState(tuple(k.model_copy(update={"active": False}) for k in configs),
                    next(k.kid for k in configs if k.active))


def _key_json(key: KeyConfig, base: Path) -> dict[str, Any]:
    data = key.model_dump(mode="json", exclude_none=True, exclude={"active"})
    for name in ("file", "cert"):
        if name in data and Path(data[name]).parent == base:
            data[name] = Path(data[name]).name  # the keys directory moves with its state file
    return data


def _key_config(data: Any, base: Path) -> KeyConfig:
    key = KeyConfig.model_validate(data)
    return key.model_copy(update={"file": key.file and base / key.file, "cert": key.cert and base / key.cert})


def read_state(file: Path) -> KeyState | None:
    """The state in `file`, or None when there is none yet. A broken file is a configuration problem."""
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{file}: key rotation state unreadable: {exc}"]) from None
    try:
        keys = tuple(_key_config(k, file.parent) for k in raw["keys"])
        state = KeyState(keys, str(raw["active"]), raw.get("next"), raw.get("activate_after"),
                         raw.get("retiring"), raw.get("retire_after"))
    except (KeyError, TypeError, ValidationError) as exc:
        raise ConfigError([f"{file}: key rotation state malformed: {exc}"]) from None
    if state.active not in {k.kid for k in keys}:
        raise ConfigError([f"{file}: the active key {state.active!r} is not listed"])
    return state


def write_state(file: Path, state: KeyState) -> None:
    data = {"keys": [_key_json(k, file.parent) for k in state.keys], "active": state.active,
            "next": state.next, "activate_after": state.activate_after, "retiring": state.retiring,
            "retire_after": state.retire_after}
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".rotation-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o644)  # read by every replica; it holds no secret (paths and key ids only)
    os.replace(tmp, file)
