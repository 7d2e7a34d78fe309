"""A remote signer (an AWS KMS key) in the shape of cryptography's RSA private key, so that its X.509
certificate builder signs the certificate's TBS part through KMS (the one module that does this).

cryptography documents RSAPrivateKey as an interface, not as an extension point: that its certificate
builder accepts a Python implementation and calls only `sign` and `public_key` is behaviour of the release
pinned below, read from its source and proven by tests/keys (the certificate verifies with the KMS public
key; xmlsec1 and the strict local AWS accept assertions signed under it). Re-check on an upgrade
(docs/upgrade-checklist.md)."""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

WRITTEN_FOR = {"cryptography": "50.0.2"}


class RemoteSigner(Protocol):
    @property
    def public_key(self) -> object: ...

    def sign(self, data: bytes) -> bytes: ...


class SignerAsKey(rsa.RSAPrivateKey):
    """Only `sign` and `public_key` are used by the certificate builder, so the private key stays where it is."""

    def __init__(self, signer: RemoteSigner) -> None:
        self._signer = signer

    def sign(self, data: bytes, padding: object, algorithm: object) -> bytes:
        return self._signer.sign(data)  # RS256: PKCS#1 v1.5 with SHA-256, what the builder asked for

    def public_key(self) -> rsa.RSAPublicKey:
        public = self._signer.public_key
        assert isinstance(public, rsa.RSAPublicKey)
        return public

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def decrypt(self, *args: object) -> bytes:
        raise NotImplementedError

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotImplementedError

    def private_bytes(self, *args: object) -> bytes:
        raise NotImplementedError

    def __copy__(self) -> SignerAsKey:
        return self

    def __deepcopy__(self, memo: object) -> SignerAsKey:
        return self
