"""Signature wrapping, transforms, references, ID confusion, comments, DTDs in every encoding and the two
freeze attacks, each built from a response pysaml2 signed and posted through the real HTTP ACS.

Every refusal: the exact status and reason, a public message, the audit event, and no session."""

from __future__ import annotations

import base64
import copy
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack import browser
from broker.devstack.dev_saml_idp import write_key_and_cert
from tests.saml_sp.conftest import NS, SamlWorld, assert_refused, audit_events, client, saml_world
from tests.security._saml_support import (
    C14N10,
    DOCTYPES,
    ENCODINGS,
    ENVELOPED,
    EVIL_NAME,
    EXC_C14N,
    Broker,
    Variant,
    comment_variants,
    encoded,
    encrypt_assertion,
    inclusive_namespaces,
    other_broker,
    transforms,
    wrapping_variants,
    xml_text,
    xpath_count_over_advice,
    xslt_recursion,
)

__all__ = ["client", "saml_world"]  # the SAML world's fixtures, shared with tests/saml_sp


def _logged_in(world: SamlWorld) -> list[str]:
    return [e["subject"] for e in audit_events(world.stack) if e["event"] == "login_succeeded"]


def _built(world: SamlWorld, client: httpx.Client, variant: Variant, user: str = "alice") -> str:
    request_id = world.start(client)
    root = etree.fromstring(world.signed(user, request_id, sign_response=variant.sign_response).encode())
    variant.mutate(root)
    return xml_text(root)


VARIANTS = wrapping_variants() + comment_variants()


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_refused(saml_world: SamlWorld, client: httpx.Client, variant: Variant) -> None:
    response = saml_world.post(client, _built(saml_world, client, variant))
    assert_refused(saml_world, client, response, variant.status, variant.reason)
    assert EVIL_NAME not in _logged_in(saml_world)


def test_the_generator_covers_the_classic_shapes() -> None:
    names = {v.name for v in VARIANTS}
    assert {f"XSW{i}" for i in range(1, 9)} <= names
    assert len(VARIANTS) >= 45


# ---- the allow-list is not too narrow: what real IdPs send still signs people in ---------------------

def _okta_style(root: Any) -> None:
    """Okta and Shibboleth name an InclusiveNamespaces PrefixList in the exclusive c14n transform."""
    transforms(ENVELOPED, (EXC_C14N, inclusive_namespaces(PrefixList="xs")))(root)


def _adfs_style(root: Any) -> None:
    """ADFS/Entra pretty-print: whitespace between every element of the Signature."""
    signature = root.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature")
    for element in signature.iter():
        if len(element):
            element.text = "\n  "
            for child in element:
                child.tail = "\n  "


@pytest.mark.parametrize("shape", [_okta_style, _adfs_style], ids=["inclusive namespaces", "pretty-printed"])
def test_genuine_shapes_accepted(saml_world: SamlWorld, client: httpx.Client, shape: Any) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("bob", request_id), shape)
    assert saml_world.post(client, xml).status_code == 303
    assert _logged_in(saml_world)[-1] == "bob@example.com"


def test_signed_response_and_assertion_accepted(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    assert saml_world.post(client, saml_world.signed("bob", request_id, sign_response=True)).status_code == 303


def test_inclusive_c14n_genuinely_signed_is_still_refused(saml_world: SamlWorld, client: httpx.Client) -> None:
    """A valid signature in a shape off the list is refused unverified (xmlsec1 signs it; we never check)."""
    request_id = saml_world.start(client)
    xml = saml_world.resign(saml_world.signed("bob", request_id), transforms(ENVELOPED, C14N10))
    assert_refused(saml_world, client, saml_world.post(client, xml), 401, "saml_signature_shape")


def test_cdata_in_attribute_value_read_whole(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id).replace(">developers<", "><![CDATA[devel]]>opers<")
    assert ">developers<" not in xml
    assert saml_world.post(client, xml).status_code == 303
    assert _logged_in(saml_world)[-1] == "bob@example.com"


# ---- DTDs in every encoding ---------------------------------------------------------------------------

def _root_name(xml: str) -> str:
    root = etree.fromstring(xml.encode())
    return f"{root.prefix}:Response" if root.prefix else "Response"


@pytest.mark.parametrize(("name", "declaration", "codec", "bom"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
@pytest.mark.parametrize("doctype", sorted(DOCTYPES))
def test_dtd_in_every_encoding(saml_world: SamlWorld, client: httpx.Client, name: str, declaration: str | None,
                               codec: str, bom: bytes, doctype: str) -> None:
    """A genuine response, re-encoded, with a DOCTYPE: refused whatever the encoding hides from a byte
    pattern (this signed people in when the guard read bytes)."""
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id)
    dtd = DOCTYPES[doctype].replace("samlp:Response", _root_name(xml))
    response = saml_world.post(client, encoded(xml, declaration, codec, bom, dtd))
    assert_refused(saml_world, client, response, 400, "saml_xml_dtd")


def test_entity_in_use_utf16(saml_world: SamlWorld, client: httpx.Client) -> None:
    """The entity expanding into an unsigned attribute value, and an ATTLIST default, in UTF-16."""
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id)
    name = _root_name(xml)
    xml = xml.replace(f"<{name} ", f'<{name} Consent="&e;" ', 1)
    dtd = f'<!DOCTYPE {name} [<!ENTITY e "urn:evil"><!ATTLIST {name} Evil CDATA "injected">]>'
    response = saml_world.post(client, encoded(xml, "UTF-16", "utf-16-le", b"\xff\xfe", dtd))
    assert_refused(saml_world, client, response, 400, "saml_xml_dtd")


def test_local_dtd_file_never_read(saml_world: SamlWorld, client: httpx.Client, tmp_path: Path) -> None:
    """A DOCTYPE naming a local file (libxml2 reads it even with DTD loading off) in UTF-16: refused, and
    its ATTLIST default never reaches the tree (see also test_saml_acs_limits)."""
    dtd_file = tmp_path / "evil.dtd"
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id)
    name = _root_name(xml)
    dtd_file.write_text(f'<!ATTLIST {name} Evil CDATA "injected">')
    response = saml_world.post(client, encoded(xml, "UTF-16", "utf-16-le", b"\xff\xfe",
                                               f'<!DOCTYPE {name} SYSTEM "{dtd_file.as_uri()}">'))
    assert_refused(saml_world, client, response, 400, "saml_xml_dtd")


@pytest.mark.parametrize(("name", "declaration", "codec", "bom"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_genuine_response_in_every_encoding(saml_world: SamlWorld, client: httpx.Client, name: str,
                                            declaration: str | None, codec: str, bom: bytes) -> None:
    """Control: without a DTD the same re-encoded response signs in; the refusal above is the DTD's."""
    request_id = saml_world.start(client)
    xml = saml_world.signed("bob", request_id)
    assert saml_world.post(client, encoded(xml, declaration, codec, bom)).status_code == 303


# ---- the two freeze attacks ---------------------------------------------------------------------------

# Sizes that froze the unfixed broker: XSLT depth 18 cost 1.4 s and each level doubles (depth 24: ~90 s);
# 300 empty Advice elements under the XPath count cost 8.9 s (measured on the 2-core test machine).
FREEZES = {"XSLT recursion": xslt_recursion(24), "XPath count over Advice": xpath_count_over_advice(600)}
REFUSE_WITHIN = 2.0  # seconds for the hostile post itself: it never reaches xmlsec (was 90 s and more)
HEALTHZ_WITHIN = 0.5  # seconds, worst /healthz while hostile posts are in flight (was 8.8 s for one post)


@pytest.mark.parametrize("attack", sorted(FREEZES))
def test_freeze_attack_refused_before_xmlsec(saml_world: SamlWorld, client: httpx.Client, attack: str) -> None:
    request_id = saml_world.start(client)
    root = etree.fromstring(saml_world.signed("alice", request_id).encode())
    FREEZES[attack](root)
    started = time.monotonic()
    response = saml_world.post(client, xml_text(root))
    assert time.monotonic() - started < REFUSE_WITHIN
    assert_refused(saml_world, client, response, 401, "saml_signature_shape")


def test_healthz_stays_fast_while_freeze_attacks_are_posted(saml_world: SamlWorld) -> None:
    """Eight browsers post both freeze attacks, four rounds each, while /healthz is polled and another
    person signs in: every answer comes quickly, and every hostile post is refused (the first of each
    browser by its shape, the next ones because the request ID is used up)."""
    hostile: list[tuple[httpx.Client, str]] = []
    for i in range(8):
        attacker = httpx.Client(timeout=30, headers={"Accept": "application/json"})
        root = etree.fromstring(saml_world.signed("alice", saml_world.start(attacker)).encode())
        FREEZES[sorted(FREEZES)[i % 2]](root)
        hostile.append((attacker, xml_text(root)))
    outcomes: list[tuple[int, str]] = []

    def attack(attacker: httpx.Client, xml: str) -> None:
        body = {"SAMLResponse": base64.b64encode(xml.encode()).decode()}
        for _ in range(4):  # the first uses the request ID up; the others find it gone
            answer = attacker.post(saml_world.acs(), data=body)
            outcomes.append((answer.status_code, answer.json()["error"]))

    threads = [threading.Thread(target=attack, args=pair) for pair in hostile]
    latencies: list[float] = []
    with httpx.Client(timeout=30) as probe, browser.browser() as person:
        genuine = saml_world.signed("bob", saml_world.start(person))
        for thread in threads:
            thread.start()
        started = time.monotonic()  # someone else's login, in the middle of the burst
        assert saml_world.post(person, genuine).status_code == 303
        login_took = time.monotonic() - started
        deadline = time.monotonic() + 60
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            started = time.monotonic()
            assert probe.get(f"{saml_world.stack.broker_url}/healthz").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=30)
    for attacker, _ in hostile:
        attacker.close()
    assert len(outcomes) == 32 and latencies
    assert outcomes.count((401, "saml_signature_shape")) == 8
    assert outcomes.count((400, "saml_request_unknown")) == 24
    assert max(latencies) < HEALTHZ_WITHIN, (max(latencies), statistics.median(latencies))
    assert login_took < REFUSE_WITHIN


# ---- what is inside an encrypted assertion passes the same checks --------------------------------------

@pytest.fixture(scope="module")
def encrypting(saml_world: SamlWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    """A broker that wants encrypted assertions (its SP key pair made here); the attacker encrypts to its
    public certificate."""
    work = tmp_path_factory.mktemp("encrypting")
    key, cert = write_key_and_cert(work / "sp", "sp", "sts-broker-sp")
    extra = {"want_assertions_encrypted": True, "sp_keys": {"key_file": str(key), "cert_file": str(cert)}}
    with other_broker(saml_world, work / "broker", extra, {"rate_limits": {"acs_posts": 100000}}) as broker:
        yield broker, cert


def _encrypted(world: SamlWorld, broker: Broker, client: httpx.Client, cert: Path, mutate: Any) -> str:
    root = etree.fromstring(broker.signed(world, broker.start(client)).encode())
    if mutate is not None:
        mutate(root)
    encrypt_assertion(root, cert)
    return xml_text(root)


def _comment_in_name_id(root: Any) -> None:
    """CVE-2017-11427 style: the comment leaves the digest unchanged, so the signature still holds."""
    name_id = root.find(f".//{{{NS['saml']}}}NameID")
    name_id.text = "bob@example.com"
    name_id.append(etree.Comment("x"))
    name_id[-1].tail = ".evil.com"


@pytest.mark.parametrize(("mutate", "status", "reason"), [
    (None, 303, None),
    (xslt_recursion(24), 401, "saml_signature_shape"),
    (xpath_count_over_advice(300), 401, "saml_signature_shape"),
    (_comment_in_name_id, 400, "saml_xml_comment"),
], ids=["genuine", "XSLT inside", "XPath count inside", "comment in NameID inside"])
def test_inside_encryption(saml_world: SamlWorld, encrypting: tuple[Broker, Path], mutate: Any, status: int,
                           reason: str | None) -> None:
    broker, cert = encrypting
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        xml = _encrypted(saml_world, broker, client, cert, mutate)
        assert "EncryptedAssertion" in xml and "NameID" not in xml
        logins = [e for e in broker.events() if e["event"] == "login_succeeded"]
        started = time.monotonic()
        response = broker.post(client, xml)
        assert time.monotonic() - started < REFUSE_WITHIN
        assert response.status_code == status, response.text[:300]
        if reason is not None:
            body = response.json()
            assert body["error"] == reason
            [event] = [e for e in broker.events() if e.get("error_id") == body["error_id"]]
            assert event["reason"] == reason and event["status"] == status
            assert client.cookies.get("sts_broker_session") is None
            assert [e for e in broker.events() if e["event"] == "login_succeeded"] == logins


XENC = "http://www.w3.org/2001/04/xmlenc#"


def test_cipher_reference_refused(saml_world: SamlWorld, encrypting: tuple[Broker, Path]) -> None:
    """Cipher text fetched through a CipherReference (with its own XPath transform) instead of carried inline:
    refused before anything is decrypted."""
    broker, cert = encrypting
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        root = etree.fromstring(_encrypted(saml_world, broker, client, cert, None).encode())
        data = root.find(f".//{{{XENC}}}EncryptedData/{{{XENC}}}CipherData")
        data.remove(data[0])
        reference = etree.SubElement(data, f"{{{XENC}}}CipherReference", URI="")
        transform = etree.SubElement(etree.SubElement(reference, f"{{{XENC}}}Transforms"),
                                     f"{{{NS['ds']}}}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
        etree.SubElement(transform, f"{{{NS['ds']}}}XPath").text = "count(//. | //@* | //namespace::*)"
        response = broker.post(client, xml_text(root))
        assert response.status_code == 401 and response.json()["error"] == "saml_signature_shape"
        [event] = [e for e in broker.events() if e.get("error_id") == response.json()["error_id"]]
        assert event["reason"] == "saml_signature_shape"
        assert client.cookies.get("sts_broker_session") is None


# ---- Okta's layout: the EncryptedKey beside the EncryptedData, named by a RetrievalMethod ---------------

DS_NS = NS["ds"]


def _okta_layout(root: Any, key_id: str = "_okta-ek-1") -> Any:
    """Move the EncryptedKey out of the EncryptedData's KeyInfo to sit beside it, and point at it with a
    RetrievalMethod, as Okta sends encrypted assertions (the outer layout is not signed: the assertion's own
    signature is inside the encryption). Returns the RetrievalMethod."""
    data = root.find(f".//{{{XENC}}}EncryptedData")
    key_info = data.find(f"{{{DS_NS}}}KeyInfo")
    encrypted_key = key_info.find(f"{{{XENC}}}EncryptedKey")
    key_info.remove(encrypted_key)
    encrypted_key.set("Id", key_id)
    data.addnext(encrypted_key)
    return etree.SubElement(key_info, f"{{{DS_NS}}}RetrievalMethod", URI=f"#{key_id}", Type=f"{XENC}EncryptedKey")


def _post_encrypted(world: SamlWorld, broker: Broker, client: httpx.Client, cert: Path, change: Any) -> httpx.Response:
    root = etree.fromstring(_encrypted(world, broker, client, cert, None).encode())
    change(root)
    return broker.post(client, xml_text(root))


def test_okta_encrypted_key_layout_accepted(saml_world: SamlWorld, encrypting: tuple[Broker, Path]) -> None:
    broker, cert = encrypting
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        response = _post_encrypted(saml_world, broker, client, cert, _okta_layout)
        assert response.status_code == 303, response.text[:300]
        assert client.cookies.get("sts_broker_session")


def _transforms_inside(root: Any) -> None:
    method = _okta_layout(root)
    transform = etree.SubElement(etree.SubElement(method, f"{{{DS_NS}}}Transforms"), f"{{{DS_NS}}}Transform",
                                 Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(transform, f"{{{DS_NS}}}XPath").text = "count(//. | //@* | //namespace::*)"


def _external_uri(root: Any) -> None:
    _okta_layout(root).set("URI", "http://127.0.0.1:9/key.xml")


def _points_at_the_data(root: Any) -> None:
    data = root.find(f".//{{{XENC}}}EncryptedData")
    data.set("Id", "_data-1")
    _okta_layout(root).set("URI", "#_data-1")


def _other_type(root: Any) -> None:
    _okta_layout(root).set("Type", "http://www.w3.org/2000/09/xmldsig#rawX509Certificate")


def _two_methods(root: Any) -> None:
    method = _okta_layout(root)
    method.addnext(copy.deepcopy(method))


def _id_twice(root: Any) -> None:
    _okta_layout(root)
    root.find(f".//{{{XENC}}}EncryptedData").set("Id", "_okta-ek-1")


def _in_a_signature(root: Any) -> None:
    """The same pointer in the Response's signature KeyInfo is not the Okta layout."""
    _okta_layout(root)
    signature = etree.SubElement(root, f"{{{DS_NS}}}KeyInfo")
    etree.SubElement(signature, f"{{{DS_NS}}}RetrievalMethod", URI="#_okta-ek-1", Type=f"{XENC}EncryptedKey")


@pytest.mark.parametrize("change", [_transforms_inside, _external_uri, _points_at_the_data, _other_type,
                                    _two_methods, _id_twice, _in_a_signature],
                         ids=["transforms", "external URI", "not an EncryptedKey", "other Type", "two", "ID twice",
                              "outside EncryptedData"])
def test_retrieval_method_outside_the_okta_layout_refused(saml_world: SamlWorld, encrypting: tuple[Broker, Path],
                                                          change: Any) -> None:
    broker, cert = encrypting
    logins = [e for e in broker.events() if e["event"] == "login_succeeded"]
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        response = _post_encrypted(saml_world, broker, client, cert, change)
        assert response.status_code == 401, response.text[:300]
        body = response.json()
        assert body["error"] == "saml_signature_shape"
        [event] = [e for e in broker.events() if e.get("error_id") == body["error_id"]]
        assert event["reason"] == "saml_signature_shape" and event["status"] == 401
        assert client.cookies.get("sts_broker_session") is None
        assert [e for e in broker.events() if e["event"] == "login_succeeded"] == logins
