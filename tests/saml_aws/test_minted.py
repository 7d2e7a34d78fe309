"""What the broker mints as a SAML IdP: accepted by the strict local AWS, and verified by the `xmlsec1` program
against the certificate published at /saml/idp/metadata (a verifier sharing no code with the signer)."""

from __future__ import annotations

import base64
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.grants import RoleGrant
from broker.issuers.saml_assertion import ATTR, recipient_for
from broker.issuers.saml_idp import idp_metadata
from tests.factories import identity
from tests.saml_aws.conftest import ACCOUNT, NS, PROVIDER, PUBLIC_URL, MakeRole, SamlEnv, call, decode, mint

MD = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}


def published_certificates(env: SamlEnv) -> list[bytes]:
    root = etree.fromstring(env.metadata)
    assert root.get("entityID") == f"{PUBLIC_URL}/saml/idp"
    texts = root.findall("md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/"
                         "ds:X509Certificate", MD)
    return [f"-----BEGIN CERTIFICATE-----\n{t.text}\n-----END CERTIFICATE-----\n".encode() for t in texts]


def xmlsec1_verifies(assertion: str, certificate: bytes, tmp: Path) -> bool:
    (tmp / "response.xml").write_bytes(base64.b64decode(assertion))
    (tmp / "cert.pem").write_bytes(certificate)
    result = subprocess.run(
        ["xmlsec1", "--verify", "--enabled-reference-uris", "same-doc", "--enabled-key-data", "raw-x509-cert",
         "--pubkey-cert-pem", str(tmp / "cert.pem"),
         "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", str(tmp / "response.xml")],
        capture_output=True, check=False, timeout=10)
    return result.returncode == 0


def grant(role: str, **overrides: Any) -> RoleGrant:
    fields: dict[str, Any] = {"role_arn": role, "via": "saml", "provider_arn": PROVIDER,
                              "session_name": "alice@example.com", "source_identity": None,
                              "duration": timedelta(hours=1), "rule_id": "r"}
    fields.update(overrides)
    return RoleGrant(**fields)


VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "tags": {"tags": {"team": "a<b>&\"c'", "cost center": "x"}, "transitive_tags": ("team",)},
    "source_identity": {"source_identity": "alice@example.com"},
    "all": {"tags": {"team": "platform"}, "transitive_tags": ("team",), "source_identity": "alice",
            "duration": timedelta(hours=2)},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_minted_assertion_passes_xmlsec1_and_the_strict_aws(env: SamlEnv, make_role: MakeRole, tmp_path: Path,
                                                                 variant: str) -> None:
    role = make_role(max_session=4 * 3600)
    the_grant = grant(role, **VARIANTS[variant])
    assertion = env.service.saml_issuer.mint(identity(idp="dev", subject="alice"), the_grant)
    [certificate] = published_certificates(env)
    assert xmlsec1_verifies(assertion, certificate, tmp_path)
    answer = call(env, role, assertion, DurationSeconds=int(the_grant.duration.total_seconds()))
    assert answer["AssumedRoleUser"]["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[1]}/alice@example.com"
    assert answer["Credentials"]["AccessKeyId"]


def test_xmlsec1_refuses_a_tampered_assertion(env: SamlEnv, make_role: MakeRole, tmp_path: Path) -> None:
    """The independent verifier is not a rubber stamp: one changed character and it refuses."""
    assertion = env.service.saml_issuer.mint(identity(idp="dev", subject="alice"), grant(make_role()))
    root = decode(assertion)
    root.find("saml:Assertion/saml:Subject/saml:NameID", NS).text = "dev:mallory"
    tampered = base64.b64encode(etree.tostring(root)).decode()
    [certificate] = published_certificates(env)
    assert not xmlsec1_verifies(tampered, certificate, tmp_path)


def test_minted_content(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    assertion = env.service.saml_issuer.mint(identity(idp="dev", subject="alice"), grant(
        role, tags={"team": "<b>"}, transitive_tags=("team",), source_identity="alice"))
    root = decode(assertion)
    a = root.find("saml:Assertion", NS)
    values = {attr.get("Name").removeprefix(ATTR): [v.text for v in attr.findall("saml:AttributeValue", NS)]
              for attr in a.findall("saml:AttributeStatement/saml:Attribute", NS)}
    assert values == {"Role": [f"{role},{PROVIDER}"], "RoleSessionName": ["alice@example.com"],
                      "SessionDuration": ["3600"], "PrincipalTag:team": ["<b>"], "TransitiveTagKeys": ["team"],
                      "SourceIdentity": ["alice"]}
    name_id = a.find("saml:Subject/saml:NameID", NS)
    assert name_id.text == "dev:alice" and name_id.get("Format").endswith(":persistent")
    data = a.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
    assert data.get("Recipient") == "https://signin.aws.amazon.com/saml"
    assert a.find("saml:Conditions/saml:AudienceRestriction/saml:Audience", NS).text == "urn:amazon:webservices"
    assert a.find("ds:Signature/ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("rsa-sha256")
    assert root.get("ID") != a.get("ID")
    second = decode(env.service.saml_issuer.mint(identity(idp="dev", subject="alice"), grant(role)))
    assert second.find("saml:Assertion", NS).get("ID") != a.get("ID")


def test_partitions_and_regional_recipients() -> None:
    assert recipient_for("aws") == "https://signin.aws.amazon.com/saml"
    assert recipient_for("aws", "eu-west-1") == "https://eu-west-1.signin.aws.amazon.com/saml"
    assert recipient_for("aws-us-gov") == "https://signin.amazonaws-us-gov.com/saml"
    assert recipient_for("aws-cn", "cn-north-1") == "https://signin.amazonaws.cn/saml"


def test_regional_recipient_accepted_when_the_trust_policy_names_it(env: SamlEnv, make_role: MakeRole) -> None:
    from broker.devstack.stack import saml_trust_policy

    regional = "https://eu-west-1.signin.aws.amazon.com/saml"
    role = make_role(saml_trust_policy(PROVIDER, regional))
    assert call(env, role, mint(env, role, recipient=regional))["Credentials"]["AccessKeyId"]


def test_metadata_is_deterministic(env: SamlEnv) -> None:
    """Certificates derive from the keys, so every replica and restart serves the same document."""
    assert idp_metadata(PUBLIC_URL, env.service.keys.saml_keys()) == env.metadata
