"""Where a signing key lives (a PEM file, an environment variable, an AWS KMS asymmetric key), and the Signer
each source becomes: the public key to publish, and `sign(data)` for JWS and XML signatures.

A loaded key is kept per source (the file's identity and mtime, the variable's value digest, the KMS key id),
so minting never re-reads or re-parses PEM, and a file replaced by a rotation is loaded afresh. A KMS key's
private half never leaves KMS: the broker hashes, KMS signs the digest (MessageType DIGEST).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from broker.errors import StsUnavailable
from broker.settings import KeyConfig

MIN_RSA_BITS = 2048
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
# KMS key specs the broker signs with, and the JWS algorithm each gives.
KMS_SPECS = {"RSA_2048": "RS256", "RSA_3072": "RS256", "RSA_4096": "RS256", "ECC_NIST_P256": "ES256"}
KMS_ALGORITHMS = {"RS256": "RSASSA_PKCS1_V1_5_SHA_256", "ES256": "ECDSA_SHA_256"}


class Signer(Protocol):
    """RS256 (RSA PKCS#1 v1.5, SHA-256) or ES256 (P-256, SHA-256; the signature as JWS's raw r||s).
    `remote`: each signature is a network call (KMS), so callers on the event loop sign in a thread."""

    remote: ClassVar[bool]

    @property
    def algorithm(self) -> str: ...
    @property
    def public_key(self) -> PublicKey: ...
    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, repr=False)
class LocalSigner:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    source: str  # "file /path" or "env NAME": for messages, never the key
    remote: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"LocalSigner({self.source}, {self.algorithm})"

    @property
    def algorithm(self) -> str:
        return "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"

    @property
    def public_key(self) -> PublicKey:
        return self.private.public_key()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return der_to_raw(self.private.sign(data, ec.ECDSA(hashes.SHA256())))


@dataclass(frozen=True)
class KmsSigner:
    key_id: str
    algorithm: str
    public_key: PublicKey = field(repr=False)
    client: Any = field(repr=False, compare=False)
    remote: ClassVar[bool] = True

    def sign(self, data: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError  # loaded with the KMS client, not at start

        digest = hashlib.sha256(data).digest()
        try:
            answer = self.client.sign(KeyId=self.key_id, Message=digest, MessageType="DIGEST",
                                      SigningAlgorithm=KMS_ALGORITHMS[self.algorithm])
        except (BotoCoreError, ClientError) as exc:
            raise StsUnavailable(f"KMS Sign with {self.key_id} failed: {exc}", reason="kms_unavailable",
                                 public="AWS KMS is not answering right now. Try again shortly.") from None
        signature: bytes = answer["Signature"]
        return signature if self.algorithm == "RS256" else der_to_raw(signature)


def der_to_raw(signature: bytes, size: int = 32) -> bytes:
    """ECDSA's DER (r, s), as cryptography and KMS give it, into JWS's fixed-width r||s (RFC 7518 3.4)."""
    r, s = utils.decode_dss_signature(signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _check_private(private: Any) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if isinstance(private, rsa.RSAPrivateKey) and private.key_size >= MIN_RSA_BITS:
        return private
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        return private
    raise ValueError(f"must be an RSA key of at least {MIN_RSA_BITS} bits or an EC P-256 key")


def _from_pem(pem: bytes, source: str) -> LocalSigner:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key") from None
    return LocalSigner(_check_private(private), source)


def kms_client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3  # only a KMS key needs it at load
    from botocore.config import Config

    # Bounded: a sign-in waits on this call (botocore's defaults wait a minute per attempt).
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("kms", region_name=region, endpoint_url=endpoint_url, config=config)


def _from_kms(key_id: str, client: Any) -> KmsSigner:
    try:
        answer = client.get_public_key(KeyId=key_id)
    except Exception as exc:  # botocore's errors name the key and the refusal, never a secret
        raise ValueError(f"KMS GetPublicKey failed: {exc}") from None
    spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")  # the second: its deprecated name
    if answer.get("KeyUsage") != "SIGN_VERIFY" or spec not in KMS_SPECS:
        raise ValueError(f"KMS key must be SIGN_VERIFY with one of {', '.join(KMS_SPECS)} "
                         f"(is {answer.get('KeyUsage')} {spec})")
    public = serialization.load_der_public_key(answer["PublicKey"])
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("KMS public key is neither RSA nor EC")
    return KmsSigner(key_id, KMS_SPECS[spec], public, client)


_CACHE: dict[tuple[str, ...], LocalSigner | KmsSigner] = {}
_LOCK = threading.Lock()


def _source_key(cfg: KeyConfig) -> tuple[tuple[str, ...], Callable[[], LocalSigner | KmsSigner]]:
    """What identifies the key's current bytes (the cache key), and how to load it."""
    if cfg.file is not None:
        file = cfg.file
        stat = file.stat()
        return (("file", str(file), str(stat.st_ino), str(stat.st_mtime_ns), str(stat.st_size)),
                lambda: _from_pem(file.read_bytes(), f"file {file}"))
    if cfg.env is not None:
        name = cfg.env
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set")
        pem = value.encode()
        digest = hashlib.sha256(pem).hexdigest()
        return ("env", name, digest), lambda: _from_pem(pem, f"env {name}")
    assert cfg.kms is not None  # KeyConfig allows exactly one source
    kms = cfg.kms
    return (("kms", kms.key_id, kms.region or "", kms.endpoint_url or ""),
            lambda: _from_kms(kms.key_id, kms_client(kms.region, kms.endpoint_url)))


def load_signer(cfg: KeyConfig) -> LocalSigner | KmsSigner:
    """The key `cfg` names, loaded once per source version. Raises OSError or ValueError (said plainly)."""
    cache_key, load = _source_key(cfg)
    with _LOCK:
        found = _CACHE.get(cache_key)
    if found is not None:
        return found
    signer = load()
    with _LOCK:
        _CACHE[cache_key] = signer
    return signer


def describe(cfg: KeyConfig) -> str:
    """The source for messages: a path, a variable's name or a KMS key id; never key material."""
    if cfg.file is not None:
        return str(cfg.file)
    if cfg.env is not None:
        return f"${cfg.env}"
    assert cfg.kms is not None
    return f"kms:{cfg.kms.key_id}"
