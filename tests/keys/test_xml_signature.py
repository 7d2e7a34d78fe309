"""The broker's own enveloped signature (lxml C14N + a loaded key) against python-xmlsec's template signing:
the same bytes for the same document and key (PKCS#1 v1.5 is deterministic), verified by xmlsec1, python3-saml
and pysaml2, and refused once anything under it changes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from lxml import etree  # type: ignore[import-untyped]
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from saml2.sigver import CryptoBackendXmlSec1, SignatureError

from broker.devstack import saml_signature
from broker.devstack.web_identity_checks import StsError
from broker.issuers.saml_assertion import SAML_NS, AssertionContent, build_response, sign_assertion
from broker.issuers.saml_idp import SamlKey, load_saml_keys
from broker.issuers.signing import generate_key_file
from broker.settings import KeyConfig

PROVIDER = "arn:aws:iam::320987654321:saml-provider/p"
CONTENT = AssertionContent(issuer="https://b.example.com/saml/idp", name_id="dev:alice", partition="aws",
                           recipient="https://signin.aws.amazon.com/saml",
                           roles=(("arn:aws:iam::320987654321:role/r", PROVIDER),), session_name="alice",
                           session_duration=3600, tags={"team": "a&b <c>"}, transitive_tags=("team",))


@pytest.fixture(scope="module", params=[2048, 3072])
def key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[SamlKey, Path]:
    file = tmp_path_factory.mktemp("xmlsig") / "k.pem"
    generate_key_file(file, bits=request.param)
    _, active = load_saml_keys([KeyConfig(kid="k", file=file, active=True)])
    assert active is not None
    return active, file


def xmlsec_signed(response: etree._Element, key: SamlKey, file: Path) -> None:
    """The broker's previous signing code, python-xmlsec's template API, as the reference layout."""
    assertion = response.find(f"{{{SAML_NS}}}Assertion")
    signature = xmlsec.template.create(assertion, xmlsec.constants.TransformExclC14N,
                                       xmlsec.constants.TransformRsaSha256, ns="ds")
    assertion.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256,
                                              uri="#" + assertion.get("ID", ""))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    xmlsec.tree.add_ids(assertion, ["ID"])
    signer = xmlsec.Key.from_memory(file.read_bytes(), xmlsec.constants.KeyDataFormatPem)
    signer.load_cert_from_memory(key.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context = xmlsec.SignatureContext()
    context.key = signer
    context.sign(signature)


def both(key: SamlKey, file: Path) -> tuple[bytes, bytes]:
    unsigned = build_response(CONTENT, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
    reference = copy.deepcopy(unsigned)
    xmlsec_signed(reference, key, file)
    sign_assertion(unsigned, key)
    return etree.tostring(unsigned), etree.tostring(reference)


def test_same_bytes_as_xmlsec(key: tuple[SamlKey, Path]) -> None:
    ours, theirs = both(*key)
    assert b"<ds:SignatureValue>" in ours
    assert ours == theirs


def metadata(key: SamlKey) -> saml_signature.Metadata:
    return saml_signature.Metadata("https://b.example.com/saml/idp", (key.cert_pem,))


def test_verified_by_xmlsec1_python3_saml_and_pysaml2(key: tuple[SamlKey, Path], tmp_path: Path) -> None:
    ours, _ = both(*key)
    saml_signature.verified_assertion(etree.fromstring(ours), metadata(key[0]))
    assert OneLogin_Saml2_Utils.validate_sign(ours, key[0].cert_pem.decode(), xpath="//saml:Assertion/ds:Signature",
                                              raise_exceptions=True)
    cert = tmp_path / "cert.pem"
    cert.write_bytes(key[0].cert_pem)
    assertion_id = etree.fromstring(ours).find(f"{{{SAML_NS}}}Assertion").get("ID")
    assert CryptoBackendXmlSec1("xmlsec1").validate_signature(
        ours, str(cert), "pem", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", assertion_id)


@pytest.mark.parametrize("tamper", [
    lambda a: a.find(f".//{{{SAML_NS}}}NameID").__setattr__("text", "dev:mallory"),
    lambda a: a.find(f".//{{{SAML_NS}}}Conditions").set("NotOnOrAfter", "2099-01-01T00:00:00Z"),
    lambda a: a.find(f".//{{{SAML_NS}}}AttributeValue").__setattr__("text", "arn:aws:iam::1:role/admin," + PROVIDER),
])
def test_tampered_assertion_refused(key: tuple[SamlKey, Path], tmp_path: Path, tamper: object) -> None:
    ours, _ = both(*key)
    root = etree.fromstring(ours)
    tamper(root.find(f"{{{SAML_NS}}}Assertion"))  # type: ignore[operator]
    with pytest.raises(StsError, match="Signature validation failed"):
        saml_signature.verified_assertion(root, metadata(key[0]))
    cert = tmp_path / "cert.pem"
    cert.write_bytes(key[0].cert_pem)
    with pytest.raises(SignatureError):
        CryptoBackendXmlSec1("xmlsec1").validate_signature(
            etree.tostring(root), str(cert), "pem", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            root.find(f"{{{SAML_NS}}}Assertion").get("ID"))


def test_responses_built_from_the_shared_shape_share_nothing() -> None:
    """build_response copies a per-thread shape: no value of one assertion appears in the next one or in the
    shape, and each partition keeps its own audience."""
    from dataclasses import replace

    first = build_response(CONTENT, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
    gov = replace(CONTENT, partition="aws-us-gov", name_id="dev:bob", issuer="https://other.example.com/saml/idp",
                  recipient="https://signin.amazonaws-us-gov.com/saml")
    second = build_response(gov, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
    again = build_response(CONTENT, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
    text = etree.tostring(second)
    assert b"dev:alice" not in text and b"dev:bob" in text
    assert b"<saml:Audience>urn:amazon:webservices:govcloud</saml:Audience>" in text
    assert b"<saml:Audience>urn:amazon:webservices</saml:Audience>" in etree.tostring(again)
    assert etree.tostring(again).replace(b"dev:alice", b"").count(b"dev:") == 0
    ids = {r.get("ID") for r in (first, second, again)} | {
        r.find(f"{{{SAML_NS}}}Assertion").get("ID") for r in (first, second, again)}
    assert len(ids) == 6
    from broker.issuers.saml_assertion import _shape

    assert b"dev:" not in etree.tostring(_shape("aws")) and _shape("aws").get("ID") == ""
