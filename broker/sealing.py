"""AES-GCM sealing of values the broker keeps in the state store, with a key derived (HKDF-SHA256) from a
broker secret: whoever can read the store (a Redis replica, a backup, a MONITOR session) without that secret
reads nothing. The associated data binds a sealed value to its store key, so it cannot be moved to another.
Used for browser sessions (web/sessions.py) and cached credentials (issuers/cache.py), each with its purpose.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class Sealer:
    def __init__(self, secret: str, *, purpose: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret.encode())
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer()"

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, bound_to: str) -> str | None:
        """None for anything this sealer did not seal for `bound_to` (another secret, tampered, plain text)."""
        try:
            data = base64.b64decode(sealed, validate=True)
            return self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], bound_to.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            return None
