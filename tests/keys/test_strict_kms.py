"""moto's KMS Sign with MessageType=DIGEST (it signs the digest as a message) and the strict front's (it
signs the digest, as AWS does)."""

from __future__ import annotations

import hashlib

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from broker.devstack.local_aws import LocalAws, moto_server
from tests.keys.conftest import client, kms_key

DIGEST = hashlib.sha256(b"header.payload").digest()


def public(kms: object, key_id: str) -> object:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])  # type: ignore[attr-defined]


def test_stock_moto_signs_the_digest_as_a_message() -> None:
    """Pins what the strict front corrects: if moto ever does DIGEST right, this fails and the front can go.
    strict_kms.py also reads moto's key objects (kms_backends, Key.private_key.private_key): pinned version."""
    assert moto.__version__ == "5.2.5"
    # Stock moto as its own server, not mock_aws(): leaving mock_aws resets every backend of the process,
    # the IAM of the other suites' long-lived stacks included.
    with moto_server() as url:
        kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=url, aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        signature = kms.sign(KeyId=key_id, Message=DIGEST, MessageType="DIGEST",
                             SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
        key = public(kms, key_id)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, DIGEST, padding.PKCS1v15(), hashes.SHA256())  # SHA-256 of the digest: wrong
    with pytest.raises(InvalidSignature):
        key.verify(signature, DIGEST, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@pytest.mark.parametrize(("spec", "algorithm"), [("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
                                                 ("ECC_NIST_P256", "ECDSA_SHA_256")])
def test_front_signs_the_digest(aws: LocalAws, spec: str, algorithm: str) -> None:
    kms = client(aws, "kms")
    key_id = kms_key(aws, spec)
    signature = kms.sign(KeyId=key_id, Message=DIGEST, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
    key = public(kms, key_id)
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, DIGEST, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(signature, DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_front_refuses_a_digest_of_the_wrong_length(aws: LocalAws) -> None:
    kms = client(aws, "kms")
    with pytest.raises(ClientError) as info:
        kms.sign(KeyId=kms_key(aws), Message=DIGEST[:20], MessageType="DIGEST",
                 SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "invalid length" in info.value.response["Error"]["Message"]


def test_front_refuses_an_encryption_key_and_a_wrong_algorithm(aws: LocalAws) -> None:
    kms = client(aws, "kms")
    with pytest.raises(ClientError) as info:
        kms.sign(KeyId=kms_key(aws, "RSA_2048", "ENCRYPT_DECRYPT"), Message=DIGEST, MessageType="DIGEST",
                 SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert info.value.response["Error"]["Code"] == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as info:
        kms.sign(KeyId=kms_key(aws), Message=DIGEST, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_raw_messages_still_go_to_moto(aws: LocalAws) -> None:
    kms = client(aws, "kms")
    key_id = kms_key(aws)
    signature = kms.sign(KeyId=key_id, Message=b"hello", MessageType="RAW",
                         SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
    key = public(kms, key_id)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"hello", padding.PKCS1v15(), hashes.SHA256())
