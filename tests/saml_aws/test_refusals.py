"""Each AssumeRoleWithSAML refusal built for real (a genuinely signed assertion, then tampered, re-signed,
expired, mis-addressed ...), checked for AWS's code and status, and that moto issued nothing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import xmlsec
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.stack import saml_trust_policy
from broker.issuers.saml_assertion import ATTR, sign_assertion
from tests.saml_aws.conftest import (
    ACCOUNT,
    NS,
    PROVIDER,
    MakeRole,
    SamlEnv,
    call,
    decode,
    encode,
    mint,
    new_key,
    private_pem,
    refusal,
    sign_custom,
    unsigned,
)

SAML_ELEMENT = "{urn:oasis:names:tc:SAML:2.0:assertion}"


def resign(env: SamlEnv, root: etree._Element) -> str:
    """Drop the signature and sign again with the broker's own key: the content change is 'legitimate'."""
    assertion = root.find("saml:Assertion", NS)
    assertion.remove(assertion.find("ds:Signature", NS))
    sign_assertion(root, env.key)
    return encode(root)


def attribute(root: etree._Element, name: str) -> etree._Element:
    return root.find(f"saml:Assertion/saml:AttributeStatement/saml:Attribute[@Name='{ATTR}{name}']", NS)


def test_valid_call_issues(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    answer = call(env, role, mint(env, role))
    assert answer["AssumedRoleUser"]["Arn"].endswith("/alice@example.com")


def test_tampered_after_signing(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    root.find("saml:Assertion/saml:Subject/saml:NameID", NS).text = "dev:mallory"
    assert "Signature" in refusal(env, role, encode(root), "InvalidIdentityToken", 400)


def test_role_attribute_tampered_after_signing(env: SamlEnv, make_role: MakeRole) -> None:
    role, other = make_role(), make_role()
    root = decode(mint(env, role))
    attribute(root, "Role").find("saml:AttributeValue", NS).text = f"{other},{PROVIDER}"
    refusal(env, other, encode(root), "InvalidIdentityToken", 400)


def test_signed_by_another_key(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, key=new_key(env.workdir)), "InvalidIdentityToken", 400)


def test_signature_stripped(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, encode(unsigned(role)), "InvalidIdentityToken", 400)


@pytest.mark.parametrize(("method", "digest"), [
    (xmlsec.constants.TransformRsaSha1, xmlsec.constants.TransformSha256),
    (xmlsec.constants.TransformRsaSha256, xmlsec.constants.TransformSha1),
])
def test_sha1_refused(env: SamlEnv, make_role: MakeRole, method: object, digest: object) -> None:
    role = make_role()
    message = refusal(env, role, sign_custom(unsigned(role), env.key, method, digest), "InvalidIdentityToken", 400)
    assert "SHA-1" in message


def test_signature_over_the_response_only(env: SamlEnv, make_role: MakeRole) -> None:
    """An unsigned assertion inside a signed response: AWS wants the assertion signed."""
    role = make_role()
    root = unsigned(role)
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N,
                                       xmlsec.constants.TransformRsaSha256, ns="ds")
    root.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri="#" + root.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.tree.add_ids(root, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(private_pem(env.key), xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)
    refusal(env, role, encode(root), "InvalidIdentityToken", 400)


def test_wrapped_second_assertion(env: SamlEnv, make_role: MakeRole) -> None:
    """XSW: an evil unsigned assertion beside the signed one."""
    role, other = make_role(), make_role()
    root = decode(mint(env, role))
    evil = unsigned(other).find("saml:Assertion", NS)
    root.insert(2, evil)
    refusal(env, other, encode(root), "InvalidIdentityToken", 400)


def test_expired(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    old = datetime.now(UTC) - timedelta(minutes=30)
    refusal(env, role, mint(env, role, now=old), "ExpiredTokenException", 400)


def test_not_yet_valid(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    future = datetime.now(UTC) + timedelta(minutes=30)
    refusal(env, role, mint(env, role, now=future), "InvalidIdentityToken", 400)


def test_wrong_recipient(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, recipient="https://evil.example.com/saml"), "InvalidIdentityToken", 400)


def test_recipient_not_the_trust_policys_saml_aud(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()  # trusts SAML:aud = https://signin.aws.amazon.com/saml only
    regional = mint(env, role, recipient="https://eu-west-1.signin.aws.amazon.com/saml")
    refusal(env, role, regional, "AccessDenied", 403)


def test_wrong_audience(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    root.find("saml:Assertion/saml:Conditions/saml:AudienceRestriction/saml:Audience", NS).text = "urn:someone:else"
    refusal(env, role, resign(env, root), "InvalidIdentityToken", 400)


def test_govcloud_audience_for_a_commercial_role(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, partition="aws-us-gov",
                            recipient="https://signin.aws.amazon.com/saml"), "InvalidIdentityToken", 400)


def test_wrong_issuer(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, issuer="https://other.example.com/saml/idp"), "InvalidIdentityToken", 400)


def test_missing_name_id(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    subject = root.find("saml:Assertion/saml:Subject", NS)
    subject.remove(subject.find("saml:NameID", NS))
    refusal(env, role, resign(env, root), "AccessDenied", 403)


def test_two_subject_confirmations(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    subject = root.find("saml:Assertion/saml:Subject", NS)
    subject.append(etree.fromstring(etree.tostring(subject.find("saml:SubjectConfirmation", NS))))
    refusal(env, role, resign(env, root), "InvalidIdentityToken", 400)


def test_missing_role_session_name(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    name = attribute(root, "RoleSessionName")
    name.getparent().remove(name)
    message = refusal(env, role, resign(env, root), "InvalidIdentityToken", 400)
    assert message == "RoleSessionName is required in AuthnResponse"


@pytest.mark.parametrize("session_name", ["a", "x" * 65, "alice smith", "ali<ce"])
def test_bad_role_session_name(env: SamlEnv, make_role: MakeRole, session_name: str) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, session_name=session_name), "InvalidIdentityToken", 400)


def test_role_pair_not_in_the_attribute(env: SamlEnv, make_role: MakeRole) -> None:
    role, other = make_role(), make_role()
    refusal(env, other, mint(env, role), "AccessDenied", 403)


def test_provider_not_in_the_pair(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    other_provider = f"arn:aws:iam::{ACCOUNT}:saml-provider/other"
    refusal(env, role, mint(env, role, roles=((role, other_provider),)), "AccessDenied", 403)


def test_two_role_values_one_matching_is_accepted_and_moto_does_not_crash(env: SamlEnv, make_role: MakeRole) -> None:
    role, other = make_role(), make_role()
    answer = call(env, role, mint(env, role, roles=((other, PROVIDER), (role, PROVIDER))))
    assert f"assumed-role/{role.rsplit('/', 1)[1]}/" in answer["AssumedRoleUser"]["Arn"]


def test_unknown_provider(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    missing = f"arn:aws:iam::{ACCOUNT}:saml-provider/missing"
    refusal(env, role, mint(env, role, roles=((role, missing),)), "InvalidIdentityToken", 400, principal=missing)


@pytest.mark.parametrize("duration", ["899", "43201", "soon"])
def test_bad_session_duration_attribute(env: SamlEnv, make_role: MakeRole, duration: str) -> None:
    role = make_role()
    root = decode(mint(env, role))
    attribute(root, "SessionDuration").find("saml:AttributeValue", NS).text = duration
    refusal(env, role, resign(env, root), "InvalidIdentityToken", 400)


@pytest.mark.parametrize("tags", [
    {"aws:team": "x"}, {"bad|key": "x"}, {"team": "v" * 257}, {f"k{i}": "v" for i in range(51)},
])
def test_bad_tags(env: SamlEnv, make_role: MakeRole, tags: dict[str, str]) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, tags=tags), "InvalidIdentityToken", 400)


def test_transitive_keys_not_a_subset(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, tags={"team": "x"}, transitive_tags=("cost",)), "InvalidIdentityToken", 400)


@pytest.mark.parametrize("source", ["a", "aws:alice", "al ice"])
def test_bad_source_identity(env: SamlEnv, make_role: MakeRole, source: str) -> None:
    role = make_role()
    refusal(env, role, mint(env, role, source_identity=source), "InvalidIdentityToken", 400)


def test_tags_need_tag_session_in_the_trust_policy(env: SamlEnv, make_role: MakeRole) -> None:
    policy = json.loads(saml_trust_policy(PROVIDER))
    policy["Statement"][0]["Action"] = ["sts:AssumeRoleWithSAML"]
    role = make_role(policy)
    assert call(env, role, mint(env, role))["Credentials"]["AccessKeyId"]
    refusal(env, role, mint(env, role, tags={"team": "x"}), "AccessDenied", 403)
    refusal(env, role, mint(env, role, source_identity="alice"), "AccessDenied", 403)


def test_role_trusting_another_provider(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role(saml_trust_policy(f"arn:aws:iam::{ACCOUNT}:saml-provider/other"))
    refusal(env, role, mint(env, role), "AccessDenied", 403)


def test_duration_above_the_roles_maximum(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role(max_session=3600)
    message = refusal(env, role, mint(env, role), "ValidationError", 400, DurationSeconds=7200)
    assert "MaxSessionDuration" in message


@pytest.mark.parametrize(("extra", "code"), [
    ({"DurationSeconds": 899}, "ValidationError"), ({"DurationSeconds": 43201}, "ValidationError"),
    ({"Policy": "x" * 2049}, "ValidationError"), ({"Policy": "not json"}, "MalformedPolicyDocument"),
])
def test_call_parameters(env: SamlEnv, make_role: MakeRole, extra: dict[str, object], code: str) -> None:
    role = make_role()
    refusal(env, role, mint(env, role), code, 400, **extra)


@pytest.mark.parametrize("payload", [b"abc", b"not xml at all", b"<samlp:Response"])
def test_not_xml_or_too_short(env: SamlEnv, make_role: MakeRole, payload: bytes) -> None:
    role = make_role()
    code = "ValidationError" if len(payload) < 4 else "InvalidIdentityToken"
    encoded = payload.decode() if len(payload) < 4 else base64.b64encode(payload).decode()
    refusal(env, role, encoded, code, 400)


def test_oversized_assertion(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    refusal(env, role, "A" * 100_004, "ValidationError", 400)


def test_dtd_and_entities_refused(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    signed = base64.b64decode(mint(env, role)).decode()
    body = signed.split("?>", 1)[1]
    for doctype in ('<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                    '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'):
        payload = ('<?xml version="1.0"?>' + doctype + body).encode()
        refusal(env, role, base64.b64encode(payload).decode(), "InvalidIdentityToken", 400)


def test_encrypted_assertion_refused(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    etree.SubElement(root, f"{SAML_ELEMENT}EncryptedAssertion")
    refusal(env, role, encode(root), "InvalidIdentityToken", 400)


def test_failed_status_is_rejected_claim(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    root = decode(mint(env, role))
    root.find("samlp:Status/samlp:StatusCode", NS).set("Value", "urn:oasis:names:tc:SAML:2.0:status:Requester")
    refusal(env, role, encode(root), "IDPRejectedClaim", 403)


def test_session_duration_attribute_shortens_the_session(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role(max_session=4 * 3600)
    answer = call(env, role, mint(env, role, session_duration=1800), DurationSeconds=7200)
    lifetime = answer["Credentials"]["Expiration"] - datetime.now(UTC)
    assert 1700 < lifetime.total_seconds() <= 1800


def test_response_fields_as_aws_returns_them(env: SamlEnv, make_role: MakeRole) -> None:
    from broker.devstack.saml_checks import name_qualifier

    role = make_role()
    answer = call(env, role, mint(env, role, source_identity="alice"))
    issuer = "https://broker.example.com/saml/idp"
    assert (answer["Subject"], answer["SubjectType"], answer["Issuer"], answer["Audience"]) == \
        ("dev:alice", "persistent", issuer, "https://signin.aws.amazon.com/saml")
    assert answer["NameQualifier"] == name_qualifier(issuer, ACCOUNT, "sts-broker")
    assert answer["SourceIdentity"] == "alice"


def test_more_than_ten_policy_arns(env: SamlEnv, make_role: MakeRole) -> None:
    role = make_role()
    arns = [{"arn": f"arn:aws:iam::aws:policy/P{i}"} for i in range(11)]
    refusal(env, role, mint(env, role), "ValidationError", 400, PolicyArns=arns)


def test_comment_inside_the_issuer_does_not_truncate_it(env: SamlEnv, make_role: MakeRole) -> None:
    """`https://broker.example.com/saml/idp<!-- -->.evil` must not be read as the metadata's entityID."""
    role = make_role()
    root = decode(mint(env, role))
    issuer = root.find("saml:Assertion/saml:Issuer", NS)
    issuer.append(etree.Comment(" x "))
    issuer[-1].tail = ".evil"
    refusal(env, role, resign(env, root), "InvalidIdentityToken", 400)
