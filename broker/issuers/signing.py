"""The broker's own signing keys: load them from their sources (key_sources.py), publish them as JWKS, sign
tokens with the active one.

RSA keys of at least 2048 bits (RS256) or EC P-256 keys (ES256): both are accepted by AWS for
AssumeRoleWithWebIdentity. Several keys may be published at once (rotation); exactly one signs.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.errors import ConfigError
from broker.issuers.key_sources import PublicKey, Signer, describe, load_signer
from broker.settings import KeyConfig

ALGORITHM = "RS256"  # what a generated key signs with
ALGORITHMS = ("RS256", "ES256")
# How long a cache may keep the JWKS and the SAML metadata (their Cache-Control max-age): part of the wait
# before a newly published key may sign (keys_rotate.py).
PUBLISHED_MAX_AGE = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, size: int | None = None) -> str:
    return b64url(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


def public_jwk(kid: str, public: PublicKey, alg: str) -> dict[str, str]:
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e), "kid": kid, "use": "sig", "alg": alg}
    point = public.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _uint(point.x, 32), "y": _uint(point.y, 32), "kid": kid,
            "use": "sig", "alg": alg}


class KeyRing:
    def __init__(self, signers: Mapping[str, Signer], active_kid: str) -> None:
        self._signers = dict(signers)
        self._active = self._signers[active_kid]
        self.active_kid = active_kid
        self._jwks = {"keys": [public_jwk(kid, s.public_key, s.algorithm) for kid, s in sorted(self._signers.items())]}

    def __repr__(self) -> str:
        return f"KeyRing(kids={sorted(self._signers)!r}, active={self.active_kid!r})"

    @classmethod
    def load(cls, configs: list[KeyConfig], active_kid: str | None = None) -> KeyRing:
        signers: dict[str, Signer] = {}
        problems: list[str] = []
        for cfg in configs:
            try:
                signers[cfg.kid] = load_signer(cfg)
            except (OSError, ValueError) as exc:
                problems.append(f"keys.{cfg.kid}: {describe(cfg)}: {exc}")
        if problems:
            raise ConfigError(problems)
        return cls(signers, active_kid or next(c.kid for c in configs if c.active))

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    @property
    def remote(self) -> bool:
        return self._active.remote

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": self._active.algorithm, "kid": self.active_kid, "typ": "JWT"}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()))
        return signing_input + "." + b64url(self._active.sign(signing_input.encode("ascii")))


def generate_key_file(file: Path, bits: int = 3072, *, curve: bool = False) -> None:
    """Write a new RSA (or, with `curve`, EC P-256) private key, readable by its owner only. Refuses to
    overwrite."""
    key = ec.generate_private_key(ec.SECP256R1()) if curve else rsa.generate_private_key(65537, bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
