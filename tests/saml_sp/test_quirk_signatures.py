"""Where the IdP's signature sits, and which key it verifies with, as real IdPs send them: assertion signed
(Okta, Google, Entra's default), Response signed (Shibboleth's default, Keycloak "sign document", AD FS can),
both; KeyInfo with RSAKeyValue; several signing certificates during a rollover. Everything else stays
refused, each with its reason, audited, nothing issued."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree  # type: ignore[import-untyped]

from tests.saml_sp.conftest import NS, assert_refused, assertion_of, audit_events
from tests.saml_sp.quirk_world import QuirkWorld, quirk_world, role_names, roles_view

__all__ = ["quirk_world"]  # the fixture, for pytest

SAMLP_RESPONSE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
DS = NS["ds"]
XENC = "http://www.w3.org/2001/04/xmlenc#"


def _xml(root: Any) -> str:
    return str(etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode())


def _start(world: QuirkWorld, client: httpx.Client, idp: str) -> str:
    return world.start(client, idp)


def _logged_in(world: QuirkWorld) -> list[tuple[str, str]]:
    return [(e["idp"], e["subject"]) for e in audit_events(world.stack) if e["event"] == "login_succeeded"]


def _accepted(world: QuirkWorld, client: httpx.Client, xml: str, idp: str, subject: str) -> None:
    response = world.post(client, xml, idp)
    assert response.status_code == 303, response.text[:400]
    assert _logged_in(world)[-1] == (idp, subject)
    assert roles_view(world, client)["identity"]["subject"] == subject


def sign_response(world: QuirkWorld, xml: str, *, key: Path | None = None, cert: Path | None = None) -> str:
    """Sign the Response element (its Signature template is there) with pysaml2's xmlsec1 backend: this
    IdP's key unless another is given; `cert` replaces the KeyInfo certificate."""
    root = etree.fromstring(xml.encode())
    if cert is not None:
        body = "".join(line for line in cert.read_text().splitlines() if not line.startswith("-----"))
        root.find(f"{{{DS}}}Signature//{{{DS}}}X509Certificate").text = body
    return str(world.idp.server.sec.crypto.sign_statement(
        _xml(root), SAMLP_RESPONSE, str(key or world.idp.key_file), root.get("ID")))


def response_only(world: QuirkWorld, user: str, request_id: str, idp: str = "either", **kw: Any) -> str:
    xml = world.signed(user, request_id, idp=idp, sign_assertion=False, sign_response=True, **kw)
    root = etree.fromstring(xml.encode())
    assert root.find("ds:Signature", NS) is not None and assertion_of(root).find("ds:Signature", NS) is None
    return xml


# ---- placement: either, by default ------------------------------------------------------------------

def test_response_signed_assertion_unsigned_accepted(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    xml = response_only(quirk_world, "bob", request_id)
    _accepted(quirk_world, client, xml, "either", "bob@example.com")
    identity = quirk_world.identity("either", xml, request_id)
    assert identity.groups == ("developers",) and identity.email == "bob@example.com"


def test_assertion_signed_response_unsigned_accepted(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    _accepted(quirk_world, client, quirk_world.signed("bob", request_id, idp="either"), "either", "bob@example.com")


def test_both_signed_accepted(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    xml = quirk_world.signed("bob", request_id, idp="either", sign_response=True)
    root = etree.fromstring(xml.encode())
    assert root.find("ds:Signature", NS) is not None and assertion_of(root).find("ds:Signature", NS) is not None
    _accepted(quirk_world, client, xml, "either", "bob@example.com")


def test_want_assertions_signed_refuses_response_only(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "strict")
    xml = response_only(quirk_world, "bob", request_id, idp="strict")
    assert_refused(quirk_world, client, quirk_world.post(client, xml, "strict"), 401, "saml_no_signed_assertion")
    request_id = _start(quirk_world, client, "strict")  # the assertion's own signature still signs in
    _accepted(quirk_world, client, quirk_world.signed("bob", request_id, idp="strict"), "strict", "bob@example.com")


def test_response_only_refused_by_default(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """Without `want_assertions_signed: false` in the IdP file, the assertion must carry its own signature."""
    assert "want_assertions_signed" not in quirk_world.configs["default"].model_fields_set
    request_id = _start(quirk_world, client, "default")
    xml = response_only(quirk_world, "bob", request_id, idp="default")
    assert_refused(quirk_world, client, quirk_world.post(client, xml, "default"), 401, "saml_no_signed_assertion")
    request_id = _start(quirk_world, client, "default")
    _accepted(quirk_world, client, quirk_world.signed("bob", request_id, idp="default"), "default", "bob@example.com")


def test_unsigned_response_refused(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    xml = quirk_world.signed("alice", request_id, idp="either", sign_assertion=False, sign_response=False)
    assert "Signature" not in xml
    assert_refused(quirk_world, client, quirk_world.post(client, xml, "either"), 401, "saml_no_signature_found")


def test_response_signature_stripped_refused(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(response_only(quirk_world, "bob", request_id).encode())
    root.remove(root.find("ds:Signature", NS))
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401,
                   "saml_no_signature_found")


# ---- a signed Response is trusted only as signed ------------------------------------------------------

def test_assertion_swapped_in_signed_response(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """bob's signed Response with alice's assertion (itself from a Response the IdP signed) in its place."""
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(response_only(quirk_world, "bob", request_id).encode())
    alice = assertion_of(etree.fromstring(response_only(quirk_world, "alice", request_id).encode()))
    assertion_of(root).getparent().replace(assertion_of(root), alice)
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_invalid_signature")
    assert ("either", "alice@example.com") not in _logged_in(quirk_world)


def test_attribute_changed_in_signed_response(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(response_only(quirk_world, "bob", request_id).encode())
    value = assertion_of(root).find(".//saml:Attribute[@Name='groups']/saml:AttributeValue", NS)
    value.text = "platform-admins"
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_invalid_signature")


def test_assertion_added_beside_signed_one(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(response_only(quirk_world, "bob", request_id).encode())
    evil = copy.deepcopy(assertion_of(root))
    evil.set("ID", "_evil")
    evil.find("saml:Subject/saml:NameID", NS).text = "admin@example.com"
    assertion_of(root).addprevious(evil)
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_assertion_count")


def test_assertion_wrapped_in_extensions(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """The signed assertion moved into samlp:Extensions, where the Response signature still covers it but
    the structure check does not let it be read."""
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(response_only(quirk_world, "bob", request_id).encode())
    assertion = assertion_of(root)
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(assertion)
    signed = sign_response(quirk_world, _xml(root))  # even signed by the IdP itself, the shape is refused
    assert_refused(quirk_world, client, quirk_world.post(client, signed, "either"), 401, "saml_assertion_wrapped")


def test_assertion_signature_moved_to_the_response(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """The IdP's valid assertion signature, moved onto the Response: it verifies (it covers the assertion),
    but a Response signature must cover the Response, or the envelope would be unsigned."""
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(quirk_world.signed("bob", request_id, idp="either").encode())
    signature = assertion_of(root).find("ds:Signature", NS)
    root.find("saml:Issuer", NS).addnext(signature)
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_signature_shape")


def test_response_signed_by_another_key_with_its_own_key_info(quirk_world: QuirkWorld,
                                                              client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    xml = sign_response(quirk_world, response_only(quirk_world, "bob", request_id),
                        key=quirk_world.other_key, cert=quirk_world.other_cert)
    assert_refused(quirk_world, client, quirk_world.post(client, xml, "either"), 401, "saml_invalid_signature")


# ---- an encrypted assertion in a signed Response -------------------------------------------------------

ENCRYPTION = (f"{XENC}aes256-cbc", f"{XENC}rsa-oaep-mgf1p")


def _encrypted(world: QuirkWorld, user: str, request_id: str) -> str:
    # (self-contained: pysaml2 re-prefixes the assertion before encrypting, harmless here as it is unsigned)
    xml = world.signed(user, request_id, idp="encrypted", sign_assertion=False, sign_response=True,
                       encrypt_assertion=True, encrypt_cert_assertion=world.sp_cert.read_text(),
                       encrypt_assertion_self_contained=True, encryption=ENCRYPTION)
    root = etree.fromstring(xml.encode())
    assert root.find("saml:EncryptedAssertion", NS) is not None and root.find("ds:Signature", NS) is not None
    return xml


def test_encrypted_assertion_in_signed_response_accepted(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """The Response signature (enveloped, over the whole Response) covers the EncryptedAssertion."""
    request_id = _start(quirk_world, client, "encrypted")
    _accepted(quirk_world, client, _encrypted(quirk_world, "bob", request_id), "encrypted", "bob@example.com")


def test_encrypted_assertion_swapped_in_signed_response(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """alice's assertion, encrypted to the SP by anyone who has its public certificate, in bob's signed
    Response: the Response signature no longer verifies."""
    request_id = _start(quirk_world, client, "encrypted")
    root = etree.fromstring(_encrypted(quirk_world, "bob", request_id).encode())
    other = etree.fromstring(_encrypted(quirk_world, "alice", request_id).encode())
    root.replace(root.find("saml:EncryptedAssertion", NS), other.find("saml:EncryptedAssertion", NS))
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "encrypted"), 401,
                   "saml_invalid_signature")


# ---- KeyInfo with RSAKeyValue: the key still comes from the configuration ------------------------------

def _rsa_key_value(signature: Any, cert: Path) -> None:
    """Replace the KeyInfo's certificate with the bare RSA public key (KeyValue/RSAKeyValue), as some IdPs
    send it. KeyInfo is not signed, so the signature itself is unchanged."""
    public = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    numbers = public.public_numbers()

    def b64(n: int) -> str:
        return base64.b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode()
    key_info = signature.find("ds:KeyInfo", NS)
    for child in list(key_info):
        key_info.remove(child)
    value = etree.SubElement(etree.SubElement(key_info, f"{{{DS}}}KeyValue"), f"{{{DS}}}RSAKeyValue")
    etree.SubElement(value, f"{{{DS}}}Modulus").text = b64(numbers.n)
    etree.SubElement(value, f"{{{DS}}}Exponent").text = b64(numbers.e)


def test_rsa_key_value_of_the_idp_accepted(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(quirk_world.signed("bob", request_id, idp="either").encode())
    _rsa_key_value(assertion_of(root).find("ds:Signature", NS), quirk_world.idp.cert_file)
    assert b"RSAKeyValue" in etree.tostring(root) and b"X509Certificate" not in etree.tostring(root)
    _accepted(quirk_world, client, _xml(root), "either", "bob@example.com")


def test_rsa_key_value_of_an_attacker_refused(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    xml = quirk_world.resign(quirk_world.signed("alice", request_id, idp="either"), key=quirk_world.other_key)
    root = etree.fromstring(xml.encode())
    _rsa_key_value(assertion_of(root).find("ds:Signature", NS), quirk_world.other_cert)
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_invalid_signature")


def test_response_rsa_key_value_of_an_attacker_refused(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    root = etree.fromstring(sign_response(quirk_world, response_only(quirk_world, "alice", request_id),
                                          key=quirk_world.other_key).encode())
    _rsa_key_value(root.find("ds:Signature", NS), quirk_world.other_cert)
    assert_refused(quirk_world, client, quirk_world.post(client, _xml(root), "either"), 401, "saml_invalid_signature")


# ---- several signing certificates (rollover), inline and in metadata ----------------------------------

@pytest.fixture(params=["rollover", "rollmeta"])
def rolling(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


def test_rollover_current_key_accepted(quirk_world: QuirkWorld, client: httpx.Client, rolling: str) -> None:
    request_id = _start(quirk_world, client, rolling)
    _accepted(quirk_world, client, quirk_world.signed("bob", request_id, idp=rolling), rolling, "bob@example.com")


def test_rollover_old_key_accepted(quirk_world: QuirkWorld, client: httpx.Client, rolling: str) -> None:
    request_id = _start(quirk_world, client, rolling)
    xml = quirk_world.resign(quirk_world.signed("bob", request_id, idp=rolling), key=quirk_world.old_key,
                             cert=quirk_world.old_cert)
    _accepted(quirk_world, client, xml, rolling, "bob@example.com")


def test_rollover_response_signed_by_old_key_accepted(quirk_world: QuirkWorld, client: httpx.Client,
                                                      rolling: str) -> None:
    request_id = _start(quirk_world, client, rolling)
    xml = sign_response(quirk_world, response_only(quirk_world, "bob", request_id, idp=rolling),
                        key=quirk_world.old_key, cert=quirk_world.old_cert)
    _accepted(quirk_world, client, xml, rolling, "bob@example.com")


def test_rollover_third_key_refused(quirk_world: QuirkWorld, client: httpx.Client, rolling: str) -> None:
    request_id = _start(quirk_world, client, rolling)
    xml = quirk_world.resign(quirk_world.signed("alice", request_id, idp=rolling), key=quirk_world.third_key,
                             cert=quirk_world.third_cert)
    assert_refused(quirk_world, client, quirk_world.post(client, xml, rolling), 401, "saml_invalid_signature")


def test_roles_granted_after_response_only_signature(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = _start(quirk_world, client, "either")
    quirk_world.post(client, response_only(quirk_world, "bob", request_id), "either")
    assert role_names(roles_view(quirk_world, client)) == ["Viewer"]


@pytest.mark.parametrize("idp,wanted", [("either", "false"), ("strict", "true"), ("default", "true")])
def test_sp_metadata_says_what_is_required(quirk_world: QuirkWorld, client: httpx.Client, idp: str,
                                           wanted: str) -> None:
    """An IdP that reads the broker's SP metadata learns whether the assertion's own signature is required
    (set `want_assertions_signed: true` for pass-through to AWS, whose own SP metadata wants it)."""
    root = etree.fromstring(client.get(f"{quirk_world.stack.broker_url}/saml/{idp}/metadata").content)
    assert root.find("{urn:oasis:names:tc:SAML:2.0:metadata}SPSSODescriptor").get("WantAssertionsSigned") == wanted
