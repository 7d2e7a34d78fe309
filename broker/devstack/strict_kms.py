"""KMS Sign with MessageType=DIGEST as AWS does it, in front of moto.

moto 5.2.5 ignores MessageType: it signs the 32-byte digest as if it were the message, hashing it again, so a
signature it returns verifies against SHA-256(digest), which no relying party computes (a JWT or XML signature
made that way fails everywhere but in moto). AWS signs the digest as given (a prehashed signature) and refuses
a digest of the wrong length. This module answers Sign with DIGEST itself, with the key moto generated (the
same process); every other KMS call, RAW signing included, goes to moto unchanged.
tests/keys/test_strict_kms.py shows stock moto's behaviour and this one's.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from moto.core.exceptions import JsonRESTError
from moto.kms.models import kms_backends

SIGN_TARGET = "TrentService.Sign"
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


class KmsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode()


def _key(account: str, region: str, key_id: str) -> Any:
    try:
        return kms_backends[account][region].describe_key(key_id)
    except JsonRESTError as exc:
        raise KmsError(exc.error_type, exc.message) from None


def _digest(params: dict[str, Any], algorithm: str) -> tuple[bytes, hashes.HashAlgorithm]:
    try:
        digest = base64.b64decode(params.get("Message", ""), validate=True)
    except (binascii.Error, ValueError):
        raise KmsError("ValidationException", "Message is not valid base64") from None
    hash_algorithm = HASHES[algorithm[-3:]]()
    if len(digest) != hash_algorithm.digest_size:
        raise KmsError("ValidationException", f"Digest is invalid length for algorithm {algorithm}.")
    return digest, hash_algorithm


def _sign(private: Any, algorithm: str, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
    prehashed = utils.Prehashed(hash_algorithm)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(digest, ec.ECDSA(prehashed))
    assert isinstance(private, rsa.RSAPrivateKey)
    if algorithm.startswith("RSASSA_PSS"):
        pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
        return private.sign(digest, pss, prehashed)
    return private.sign(digest, padding.PKCS1v15(), prehashed)


def sign_digest(body: bytes, account: str, region: str) -> tuple[int, bytes] | None:
    """The answer to a Sign call with MessageType=DIGEST (status, JSON body); None for any other Sign."""
    try:
        params = json.loads(body)
    except ValueError:
        return None
    if not isinstance(params, dict) or params.get("MessageType") != "DIGEST":
        return None
    try:
        key = _key(account, region, str(params.get("KeyId", "")))
        algorithm = str(params.get("SigningAlgorithm", ""))
        if key.key_usage != "SIGN_VERIFY":
            raise KmsError("InvalidKeyUsageException", f"{key.arn} key usage is {key.key_usage} which is not valid "
                                                       "for Sign.")
        if not key.enabled:
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if algorithm not in key.signing_algorithms:
            raise KmsError("ValidationException", f"Value '{algorithm}' at 'SigningAlgorithm' failed to satisfy "
                                                  f"constraint: Member must satisfy enum value set: "
                                                  f"{key.signing_algorithms}")
        digest, hash_algorithm = _digest(params, algorithm)
    except KmsError as error:
        return 400, error.body()
    signature = _sign(key.private_key.private_key, algorithm, digest, hash_algorithm)
    return 200, json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                            "SigningAlgorithm": algorithm}).encode()
