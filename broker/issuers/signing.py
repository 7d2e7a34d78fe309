"""The broker's own signing keys: load from PEM files, publish as JWKS, sign tokens.

Only RSA keys of at least 2048 bits (RS256), because that is what every AWS partition accepts for
AssumeRoleWithWebIdentity. Several keys may be published at once (rotation); exactly one signs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from broker.errors import ConfigError
from broker.settings import KeyConfig

ALGORITHM = "RS256"
MIN_BITS = 2048


class KeyRing:
    def __init__(self, keys: Mapping[str, RSAKey], active_kid: str) -> None:
        self._keys = dict(keys)
        self._active = self._keys[active_kid]
        self.active_kid = active_kid

    def __repr__(self) -> str:
        return f"KeyRing(kids={sorted(self._keys)!r}, active={self.active_kid!r})"

    @classmethod
    def load(cls, configs: list[KeyConfig]) -> KeyRing:
        keys: dict[str, RSAKey] = {}
        problems: list[str] = []
        for cfg in configs:
            try:
                keys[cfg.kid] = _load_key(cfg.file, cfg.kid)
            except (OSError, ValueError) as exc:
                problems.append(f"keys.{cfg.kid}: {cfg.file}: {exc}")
        if problems:
            raise ConfigError(problems)
        active = next(c.kid for c in configs if c.active)
        return cls(keys, active)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for _, k in sorted(self._keys.items())]}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "kid": self.active_kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._active, algorithms=[ALGORITHM])


def _load_key(file: Path, kid: str) -> RSAKey:
    pem = file.read_bytes()
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key") from None
    if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < MIN_BITS:
        raise ValueError(f"must be an RSA key of at least {MIN_BITS} bits")
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


def generate_key_file(file: Path, bits: int = 3072) -> None:
    """Write a new RSA private key, readable by its owner only. Refuses to overwrite."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
