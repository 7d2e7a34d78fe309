"""Keys from files, environment variables and KMS (through the strict local AWS): loaded once per source,
signing web identity tokens and SAML assertions that the strict local AWS accepts; secrets never in repr."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509

from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import saml_trust_policy
from broker.errors import ConfigError, StsUnavailable
from broker.issuers.key_sources import KmsSigner, LocalSigner, kms_client, load_signer
from broker.issuers.saml_assertion import AssertionContent, signed_response
from broker.issuers.saml_idp import idp_metadata, load_saml_keys
from broker.issuers.signing import KeyRing, generate_key_file
from broker.settings import KeyConfig, KmsKeyConfig
from tests.keys.conftest import ACCOUNT, REGION, client, kms_key

PUBLIC_URL = "https://broker.example.com"


def kms_config(aws: LocalAws, key_id: str, kid: str = "kms1") -> KeyConfig:
    return KeyConfig(kid=kid, kms=KmsKeyConfig(key_id=key_id, region=REGION, endpoint_url=aws.endpoint_url),
                     active=True)


def test_file_key_loaded_once_and_again_when_replaced(tmp_path: Path) -> None:
    file = tmp_path / "k.pem"
    generate_key_file(file, bits=2048)
    cfg = KeyConfig(kid="k", file=file, active=True)
    first = load_signer(cfg)
    assert load_signer(cfg) is first
    file.unlink()
    generate_key_file(file, bits=2048)
    replaced = load_signer(cfg)
    assert replaced is not first and replaced.public_key != first.public_key


def test_env_key_signs_and_stays_out_of_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "k.pem"
    generate_key_file(file, bits=2048)
    pem = file.read_text()
    monkeypatch.setenv("BROKER_KEY_PEM", pem)
    cfg = KeyConfig(kid="e", env="BROKER_KEY_PEM", active=True)
    ring = KeyRing.load([cfg])
    token = ring.sign({"sub": "alice"})
    jwk = jwt.PyJWK(ring.jwks()["keys"][0])
    assert jwt.decode(token, key=jwk, algorithms=["RS256"])["sub"] == "alice"
    body = "".join(pem.strip().splitlines()[1:-1])[:40]
    for text in (repr(cfg), repr(load_signer(cfg)), repr(ring)):
        assert body not in text and "PRIVATE" not in text


def test_env_key_unset_is_a_config_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKER_KEY_ABSENT", raising=False)
    with pytest.raises(ConfigError) as info:
        KeyRing.load([KeyConfig(kid="e", env="BROKER_KEY_ABSENT", active=True)])
    assert info.value.problems == ["keys.e: $BROKER_KEY_ABSENT: environment variable BROKER_KEY_ABSENT is not set"]


def test_a_key_has_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one source"):
        KeyConfig(kid="x", file=tmp_path / "k.pem", env="X")
    with pytest.raises(ValueError, match="exactly one source"):
        KeyConfig(kid="x")


@pytest.mark.parametrize(("spec", "alg"), [("RSA_2048", "RS256"), ("ECC_NIST_P256", "ES256")])
def test_kms_key_signs_web_identity_tokens(aws: LocalAws, spec: str, alg: str) -> None:
    cfg = kms_config(aws, kms_key(aws, spec))
    ring = KeyRing.load([cfg])
    assert isinstance(load_signer(cfg), KmsSigner)
    token = ring.sign({"sub": "alice", "aud": "sts.amazonaws.com"})
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": "kms1", "typ": "JWT"}
    jwk = jwt.PyJWK(ring.jwks()["keys"][0])
    assert jwt.decode(token, key=jwk, algorithms=[alg], audience="sts.amazonaws.com")["sub"] == "alice"


def test_kms_encryption_key_refused(aws: LocalAws) -> None:
    with pytest.raises(ConfigError) as info:
        KeyRing.load([kms_config(aws, kms_key(aws, "RSA_2048", "ENCRYPT_DECRYPT"))])
    assert "must be SIGN_VERIFY" in info.value.problems[0]


def test_ec_key_signs_no_saml(aws: LocalAws) -> None:
    keys, active = load_saml_keys([kms_config(aws, kms_key(aws, "ECC_NIST_P256"))])
    assert keys == [] and active is None


def test_kms_saml_assertion_accepted_by_strict_aws(aws: LocalAws) -> None:
    """The certificate is signed through KMS too; IAM takes the metadata; AssumeRoleWithSAML accepts the
    assertion the KMS key signed (xmlsec1 verifies it in the strict front)."""
    keys, active = load_saml_keys([kms_config(aws, kms_key(aws))])
    assert active is not None and isinstance(active.signer, KmsSigner)
    cert = x509.load_pem_x509_certificate(active.cert_pem)
    cert.verify_directly_issued_by(cert)
    iam, name = client(aws, "iam"), f"kms-{uuid.uuid4().hex[:8]}"
    provider = iam.create_saml_provider(Name=name, SAMLMetadataDocument=idp_metadata(PUBLIC_URL, keys).decode())
    provider_arn = provider["SAMLProviderArn"]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=saml_trust_policy(provider_arn))["Role"]["Arn"]
    content = AssertionContent(issuer=f"{PUBLIC_URL}/saml/idp", name_id="dev:alice", partition="aws",
                               recipient="https://signin.aws.amazon.com/saml", roles=((role, provider_arn),),
                               session_name="alice", session_duration=900)
    assertion = signed_response(content, active, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
    answer = client(aws, "sts").assume_role_with_saml(RoleArn=role, PrincipalArn=provider_arn, SAMLAssertion=assertion)
    assert answer["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/")


def test_configured_certificate_must_match_the_key(tmp_path: Path, aws: LocalAws) -> None:
    file, other = tmp_path / "k.pem", tmp_path / "other.pem"
    generate_key_file(file, bits=2048)
    generate_key_file(other, bits=2048)
    _, theirs = load_saml_keys([KeyConfig(kid="o", file=other, active=True)])
    assert theirs is not None
    (tmp_path / "other.crt").write_bytes(theirs.cert_pem)
    with pytest.raises(ConfigError, match="not for this key"):
        load_saml_keys([KeyConfig(kid="k", file=file, cert=tmp_path / "other.crt", active=True)])
    _, own = load_saml_keys([KeyConfig(kid="o", file=other, cert=tmp_path / "other.crt", active=True)])
    assert own is not None and own.cert_pem == theirs.cert_pem and isinstance(own.signer, LocalSigner)


def test_kms_unreachable_or_disabled_is_sts_unavailable(aws: LocalAws) -> None:
    """A signature KMS does not give is a clear, retryable refusal (503 via StsUnavailable), never a token."""
    key_id = kms_key(aws)
    signer = load_signer(kms_config(aws, key_id))
    assert isinstance(signer, KmsSigner) and signer.remote
    dead = KmsSigner(key_id, signer.algorithm, signer.public_key, kms_client(REGION, f"http://{LOOPBACK}:{free_port()}"))
    with pytest.raises(StsUnavailable) as info:
        dead.sign(b"header.payload")
    assert info.value.reason == "kms_unavailable" and key_id in str(info.value)
    client(aws, "kms").disable_key(KeyId=key_id)
    with pytest.raises(StsUnavailable, match="DisabledException"):
        signer.sign(b"header.payload")
