"""An enveloped XML signature (exclusive c14n, rsa-sha256, sha256) computed with lxml's C14N and a Signer,
laid out byte for byte as python-xmlsec's template signing lays it out (tests/issuers/test_xml_signature.py
compares the two). No key is parsed per signature: the Signer holds the loaded key (or names a KMS key).

The digest is over the element before the Signature goes in, which is what the enveloped-signature transform
then computes on the verifier's side: the element without its Signature.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
from collections.abc import Callable

from lxml import etree  # type: ignore[import-untyped]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
LINE = 64  # xmlsec wraps base64 at 64 characters

def _wrapped(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i:i + LINE] for i in range(0, len(text), LINE))


def _c14n(element: etree._Element) -> bytes:
    result: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return result


def _ds(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{DS_NS}}}{local}")
    child.text, child.tail = text, "\n"
    return child


def _signed_info(signature: etree._Element, reference: str, digest: str) -> etree._Element:
    info = _ds(signature, "SignedInfo", "\n")
    _ds(info, "CanonicalizationMethod").set("Algorithm", EXC_C14N)
    _ds(info, "SignatureMethod").set("Algorithm", RSA_SHA256)
    ref = _ds(info, "Reference", "\n")
    ref.set("URI", reference)
    transforms = _ds(ref, "Transforms", "\n")
    _ds(transforms, "Transform").set("Algorithm", ENVELOPED)
    _ds(transforms, "Transform").set("Algorithm", EXC_C14N)
    _ds(ref, "DigestMethod").set("Algorithm", SHA256)
    _ds(ref, "DigestValue", digest)
    return info


def _new_shape(cert_base64: str) -> etree._Element:
    """A Signature with everything but the reference, digest and signature value (set per signature)."""
    signature = etree.Element(f"{{{DS_NS}}}Signature", nsmap={"ds": DS_NS})
    signature.text = "\n"
    _signed_info(signature, "", "")
    _ds(signature, "SignatureValue")
    data = _ds(_ds(signature, "KeyInfo", "\n"), "X509Data", "\n")
    body = "\n".join(cert_base64[i:i + LINE] for i in range(0, len(cert_base64), LINE))
    _ds(data, "X509Certificate", body + "\n")
    return signature


_SHAPES = threading.local()  # lxml trees are not shared between threads: each keeps its own shapes


def _shape(cert_base64: str) -> etree._Element:
    shapes: dict[str, etree._Element] = _SHAPES.__dict__.setdefault("by_certificate", {})
    if cert_base64 not in shapes:
        if len(shapes) > 8:  # rotations: a few certificates in a process's life
            shapes.clear()
        shapes[cert_base64] = _new_shape(cert_base64)
    return shapes[cert_base64]


def sign_enveloped(element: etree._Element, sign: Callable[[bytes], bytes], cert_base64: str, *,
                   position: int = 1) -> None:
    """Sign `element` (by its ID) in place; the Signature goes in as its child at `position` (after a SAML
    Issuer, as the schema wants). `sign` is RSA PKCS#1 v1.5 over SHA-256; `cert_base64` the DER certificate.
    The Signature is a copy of a per-certificate shape (deep-copying costs less than building it)."""
    digest = base64.b64encode(hashlib.sha256(_c14n(element)).digest()).decode("ascii")
    signature = copy.deepcopy(_shape(cert_base64))
    element.insert(position, signature)
    signed_info, value = signature[0], signature[1]
    reference = signed_info[2]
    reference.set("URI", "#" + element.get("ID", ""))
    reference[2].text = digest
    value.text = _wrapped(sign(_c14n(signed_info)))
