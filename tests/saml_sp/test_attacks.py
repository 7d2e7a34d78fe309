"""security.md, SAML items 1-10: each attack built from a response pysaml2 signed, refused exactly."""

from __future__ import annotations

import base64
import copy
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.dev_saml_idp import write_key_and_cert
from tests.saml_sp.conftest import NS, SamlWorld, assert_refused, assertion_of, audit_events

SAML = NS["saml"]


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml(root: Any) -> str:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data.decode()


def _evil_copy(assertion: Any, name_id: str = "admin@example.com") -> Any:
    evil = copy.deepcopy(assertion)
    evil.set("ID", "id-evil")
    evil.find("saml:Subject/saml:NameID", NS).text = name_id
    return evil


def _logged_in_subjects(world: SamlWorld) -> list[str]:
    return [e["subject"] for e in audit_events(world.stack) if e["event"] == "login_succeeded"]


# ---- 1. signature wrapping ---------------------------------------------------------------------------

def _xsw_beside(root: Any) -> None:
    assertion = assertion_of(root)
    assertion.addprevious(_evil_copy(assertion))


def _xsw_inside(root: Any) -> None:
    assertion = assertion_of(root)
    assertion.append(_evil_copy(assertion))


def _xsw_extensions(root: Any) -> None:  # the signed assertion hidden in Extensions, an evil one in its place
    assertion = assertion_of(root)
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    evil = _evil_copy(assertion)
    evil.remove(evil.find("ds:Signature", NS))
    assertion.addprevious(evil)
    extensions.append(assertion)


def _xsw_object(root: Any) -> None:  # the evil assertion inside the signature's ds:Object
    assertion = assertion_of(root)
    obj = etree.SubElement(assertion.find("ds:Signature", NS), f"{{{NS['ds']}}}Object")
    obj.append(_evil_copy(assertion))


def _xsw_wrapped_response(root: Any) -> None:  # the whole signed response moved inside an evil one
    inner = copy.deepcopy(root)
    for child in list(root):
        if child.tag == f"{{{SAML}}}Assertion":
            root.remove(child)
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(inner)


@pytest.mark.parametrize(("attack", "reason"), [
    (_xsw_beside, "saml_assertion_count"), (_xsw_inside, "saml_assertion_count"),
    (_xsw_extensions, "saml_assertion_count"), (_xsw_object, "saml_assertion_count"),
    (_xsw_wrapped_response, "saml_assertion_wrapped"),
])
def test_signature_wrapping(saml_world: SamlWorld, client: httpx.Client, attack: Any, reason: str) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id).encode())
    attack(root)
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, reason)
    assert "admin@example.com" not in _logged_in_subjects(saml_world)


def test_tampered_after_signing(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("bob", request_id).encode())
    assertion_of(root).find("saml:Subject/saml:NameID", NS).text = "alice@example.com"
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_invalid_signature")


# ---- 2. comments, CDATA, processing instructions ------------------------------------------------------

@pytest.mark.parametrize("inserted", ["<!---->", "<!-- x -->", "<?evil x?>"])
def test_comment_or_pi_in_name_id(saml_world: SamlWorld, client: httpx.Client, inserted: str) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.signed("alice", request_id).replace("alice@example.com</ns1:NameID>",
                                                        f"alice@example.com{inserted}.evil.com</ns1:NameID>")
    assert_refused(saml_world, client, saml_world.post(client, xml), 400, "saml_xml_comment")


def test_comment_in_attribute_value(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id).replace(">developers<", ">developers<!---->-admins<")
    assert_refused(saml_world, client, saml_world.post(client, xml), 400, "saml_xml_comment")


def test_cdata_is_read_whole(saml_world: SamlWorld, client: httpx.Client) -> None:
    """CDATA canonicalizes to the same text, so the signature holds; the value is read in full."""
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id).replace(">bob@example.com</ns1:NameID>",
                                                      "><![CDATA[bob@]]>example.com</ns1:NameID>")
    assert saml_world.post(client, xml).status_code == 303
    assert _logged_in_subjects(saml_world)[-1] == "bob@example.com"


# ---- 3. signatures ----------------------------------------------------------------------------------

def test_signature_stripped(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id).encode())
    assertion = assertion_of(root)
    assertion.remove(assertion.find("ds:Signature", NS))
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_no_signed_assertion")


def test_unsigned_assertion_in_signed_response(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.signed("alice", request_id, sign_assertion=False, sign_response=True)
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_no_signed_assertion")


def test_signed_assertion_in_unsigned_tampered_response(saml_world: SamlWorld, client: httpx.Client) -> None:
    """The reverse: the envelope is not signed, so nothing in it is trusted beyond exact matches."""
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id, sign_response=True).encode())
    root.remove(root.find("ds:Signature", NS))
    root.set("Destination", saml_world.acs() + "/../evil")
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_destination")


def test_wrong_certificate_with_its_own_key_info(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("alice", request_id), key=saml_world.other_key,
                            cert=saml_world.other_cert)
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_invalid_signature")


def test_sha1_refused(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("alice", request_id), sha1=True)
    assert 'rsa-sha1"' in xml
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_deprecated_signature_method")


def test_resigned_with_the_idp_key_is_accepted(saml_world: SamlWorld, client: httpx.Client) -> None:
    """Control for the tests above: the re-signing helper itself makes valid assertions."""
    request_id = saml_world.start(client)
    assert saml_world.post(client, saml_world.resign(saml_world.signed("bob", request_id))).status_code == 303


# ---- 4. time ----------------------------------------------------------------------------------------

def _set(path: str, attr: str, value: str) -> Any:
    def mutate(root: Any) -> None:
        for node in assertion_of(root).iterfind(path, NS):
            node.set(attr, value)
    return mutate


@pytest.mark.parametrize(("path", "attr", "delta", "reason"), [
    ("saml:Conditions", "NotOnOrAfter", timedelta(minutes=-10), "saml_assertion_expired"),
    ("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", "NotOnOrAfter",
     timedelta(minutes=-10), "saml_wrong_subjectconfirmation"),
    ("saml:Conditions", "NotBefore", timedelta(minutes=10), "saml_assertion_too_early"),
    ("saml:Conditions", "NotBefore", timedelta(minutes=4), "saml_not_yet_valid"),  # inside the library's 5 min
    (".", "IssueInstant", timedelta(minutes=-30), "saml_stale"),
    (".", "IssueInstant", timedelta(minutes=4), "saml_issued_in_future"),
])
def test_times(saml_world: SamlWorld, client: httpx.Client, path: str, attr: str, delta: timedelta,
               reason: str) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("alice", request_id), _set(path, attr, _iso(delta)))
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, reason)


def test_clock_skew_tolerated(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)  # corp's clock_skew is 2 minutes
    xml = saml_world.resign(saml_world.signed("bob", request_id),
                            _set("saml:Conditions", "NotBefore", _iso(timedelta(seconds=60))))
    assert saml_world.post(client, xml).status_code == 303


# ---- 5. audience, destination, recipient -------------------------------------------------------------

def test_audience_of_another_sp(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.signed("alice", request_id, sp_entity_id=saml_world.sp_entity("corpopen"))
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_wrong_audience")


def test_audience_missing(saml_world: SamlWorld, client: httpx.Client) -> None:
    def drop(root: Any) -> None:
        conditions = assertion_of(root).find("saml:Conditions", NS)
        for restriction in conditions.findall("saml:AudienceRestriction", NS):
            conditions.remove(restriction)
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("alice", request_id), drop)
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_audience")


@pytest.mark.parametrize("suffix", ["-evil", "/x", "?x=1"])
def test_destination_prefix_is_not_enough(saml_world: SamlWorld, client: httpx.Client, suffix: str) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id).encode())
    root.set("Destination", saml_world.acs() + suffix)  # python3-saml alone accepts a prefix match
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_destination")


def test_destination_missing(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id).encode())
    del root.attrib["Destination"]
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_destination")


@pytest.mark.parametrize("recipient", ["{acs}-evil", "https://evil.example/?{acs}", None])
def test_recipient_exact(saml_world: SamlWorld, client: httpx.Client, recipient: str | None) -> None:
    def mutate(root: Any) -> None:
        data = assertion_of(root).find(".//saml:SubjectConfirmationData", NS)
        if recipient is None:
            del data.attrib["Recipient"]
        else:
            data.set("Recipient", recipient.format(acs=saml_world.acs()))
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("alice", request_id), mutate)
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_recipient")


def test_spoofed_host_headers_change_nothing(saml_world: SamlWorld, client: httpx.Client) -> None:
    evil = "http://evil.example/saml/corp/acs"
    spoof = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    request_id = saml_world.start(client)
    xml = saml_world.signed("alice", request_id, destination=evil)
    assert_refused(saml_world, client, saml_world.post(client, xml, headers=spoof), 401, "saml_wrong_destination")
    request_id = saml_world.start(client)  # and a good response is still judged against the configured URL
    assert saml_world.post(client, saml_world.signed("bob", request_id), headers=spoof).status_code == 303


# ---- 6. InResponseTo ---------------------------------------------------------------------------------

def test_unsolicited_refused_where_not_allowed(saml_world: SamlWorld, client: httpx.Client) -> None:
    assert_refused(saml_world, client, saml_world.post(client, saml_world.signed("alice", None)), 401,
                   "saml_unsolicited")


def test_unknown_request_id(saml_world: SamlWorld, client: httpx.Client) -> None:
    saml_world.start(client)
    xml = saml_world.signed("alice", "ONELOGIN_" + "0" * 40)
    assert_refused(saml_world, client, saml_world.post(client, xml), 400, "saml_request_not_bound")


def test_request_from_another_browser(saml_world: SamlWorld, client: httpx.Client) -> None:
    with httpx.Client(timeout=20) as victim:
        request_id = saml_world.start(victim)
    xml = saml_world.signed("alice", request_id)
    assert_refused(saml_world, client, saml_world.post(client, xml), 400, "saml_request_not_bound")


def test_request_id_single_use(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    binding = client.cookies.get("sts_broker_saml")
    assert binding is not None
    assert saml_world.post(client, saml_world.signed("bob", request_id)).status_code == 303
    client.cookies.clear()
    client.cookies.set("sts_broker_saml", binding, path="/saml/corp/acs")  # the same browser, again
    assert_refused(saml_world, client, saml_world.post(client, saml_world.signed("bob", request_id)), 400,
                   "saml_request_unknown")


def test_response_for_one_idp_at_another_acs(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client, "corpopen")
    xml = saml_world.signed("alice", request_id, idp="corpopen")
    assert_refused(saml_world, client, saml_world.post(client, xml, idp="corp"), 400, "saml_request_not_bound")


# ---- 7. replay ---------------------------------------------------------------------------------------

def test_assertion_replay(saml_world: SamlWorld, client: httpx.Client) -> None:
    xml = saml_world.signed("bob", None, idp="corpopen")
    assert saml_world.post(client, xml, idp="corpopen").status_code == 303
    with httpx.Client(timeout=20, headers={"Accept": "application/json"}) as other:
        assert_refused(saml_world, other, saml_world.post(other, xml, idp="corpopen"), 401, "saml_replay")


# ---- 8. XML attacks and sizes ------------------------------------------------------------------------

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                            for i in range(1, 10))
                  + ']><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol9;</samlp:Response>')
XXE = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>')


@pytest.mark.parametrize(("body", "status", "reason"), [
    (BILLION_LAUGHS, 400, "saml_xml_dtd"),
    (XXE, 400, "saml_xml_dtd"),
    ('<!DOCTYPE r SYSTEM "http://127.0.0.1:1/x.dtd"><r/>', 400, "saml_xml_dtd"),
    ("<a>" * 200 + "</a>" * 200, 400, "saml_xml_too_deep"),
    ("<a>" + "<b/>" * 5000 + "</a>", 400, "saml_too_large"),
    ("<a><b>", 400, "saml_xml_malformed"),
    ("<a>" + "x" * 100_000 + "</a>", 413, "payload_too_large"),
])
def test_hostile_xml(saml_world: SamlWorld, client: httpx.Client, body: str, status: int, reason: str) -> None:
    started = time.monotonic()
    response = saml_world.post(client, body)
    assert time.monotonic() - started < 2.0
    assert_refused(saml_world, client, response, status, reason)


def test_not_base64_and_missing(saml_world: SamlWorld, client: httpx.Client) -> None:
    url = saml_world.acs()
    assert_refused(saml_world, client, client.post(url, data={"SAMLResponse": "%%%not base64"}), 400,
                   "saml_not_base64")
    assert_refused(saml_world, client, client.post(url, data={"RelayState": "/roles"}), 400,
                   "saml_response_missing")
    assert_refused(saml_world, client, client.post(url, content=b"<xml/>", headers={"Content-Type": "text/xml"}),
                   400, "saml_not_form")
    big = {"SAMLResponse": base64.b64encode(b"x" * 200_000).decode()}
    assert_refused(saml_world, client, client.post(url, data=big), 413, "payload_too_large")


# ---- 9. multiple assertions, encrypted + plain, duplicated attributes --------------------------------

def test_two_signed_assertions(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("bob", request_id).encode())
    other = etree.fromstring(saml_world.signed("alice", request_id).encode())
    assertion_of(root).addnext(assertion_of(other))
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_assertion_count")


def test_encrypted_beside_plain(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("bob", request_id).encode())
    encrypted = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    etree.SubElement(encrypted, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
    assertion_of(root).addprevious(encrypted)
    assert_refused(saml_world, client, saml_world.post(client, _xml(root)), 401, "saml_assertion_count")


XENC = "http://www.w3.org/2001/04/xmlenc#"


@pytest.mark.parametrize("encryption", [
    None,  # pysaml2's own default: 3DES content encryption
    (f"{XENC}aes256-cbc", f"{XENC}rsa-1_5"),  # RSA PKCS#1 v1.5 key transport: a decryption oracle
])
def test_weakly_encrypted_assertion(saml_world: SamlWorld, client: httpx.Client, tmp_path: Path,
                                    encryption: tuple[str, str] | None) -> None:
    """Refused from its EncryptionMethod, before any decryption is attempted."""
    _, cert = write_key_and_cert(tmp_path, "sp", "sts-broker-sp")
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id, encrypt_assertion=True, encrypt_cert_assertion=cert.read_text(),
                            encrypt_assertion_self_contained=False, encryption=encryption)
    assert "EncryptedAssertion" in xml and "<saml:Assertion" not in xml
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_weak_encryption")


def test_duplicated_attribute(saml_world: SamlWorld, client: httpx.Client) -> None:
    def duplicate(root: Any) -> None:
        groups = assertion_of(root).find(".//saml:Attribute[@Name='groups']", NS)
        extra = copy.deepcopy(groups)
        extra.find("saml:AttributeValue", NS).text = "platform-admins"
        groups.addnext(extra)
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("bob", request_id), duplicate)
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_duplicate_attribute")


# ---- 10. RelayState -----------------------------------------------------------------------------------

RELAYS = ["https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example", "/roles@evil.example",
          "https://user@evil.example", "%2F%2Fevil.example", "/%2F%2Fevil.example", "javascript:alert(1)",
          "JaVaScRiPt:alert(1)", " /roles", "/roles?next=//evil.example", "/roles#x", "http:/evil.example"]


@pytest.mark.parametrize("relay", RELAYS)
def test_relay_state_open_redirects(saml_world: SamlWorld, client: httpx.Client, relay: str) -> None:
    xml = saml_world.signed("bob", None, idp="corpopen")
    response = saml_world.post(client, xml, idp="corpopen", relay=relay)
    assert_refused(saml_world, client, response, 400, "saml_relay_state")


def test_relay_state_checked_on_sp_initiated_too(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    response = saml_world.post(client, saml_world.signed("bob", request_id), relay="//evil.example")
    assert_refused(saml_world, client, response, 400, "saml_relay_state")
