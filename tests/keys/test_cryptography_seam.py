"""broker/seams/cryptography_keys.py decides exactly as stock: a certificate signed through SignerAsKey (the
way a KMS key signs it) is byte for byte the one cryptography signs with the private key itself (PKCS#1
v1.5 is deterministic), and one signed by another key is not."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from broker.issuers.saml_idp import certificate_for
from broker.seams.cryptography_keys import SignerAsKey


@dataclass
class RemoteKey:
    """What a KMS signer offers: RS256 over the data, and the public key (the private key stays inside)."""

    key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_a_certificate_signed_through_the_seam_is_the_stock_one() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stock = certificate_for(key, "k1").public_bytes(Encoding.DER)
    assert certificate_for(SignerAsKey(RemoteKey(key)), "k1").public_bytes(Encoding.DER) == stock


def test_another_key_gives_another_certificate() -> None:
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    remote = certificate_for(SignerAsKey(RemoteKey(other)), "k1")
    assert remote.public_bytes(Encoding.DER) != certificate_for(key, "k1").public_bytes(Encoding.DER)
    public = remote.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(remote.signature, remote.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
