"""Hostile SAML responses for tests/security/test_saml_*.py, each built from a response pysaml2 signed
(through the xmlsec1 program): the eight classic signature-wrapping shapes (XSW1-XSW8), transforms,
references, ID confusion, comments/CDATA/PI in signed text, DTDs in every encoding, and the two transforms
that froze the broker (a recursive XSLT template, an XPath count over empty elements in saml:Advice).

A variant is a mutation of the parsed response plus the refusal it must meet. Positive controls (genuine
shapes real IdPs send, re-signed by pysaml2) live beside them, so the allow-list is shown to be neither
too wide nor too narrow.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import xmlsec
from lxml import etree  # type: ignore[import-untyped]

from broker.config import load_settings
from broker.devstack.dev_saml_idp import saml_idp_config
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DEMO_RULES, write_config
from broker.web.app import create_app
from tests.saml_sp.conftest import NS, SamlWorld, assertion_of
from tests.support.saml_login import authn_request_id

SAML, SAMLP, DS = NS["saml"], NS["samlp"], NS["ds"]
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = f"{DS}enveloped-signature"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH2 = "http://www.w3.org/2002/06/xmldsig-filter2"
BASE64 = f"{DS}base64"
C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
EXC_C14N_COMMENTS = f"{EXC_C14N}WithComments"
EVIL_NAME = "admin@example.com"

Mutation = Callable[[Any], None]


@dataclass(frozen=True)
class Variant:
    name: str
    mutate: Mutation
    status: int
    reason: str
    sign_response: bool = False  # start from a response whose Response element is signed too (XSW1, XSW2)


def q(tag: str, ns: str = SAML) -> str:
    return f"{{{ns}}}{tag}"


def xml_text(root: Any) -> str:
    data: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")  # with siblings
    return data.decode()


def signature_of(element: Any) -> Any:
    return element.find(q("Signature", DS))


def evil_copy(assertion: Any, new_id: str | None = "id-evil", keep_signature: bool = False) -> Any:
    evil = copy.deepcopy(assertion)
    if new_id is not None:
        evil.set("ID", new_id)
    evil.find(f"{q('Subject')}/{q('NameID')}").text = EVIL_NAME
    if not keep_signature and signature_of(evil) is not None:
        evil.remove(signature_of(evil))
    return evil


# ---- the eight classic wrapping shapes (Somorovsky et al., "On Breaking SAML", and SAML Raider) ----------

def xsw1(root: Any) -> None:
    """Response signature: the signed Response moved inside the (copied) Signature of an evil Response."""
    original = copy.deepcopy(root)
    root.set("ID", "id-evil-response")
    assertion = assertion_of(root)
    assertion.getparent().replace(assertion, evil_copy(assertion))
    signature_of(root).append(original)


def xsw2(root: Any) -> None:
    """Response signature: the signed Response detached, placed before the Signature of an evil Response."""
    original = copy.deepcopy(root)
    root.set("ID", "id-evil-response")
    assertion = assertion_of(root)
    assertion.getparent().replace(assertion, evil_copy(assertion))
    signature_of(root).addprevious(original)


def xsw3(root: Any) -> None:
    """An evil assertion (same ID) before the signed one."""
    assertion = assertion_of(root)
    assertion.addprevious(evil_copy(assertion, new_id=None))


def xsw4(root: Any) -> None:
    """An evil assertion wrapping the signed one."""
    assertion = assertion_of(root)
    evil = evil_copy(assertion)
    root.replace(assertion, evil)
    evil.append(assertion)


def xsw5(root: Any) -> None:
    """The evil assertion carries the copied signature; the signed assertion, unsigned, at the end."""
    assertion = assertion_of(root)
    evil = evil_copy(assertion, new_id=None, keep_signature=True)
    root.replace(assertion, evil)
    assertion.remove(signature_of(assertion))
    root.append(assertion)


def xsw6(root: Any) -> None:
    """The evil assertion carries the copied signature, the signed assertion inside that signature."""
    assertion = assertion_of(root)
    evil = evil_copy(assertion, new_id=None, keep_signature=True)
    root.replace(assertion, evil)
    signature_of(evil).append(assertion)


def xsw7(root: Any) -> None:
    """The signed assertion inside samlp:Extensions, an unsigned evil one in its place."""
    assertion = assertion_of(root)
    extensions = etree.Element(q("Extensions", SAMLP))
    root.find(q("Issuer")).addnext(extensions)
    root.replace(assertion, evil_copy(assertion))
    extensions.append(assertion)


def xsw8(root: Any) -> None:
    """The evil assertion's signature holds a ds:Object with the original assertion, its signature removed."""
    assertion = assertion_of(root)
    evil = evil_copy(assertion, new_id=None, keep_signature=True)
    root.replace(assertion, evil)
    assertion.remove(signature_of(assertion))
    obj = etree.SubElement(signature_of(evil), q("Object", DS))
    obj.append(assertion)


def in_advice(root: Any) -> None:
    """The only assertion's signature moved into saml:Advice (a Signature where none may be)."""
    assertion = assertion_of(root)
    advice = etree.Element(q("Advice"))
    assertion.find(q("Conditions")).addnext(advice)
    advice.append(signature_of(assertion))


# ---- references, IDs --------------------------------------------------------------------------------

def _reference(root: Any, response: bool = False) -> Any:
    """The Reference of the assertion's signature (or of the Response's own, with response=True)."""
    holder = root if response else assertion_of(root)
    return signature_of(holder).find(f"{q('SignedInfo', DS)}/{q('Reference', DS)}")


def set_uri(uri: str, response: bool = False) -> Mutation:
    def mutate(root: Any) -> None:
        _reference(root, response).set("URI", uri.format(response=root.get("ID"),
                                                          assertion=assertion_of(root).get("ID")))
    return mutate


def two_references(root: Any) -> None:
    reference = _reference(root)
    other = copy.deepcopy(reference)
    other.set("URI", f"#{root.get('ID')}")
    reference.addnext(other)


def duplicate_id_in_extensions(root: Any) -> None:
    """ID confusion: another element carries the signed assertion's ID."""
    extensions = etree.Element(q("Extensions", SAMLP))
    root.find(q("Issuer")).addnext(extensions)
    etree.SubElement(extensions, "{urn:evil}x", ID=assertion_of(root).get("ID"))


def response_id_is_assertion_id(root: Any) -> None:
    root.set("ID", assertion_of(root).get("ID"))


def xml_id_twin(root: Any) -> None:
    root.find(q("Issuer")).set("{http://www.w3.org/XML/1998/namespace}id", assertion_of(root).get("ID"))


def xpointer_id(root: Any) -> None:
    """The assertion's ID made an XPointer expression, and the Reference pointing at it."""
    assertion_of(root).set("ID", "xpointer(/)")
    _reference(root).set("URI", "#xpointer(/)")


def signature_elsewhere(parent_path: str) -> Mutation:
    def mutate(root: Any) -> None:
        assertion = assertion_of(root)
        assertion.find(parent_path).append(signature_of(assertion))
    return mutate


def second_signature(root: Any) -> None:
    signature = signature_of(assertion_of(root))
    signature.addnext(copy.deepcopy(signature))


def add_to_signature(tag: str, ns: str = DS, **attrib: str) -> Mutation:
    def mutate(root: Any) -> None:
        etree.SubElement(signature_of(assertion_of(root)), q(tag, ns), **attrib)
    return mutate


def retrieval_method(root: Any) -> None:
    key_info = signature_of(assertion_of(root)).find(q("KeyInfo", DS))
    method = etree.SubElement(key_info, q("RetrievalMethod", DS), URI="#evil",
                              Type="http://www.w3.org/2000/09/xmldsig#X509Data")
    transforms = etree.SubElement(method, q("Transforms", DS))
    etree.SubElement(transforms, q("Transform", DS), Algorithm=XSLT)


# ---- transforms and algorithms ----------------------------------------------------------------------

def transforms(*steps: str | tuple[str, Callable[[Any], None]], response: bool = False) -> Mutation:
    """Replace the Reference's transforms: each step an Algorithm, or (Algorithm, fill the element)."""
    def mutate(root: Any) -> None:
        holder = _reference(root, response).find(q("Transforms", DS))
        for child in list(holder):
            holder.remove(child)
        for step in steps:
            algorithm, fill = step if isinstance(step, tuple) else (step, None)
            element = etree.SubElement(holder, q("Transform", DS), Algorithm=algorithm)
            if fill is not None:
                fill(element)
    return mutate


def xpath_text(expression: str) -> Callable[[Any], None]:
    def fill(element: Any) -> None:
        etree.SubElement(element, q("XPath", DS)).text = expression
    return fill


def xpath2_filter(element: Any) -> None:
    etree.SubElement(element, f"{{{XPATH2}}}XPath", Filter="union").text = "//."


RECURSIVE_XSLT = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:template match="/"><xsl:call-template name="r"><xsl:with-param name="n" select="{depth}"/></xsl:call-template>
</xsl:template>
<xsl:template name="r"><xsl:param name="n"/><xsl:if test="$n &gt; 0">
<xsl:call-template name="r"><xsl:with-param name="n" select="$n - 1"/></xsl:call-template>
<xsl:call-template name="r"><xsl:with-param name="n" select="$n - 1"/></xsl:call-template>
</xsl:if></xsl:template></xsl:stylesheet>"""


def xslt(depth: int) -> Callable[[Any], None]:
    """A named template calling itself twice per level: 2**depth calls."""
    def fill(element: Any) -> None:
        element.append(etree.fromstring(RECURSIVE_XSLT.format(depth=depth)))
    return fill


def xslt_recursion(depth: int) -> Mutation:
    return transforms(ENVELOPED, (XSLT, xslt(depth)), EXC_C14N)


FREEZE_XPATH = "count(//. | //@* | //namespace::*)"


def xpath_count_over_advice(empty_elements: int) -> Mutation:
    """The XPath transform is evaluated once per node of the document, and counts every node each time."""
    def mutate(root: Any) -> None:
        assertion = assertion_of(root)
        advice = etree.Element(q("Advice"))
        assertion.find(q("Conditions")).addnext(advice)  # where the schema allows it
        for _ in range(empty_elements):
            etree.SubElement(advice, "{urn:x-evil}e")
        transforms(ENVELOPED, (XPATH, xpath_text(FREEZE_XPATH)), EXC_C14N)(root)
    return mutate


def set_algorithm(path: str, algorithm: str) -> Mutation:
    def mutate(root: Any) -> None:
        signature_of(assertion_of(root)).find(path).set("Algorithm", algorithm)
    return mutate


def inclusive_namespaces(**attrib: str) -> Callable[[Any], None]:
    def fill(element: Any) -> None:
        etree.SubElement(element, f"{{{EXC_C14N}}}InclusiveNamespaces", **attrib)
    return fill


# ---- comments, CDATA, PIs in signed text -------------------------------------------------------------

def insert_node(path: str, node: Callable[[], Any], where: str = "text") -> Mutation:
    def mutate(root: Any) -> None:
        target = root if path == "." else root.find(path)
        if where == "before_root":
            root.addprevious(node())
        elif where == "after_root":
            root.addnext(node())
        else:
            target.append(node())
    return mutate


SIGNED_INFO = f"{q('Signature', DS)}/{q('SignedInfo', DS)}"
DIGEST_VALUE = f"{SIGNED_INFO}/{q('Reference', DS)}/{q('DigestValue', DS)}"
A = q("Assertion")


def wrapping_variants() -> list[Variant]:
    """Every signature-wrapping, reference, transform and algorithm variant with its refusal."""
    shape, count = "saml_signature_shape", "saml_assertion_count"
    sig_method = f"{q('SignedInfo', DS)}/{q('SignatureMethod', DS)}"
    digest = f"{q('SignedInfo', DS)}/{q('Reference', DS)}/{q('DigestMethod', DS)}"
    canon = f"{q('SignedInfo', DS)}/{q('CanonicalizationMethod', DS)}"
    return [
        Variant("XSW1", xsw1, 401, count, sign_response=True),
        Variant("XSW2", xsw2, 401, count, sign_response=True),
        Variant("XSW3", xsw3, 401, count), Variant("XSW4", xsw4, 401, count),
        Variant("XSW5", xsw5, 401, count), Variant("XSW6", xsw6, 401, count),
        Variant("XSW7", xsw7, 401, count), Variant("XSW8", xsw8, 401, count),
        Variant("signature in Advice", in_advice, 401, shape),
        Variant("signature in Subject", signature_elsewhere(q("Subject")), 401, shape),
        Variant("signature in Conditions", signature_elsewhere(q("Conditions")), 401, shape),
        Variant("two signatures in the assertion", second_signature, 401, shape),
        Variant("ds:Object in the signature", add_to_signature("Object"), 401, shape),
        Variant("ds:Manifest in the signature", add_to_signature("Manifest"), 401, shape),
        Variant("KeyInfo RetrievalMethod", retrieval_method, 401, shape),
        Variant("reference to the Response", set_uri("#{response}"), 401, shape),
        Variant("reference to another ID", set_uri("#id-somewhere-else"), 401, shape),
        Variant("empty reference URI (whole document)", set_uri(""), 401, shape),
        Variant("XPointer reference", set_uri("#xpointer(id('{assertion}'))"), 401, shape),
        Variant("XPointer ID", xpointer_id, 401, shape),
        Variant("two references", two_references, 401, shape),
        Variant("duplicate ID in Extensions", duplicate_id_in_extensions, 401, shape),
        Variant("Response ID = Assertion ID", response_id_is_assertion_id, 401, shape),
        Variant("xml:id twin", xml_id_twin, 401, shape),
        Variant("XSLT transform", transforms(ENVELOPED, (XSLT, xslt(1)), EXC_C14N), 401, shape),
        Variant("XPath transform", transforms(ENVELOPED, (XPATH, xpath_text("1")), EXC_C14N), 401, shape),
        Variant("XPath filter 2", transforms(ENVELOPED, (XPATH2, xpath2_filter), EXC_C14N), 401, shape),
        Variant("base64 transform", transforms(ENVELOPED, BASE64, EXC_C14N), 401, shape),
        Variant("extra c14n", transforms(ENVELOPED, EXC_C14N, EXC_C14N), 401, shape),
        Variant("inclusive c14n", transforms(ENVELOPED, C14N10), 401, shape),
        Variant("c14n 1.1", transforms(ENVELOPED, C14N11), 401, shape),
        Variant("exc c14n with comments", transforms(ENVELOPED, EXC_C14N_COMMENTS), 401, shape),
        Variant("enveloped only", transforms(ENVELOPED), 401, shape),
        Variant("c14n only", transforms(EXC_C14N), 401, shape),
        Variant("transforms reversed", transforms(EXC_C14N, ENVELOPED), 401, shape),
        Variant("no transforms", transforms(), 401, shape),
        Variant("InclusiveNamespaces with more", transforms(
            ENVELOPED, (EXC_C14N, inclusive_namespaces(PrefixList="xs", Evil="1"))), 401, shape),
        Variant("CanonicalizationMethod with comments", set_algorithm(canon, EXC_C14N_COMMENTS), 401, shape),
        Variant("CanonicalizationMethod inclusive", set_algorithm(canon, C14N10), 401, shape),
        Variant("RSA-SHA1", set_algorithm(sig_method, f"{DS}rsa-sha1"), 401, "saml_deprecated_signature_method"),
        Variant("HMAC-SHA256", set_algorithm(sig_method, f"{DS[:-1]}-more#hmac-sha256"), 401, shape),
        Variant("SHA-1 digest", set_algorithm(digest, f"{DS}sha1"), 401, "saml_deprecated_digest_method"),
        Variant("MD5 digest", set_algorithm(digest, "http://www.w3.org/2001/04/xmldsig-more#md5"), 401, shape),
        Variant("Response signature: XSLT transform", transforms(
            ENVELOPED, (XSLT, xslt(24)), EXC_C14N, response=True), 401, shape, sign_response=True),
        Variant("Response signature: XPath transform", transforms(
            ENVELOPED, (XPATH, xpath_text(FREEZE_XPATH)), EXC_C14N, response=True), 401, shape, sign_response=True),
        Variant("Response signature: reference to the assertion", set_uri("#{assertion}", response=True), 401,
                shape, sign_response=True),
    ]


def comment_variants() -> list[Variant]:
    """Comments and PIs anywhere (signed text, signature values, around the root): refused by the guard."""
    comment = lambda: etree.Comment(" x ")  # noqa: E731
    pi = lambda: etree.ProcessingInstruction("evil", "x")  # noqa: E731
    issuer = f"{A}/{q('Issuer')}"
    value = f"{A}/{q('AttributeStatement')}/{q('Attribute')}/{q('AttributeValue')}"
    return [
        Variant("comment in the assertion Issuer", insert_node(issuer, comment), 400, "saml_xml_comment"),
        Variant("PI in an attribute value", insert_node(value, pi), 400, "saml_xml_comment"),
        Variant("comment in DigestValue", insert_node(f"{A}/{DIGEST_VALUE}", comment), 400, "saml_xml_comment"),
        Variant("PI in SignedInfo", insert_node(f"{A}/{SIGNED_INFO}", pi), 400, "saml_xml_comment"),
        Variant("PI before the root", insert_node(".", pi, "before_root"), 400, "saml_xml_comment"),
        Variant("comment after the root", insert_node(".", comment, "after_root"), 400, "saml_xml_comment"),
    ]


# ---- DTDs in every encoding ---------------------------------------------------------------------------

# (name, what the XML declaration says (None: no declaration), Python codec, byte order mark)
ENCODINGS: list[tuple[str, str | None, str, bytes]] = [
    ("UTF-8", "UTF-8", "utf-8", b""),
    ("UTF-8, no declaration", None, "utf-8", b""),
    ("UTF-8 with BOM", "UTF-8", "utf-8", b"\xef\xbb\xbf"),
    ("UTF-16 LE with BOM", "UTF-16", "utf-16-le", b"\xff\xfe"),
    ("UTF-16 BE with BOM", "UTF-16", "utf-16-be", b"\xfe\xff"),
    ("UTF-16LE, no BOM", "UTF-16LE", "utf-16-le", b""),
    ("UTF-16BE, no BOM", "UTF-16BE", "utf-16-be", b""),
    ("UTF-16 LE, no declaration", None, "utf-16-le", b"\xff\xfe"),
    ("UTF-32 LE with BOM", "UTF-32", "utf-32-le", b"\xff\xfe\x00\x00"),
    ("UTF-32 BE with BOM", "UTF-32", "utf-32-be", b"\x00\x00\xfe\xff"),
]

DOCTYPES = {
    "bare doctype": "<!DOCTYPE samlp:Response>",
    "internal entity": '<!DOCTYPE samlp:Response [<!ENTITY e "x">]>',
    "ATTLIST default": '<!DOCTYPE samlp:Response [<!ATTLIST samlp:Response Evil CDATA "injected">]>',
    "external DTD": '<!DOCTYPE samlp:Response SYSTEM "http://127.0.0.1:9/evil.dtd">',
}


def encoded(xml: str, declaration: str | None, codec: str, bom: bytes, doctype: str = "") -> bytes:
    """The same document (its root element unchanged) in another encoding, optionally with a DOCTYPE."""
    body = xml[xml.index("?>") + 2:] if xml.startswith("<?xml") else xml
    head = f'<?xml version="1.0" encoding="{declaration}"?>' if declaration else ""
    return bom + (head + doctype + body).encode(codec)


# ---- an attacker's own encryption (to the SP's public certificate), and a second broker -----------------

def encrypt_assertion(root: Any, sp_cert: Path) -> None:
    """Replace the assertion by an EncryptedAssertion (AES-256-CBC, RSA-OAEP to the SP's certificate), as
    anyone can: the certificate is public. What is inside is whatever the attacker put there."""
    assertion = assertion_of(root)
    wrapper = etree.Element(q("EncryptedAssertion"))
    assertion.addprevious(wrapper)
    wrapper.append(assertion)
    template = xmlsec.template.encrypted_data_create(root, xmlsec.constants.TransformAes256Cbc,
                                                     type=xmlsec.constants.TypeEncElement, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="dsig")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(str(sp_cert), xmlsec.constants.KeyDataFormatCertPem, None))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
    context.encrypt_xml(template, assertion)


@dataclass
class Broker:
    """Another broker on the SAML world's pysaml2 IdP (its SP entity id one the IdP trusts)."""

    url: str
    audit: Path
    app: Any

    def acs(self, idp: str = "corp") -> str:
        return f"{self.url}/saml/{idp}/acs"

    def start(self, client: httpx.Client, idp: str = "corp") -> str:
        return authn_request_id(client, self.url, idp)

    def signed(self, world: SamlWorld, request_id: str, user: str = "bob", idp: str = "corp", **kw: Any) -> str:
        return world.idp.response_xml(user, in_response_to=request_id, destination=self.acs(idp),
                                      sp_entity_id=world.sp_entity("corp"), **kw)

    def post(self, client: httpx.Client, xml: str | bytes, idp: str = "corp") -> httpx.Response:
        raw = xml.encode() if isinstance(xml, str) else xml
        return client.post(self.acs(idp), data={"SAMLResponse": base64.b64encode(raw).decode()})

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@contextmanager
def other_broker(world: SamlWorld, work: Path, idp_extra: dict[str, Any], overrides: dict[str, Any]
                 ) -> Iterator[Broker]:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    idp = world.idp
    corp = {**saml_idp_config("corp", idp.url, idp.certificate), "sp_entity_id": world.sp_entity("corp"),
            **idp_extra}
    dead = f"http://{LOOPBACK}:{free_port()}"
    config = write_config(work, url, dead, world.stack.aws, DEMO_RULES, {"corp": corp}, overrides)
    settings = load_settings(config)
    app = create_app(settings)
    with asgi_server(app, port):
        yield Broker(url, Path(settings.audit.path), app)
