"""The XML half of the strict AssumeRoleWithSAML checks: safe parsing (no DTD, entities or network), the IAM
provider's metadata, and the Assertion's signature verified by the `xmlsec1` program (the broker signs with the
python-xmlsec binding, so the two share no signing code) against the metadata's certificates.
"""

from __future__ import annotations

import base64
import binascii
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.web_identity_checks import StsError

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "md": MD, "ds": DS}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
TRANSFORMS = frozenset({"http://www.w3.org/2000/09/xmldsig#enveloped-signature", EXC_C14N})
MIN_KEY_BITS = 1024
XMLSEC1 = "xmlsec1"
SIGNATURE_METHODS = frozenset({"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                               "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
                               "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"})
DIGEST_METHODS = frozenset({"http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384",
                            "http://www.w3.org/2001/04/xmlenc#sha512"})

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                         huge_tree=False, remove_comments=False)


def invalid(message: str) -> StsError:
    return StsError("InvalidIdentityToken", message)


@dataclass(frozen=True)
class Metadata:
    entity_id: str
    certificates: tuple[bytes, ...]  # PEM



def parse_xml(data: bytes, what: str) -> etree._Element:
    """XML without a DTD: a DOCTYPE (and so any entity) is refused before anything reads the document."""
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise invalid(f"{what} must not contain a DTD")
    try:
        root = etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError:
        raise invalid(f"{what} is not well-formed XML") from None
    if root.getroottree().docinfo.doctype:
        raise invalid(f"{what} must not contain a DTD")
    return root


def decode_response(assertion: str) -> etree._Element:
    try:
        data = base64.b64decode(assertion.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise invalid("Invalid base64 SAMLResponse") from None
    root = parse_xml(data, "The SAML response")
    if root.tag != f"{{{SAMLP}}}Response":
        raise invalid("The SAML document is not a samlp:Response")
    if root.findall(".//saml:EncryptedAssertion", NS):
        raise invalid("Encrypted assertions are not enabled for this SAML provider")
    status = root.find("samlp:Status/samlp:StatusCode", NS)
    if status is None or status.get("Value") != SUCCESS:
        raise StsError("IDPRejectedClaim", "The identity provider did not report success", 403)
    return root


def parse_metadata(document: str) -> Metadata:
    root = parse_xml(document.encode("utf-8"), "The SAML provider metadata")
    certificates: list[bytes] = []
    for descriptor in root.findall("md:IDPSSODescriptor/md:KeyDescriptor", NS):
        if descriptor.get("use", "signing") != "signing":
            continue
        for text in descriptor.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS):
            body = "".join((text.text or "").split())
            certificates.append(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode())
    return Metadata(root.get("entityID", ""), tuple(certificates))


def single(element: etree._Element, path: str, message: str) -> etree._Element:
    found = element.findall(path, NS)
    if len(found) != 1:
        raise invalid(message)
    return found[0]


def _check_signature_shape(assertion: etree._Element) -> None:
    """One enveloped signature over this Assertion by its ID, with algorithms AWS accepts (no SHA-1)."""
    if len(assertion.findall(".//ds:Signature", NS)) != 1:
        raise invalid("The assertion must carry exactly one signature")
    signature = single(assertion, "ds:Signature", "The assertion is not signed")
    info = single(signature, "ds:SignedInfo", "Malformed signature")
    c14n = single(info, "ds:CanonicalizationMethod", "Malformed signature").get("Algorithm")
    method = single(info, "ds:SignatureMethod", "Malformed signature").get("Algorithm")
    reference = single(info, "ds:Reference", "The signature must have exactly one reference")
    digest = single(reference, "ds:DigestMethod", "Malformed signature").get("Algorithm")
    transforms = {t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)}
    if method not in SIGNATURE_METHODS or digest not in DIGEST_METHODS:
        raise invalid("Unsupported signature or digest algorithm (SHA-1 is not accepted)")
    if c14n != EXC_C14N or not transforms <= TRANSFORMS:
        raise invalid("Unsupported canonicalization or transform")
    assertion_id = assertion.get("ID")
    if not assertion_id or reference.get("URI") != f"#{assertion_id}":
        raise invalid("The signature does not cover the assertion")


def _strong_enough(pem: bytes) -> bool:
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        return False
    return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_KEY_BITS


def _xmlsec1_verifies(document: bytes, certificate: bytes) -> bool:
    with tempfile.TemporaryDirectory(prefix="saml-verify-") as tmp:
        doc, cert = Path(tmp, "assertion.xml"), Path(tmp, "cert.pem")
        doc.write_bytes(document)
        cert.write_bytes(certificate)
        result = subprocess.run(  # noqa: S603 (fixed program, arguments are our own temp files)
            [XMLSEC1, "--verify", "--enabled-reference-uris", "same-doc", "--enabled-key-data", "raw-x509-cert",
             "--pubkey-cert-pem", str(cert), "--id-attr:ID", f"{SAML}:Assertion", str(doc)],
            capture_output=True, timeout=10, check=False)
    return result.returncode == 0


def verified_assertion(response: etree._Element, metadata: Metadata) -> etree._Element:
    """The single Assertion, detached into its own document and verified there by xmlsec1; claims are read
    from this copy only, so nothing outside what the signature covers can be read by mistake."""
    assertion = single(response, "saml:Assertion", "The response must contain exactly one assertion")
    if len(response.findall(".//saml:Assertion", NS)) != 1:
        raise invalid("The response must contain exactly one assertion")
    _check_signature_shape(assertion)
    document = etree.tostring(assertion, encoding="UTF-8")
    detached = parse_xml(document, "The SAML assertion")
    certificates = [c for c in metadata.certificates if _strong_enough(c)]
    if not any(_xmlsec1_verifies(document, c) for c in certificates):
        raise invalid("Signature validation failed for the SAML assertion")
    return detached
