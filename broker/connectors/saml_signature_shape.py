"""The shape every XML signature in a SAML response must have before xmlsec (through python3-saml) sees it.

xmlsec runs whatever a signature's SignedInfo asks for (XSLT, XPath, XPath Filter 2, base64, XPointer
URIs, RetrievalMethod, several References) while it verifies, that is before anything is known to be
signed: a recursive XSLT template or an XPath `count(//. | //@* | //namespace::*)` over a few hundred empty
elements costs seconds to minutes of CPU for a few kilobytes. So every ds:Signature in the document is
checked against one allow-list, the shape real IdPs send (ADFS/Entra, Okta, Google, Shibboleth, pysaml2):

- it sits directly in the samlp:Response (the root) or in the one saml:Assertion (a direct child of the
  root, as the structure check already requires); at most one per element; a Signature anywhere else is
  refused;
- children: SignedInfo, SignatureValue, optional KeyInfo (only X509Data / KeyName / KeyValue inside);
  no ds:Object, no RetrievalMethod;
- SignedInfo: CanonicalizationMethod (exclusive c14n without comments), SignatureMethod (STRONG_SIGNATURES),
  exactly one Reference;
- the Reference: URI = "#" + the ID of the element holding the Signature, an NCName (so never an XPointer
  expression) held by no other element of the document (ID confusion); Transforms exactly
  enveloped-signature then exclusive c14n; DigestMethod in STRONG_DIGESTS;
- exclusive c14n, as method or transform, may carry one ec:InclusiveNamespaces PrefixList (Okta and
  Shibboleth send it) and nothing else.
And no ds:Transform(s), RetrievalMethod, Object, Manifest or xenc:CipherReference anywhere else (an
encrypted assertion must carry its cipher text inline), with one exception, the layout Okta sends: the
EncryptedKey beside the EncryptedData in the EncryptedAssertion, and the EncryptedData's KeyInfo holding only a
RetrievalMethod of Type EncryptedKey, without children, whose URI is "#" + the Id of that EncryptedKey (held by
nothing else in the document). python3-saml moves that EncryptedKey into the KeyInfo before decrypting.
Anything else is refused unverified: reason saml_signature_shape, or saml_deprecated_signature_method /
saml_deprecated_digest_method for an algorithm on the library's deprecated list (SHA-1), the reason codes
python3-saml itself uses for them.
Signed IdP metadata (check_metadata_signature_shape) gets the same allow-list with one holder, the metadata
root, and nothing else signed anywhere in the document.
"""

from __future__ import annotations

import re
from typing import Any

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from broker.connectors.saml_checks import STRONG_DIGESTS, STRONG_SIGNATURES
from broker.errors import TokenInvalid

DS, SAML, SAMLP, XENC = C.NS_DS, C.NS_SAML, C.NS_SAMLP, C.NS_XENC
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
TRANSFORMS = (ENVELOPED, EXC_C14N)
# An NCName as IdPs write IDs (ASCII): never "xpointer(...)" or anything else xmlsec would evaluate.
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{1,8192}")
_KEY_INFO = frozenset(f"{{{DS}}}{t}" for t in (
    "X509Data", "X509Certificate", "X509SubjectName", "X509IssuerSerial", "X509IssuerName",
    "X509SerialNumber", "X509SKI", "KeyName", "KeyValue", "RSAKeyValue", "Modulus", "Exponent"))
# Elements that make xmlsec fetch, transform or dereference something; allowed only where checked below.
_ACTIVE = (*(f"{{{DS}}}{t}" for t in ("Transforms", "Transform", "RetrievalMethod", "Object", "Manifest",
                                     "SignatureProperties", "XPath")), f"{{{XENC}}}CipherReference")


def _ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


def _refuse(detail: str, reason: str = "saml_signature_shape") -> TokenInvalid:
    return TokenInvalid(f"signature shape: {detail}", reason=reason)


def check_signature_shapes(root: Any) -> None:
    """Every ds:Signature in the document, response-level and assertion-level (also run on a decrypted
    document). Cheap: a walk over a few dozen nodes of a tree the XML guard already bounded."""
    allowed: set[Any] = set()
    holders: set[Any] = set()
    for signature in root.iter(_ds("Signature")):
        holder = signature.getparent()
        if not _may_hold_signature(root, holder):
            raise _refuse(f"a Signature inside {str(getattr(holder, 'tag', None))[:80]}")
        if holder in holders:
            raise _refuse("two Signatures in one element")
        holders.add(holder)
        allowed.update(_signature(signature, holder))
    for node in root.iter(*_ACTIVE):
        if node not in allowed and not _encrypted_key_pointer(node):
            raise _refuse(f"{str(node.tag)[:80]} outside the allowed signature shape")


def check_metadata_signature_shape(root: Any) -> Any | None:
    """IdP metadata (saml_metadata_trust): the root's Signature, or None when the document has none. The same
    allow-list, with the metadata root (EntityDescriptor or EntitiesDescriptor) as the only holder; its
    Reference is '#' + the root's ID, or "" (the whole document, which is the root, as some federation
    signers write it: no ID is looked up, so none can be confused). Any other Signature, or active element,
    anywhere in the document is refused: nothing but the whole document is ever signed."""
    signatures = list(root.iter(_ds("Signature")))
    if not signatures:
        return None
    if len(signatures) > 1 or signatures[0].getparent() is not root:
        holders = [str(getattr(s.getparent(), "tag", None))[:80] for s in signatures[:4]]
        raise _refuse(f"{len(signatures)} Signature(s), in {holders}: only one, on the metadata root")
    allowed = set(_signature(signatures[0], root, whole_document=True))
    for node in root.iter(*_ACTIVE):
        if node not in allowed and not _encrypted_key_pointer(node):
            raise _refuse(f"{str(node.tag)[:80]} outside the allowed signature shape")
    return signatures[0]


ENCRYPTED_KEY_TYPE = f"{XENC}EncryptedKey"


def _encrypted_key_pointer(node: Any) -> bool:
    """Okta's EncryptedData/KeyInfo/RetrievalMethod naming the EncryptedKey beside it, and nothing more."""
    key_info = node.getparent()
    data = key_info.getparent() if key_info is not None else None
    wrapper = data.getparent() if data is not None else None
    if node.tag != _ds("RetrievalMethod") or key_info.tag != _ds("KeyInfo") or len(key_info) != 1 \
            or data is None or data.tag != f"{{{XENC}}}EncryptedData" \
            or wrapper is None or wrapper.tag != f"{{{SAML}}}EncryptedAssertion":
        return False
    uri = node.get("URI") or ""
    if set(node.attrib) != {"URI", "Type"} or node.get("Type") != ENCRYPTED_KEY_TYPE or len(node) \
            or (node.text or "").strip() or not uri.startswith("#") or not _NCNAME.fullmatch(uri[1:]):
        return False
    keys = [k for k in wrapper if k.tag == f"{{{XENC}}}EncryptedKey" and k.get("Id") == uri[1:]]
    return len(keys) == 1 and _id_uses(wrapper.getroottree().getroot(), uri[1:]) == 1


def _may_hold_signature(root: Any, holder: Any) -> bool:
    if holder is root:
        return bool(root.tag == f"{{{SAMLP}}}Response")
    return bool(holder is not None and holder.tag == f"{{{SAML}}}Assertion" and holder.getparent() is root)


# Elements carrying a given ID value, under any attribute a resolver might take for an ID (counted in libxml2).
_ID_USES = "count(//@ID[. = $v] | //@Id[. = $v] | //@id[. = $v] | //@xml:id[. = $v])"


def _id_uses(root: Any, value: str) -> int:
    return int(root.xpath(_ID_USES, v=value))


def _children(element: Any, expected: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[Any]:
    """Exactly the expected ds children in order (optional ones may follow), only whitespace text."""
    children = list(element)
    tags = tuple(child.tag for child in children)
    wanted = tuple(_ds(t) for t in expected)
    extra = tags[len(wanted):]
    if tags[:len(wanted)] != wanted or len(extra) > len(optional) or extra != tuple(
            _ds(t) for t in optional[:len(extra)]):
        raise _refuse(f"{str(element.tag)[:60]} holds {[str(t)[:60] for t in tags][:8]}")
    _blank(element)
    return children


def _blank(element: Any) -> None:
    if (element.text or "").strip() or any((child.tail or "").strip() for child in element):
        raise _refuse(f"text inside {str(element.tag)[:60]}")


def _leaf(element: Any) -> None:
    if len(element) or (element.text or "").strip():
        raise _refuse(f"{str(element.tag)[:60]} has content")


def _signature(signature: Any, holder: Any, whole_document: bool = False) -> list[Any]:
    children = _children(signature, ("SignedInfo", "SignatureValue"), ("KeyInfo",))
    signed_info, value = children[0], children[1]
    if len(value) or not _BASE64.fullmatch(value.text or ""):
        raise _refuse("SignatureValue is not base64 text")
    if len(children) == 3:
        _key_info(children[2])
    canon, method, reference = _children(signed_info, ("CanonicalizationMethod", "SignatureMethod", "Reference"))
    _c14n(canon)
    _algorithm(method, STRONG_SIGNATURES, "saml_deprecated_signature_method")
    _leaf(method)
    return [*_reference(reference, holder, whole_document)]


def _reference(reference: Any, holder: Any, whole_document: bool = False) -> list[Any]:
    if whole_document and reference.get("URI") == "":
        return _reference_body(reference)
    holder_id = holder.get("ID")
    if not holder_id or not _NCNAME.fullmatch(holder_id):
        raise _refuse(f"the signed element's ID {str(holder_id)[:80]!r} is not a plain NCName")
    if reference.get("URI") != f"#{holder_id}":
        raise _refuse(f"Reference URI {str(reference.get('URI'))[:80]!r} is not '#' + the holder's ID")
    uses = _id_uses(holder.getroottree().getroot(), holder_id)
    if uses != 1:
        raise _refuse(f"ID {holder_id[:80]!r} appears {uses} times in the document")
    return _reference_body(reference)


def _reference_body(reference: Any) -> list[Any]:
    if set(reference.attrib) - {"URI", "Id", "Type"}:
        raise _refuse(f"Reference attributes {sorted(reference.attrib)[:5]}")
    transforms, digest, value = _children(reference, ("Transforms", "DigestMethod", "DigestValue"))
    steps = _children(transforms, ("Transform", "Transform"))
    if tuple(step.get("Algorithm") for step in steps) != TRANSFORMS:
        raise _refuse(f"transforms {[str(s.get('Algorithm'))[:80] for s in steps]}")
    _leaf(steps[0])
    _c14n(steps[1])
    _algorithm(digest, STRONG_DIGESTS, "saml_deprecated_digest_method")
    _leaf(digest)
    if len(value) or not _BASE64.fullmatch(value.text or ""):
        raise _refuse("DigestValue is not base64 text")
    return [transforms, *steps]


def _c14n(element: Any) -> None:
    """Exclusive c14n without comments, optionally one InclusiveNamespaces PrefixList."""
    if element.get("Algorithm") != EXC_C14N:
        raise _refuse(f"canonicalization {str(element.get('Algorithm'))[:80]!r}")
    inner = list(element)
    _blank(element)
    if not inner:
        return
    if len(inner) != 1 or inner[0].tag != f"{{{EXC_C14N}}}InclusiveNamespaces" \
            or set(inner[0].attrib) != {"PrefixList"} or len(inner[0]) or (inner[0].text or "").strip():
        raise _refuse("canonicalization parameters other than one InclusiveNamespaces PrefixList")


def _algorithm(element: Any, strong: set[str], deprecated_reason: str) -> None:
    algorithm = element.get("Algorithm")
    if algorithm not in strong:
        reason = deprecated_reason if algorithm in C.DEPRECATED_ALGORITHMS else "saml_signature_shape"
        raise _refuse(f"algorithm {str(algorithm)[:80]!r} is not allowed", reason)


def _key_info(key_info: Any) -> None:
    for node in key_info.iterdescendants():
        if node.tag not in _KEY_INFO:
            raise _refuse(f"KeyInfo holds {str(node.tag)[:80]}")
