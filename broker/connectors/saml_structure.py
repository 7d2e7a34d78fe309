"""The shape of a SAMLResponse before (and, for an encrypted assertion, after) anything is verified: exactly one
assertion, a direct child of the Response; strong encryption algorithms only."""

from __future__ import annotations

from typing import Any

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from broker.errors import TokenInvalid

SAML, SAMLP = C.NS_SAML, C.NS_SAMLP
XENC, XENC11 = C.NS_XENC, "http://www.w3.org/2009/xmlenc11#"  # python3-saml names no XML Encryption 1.1 URI
# Content encryption: AES only (no 3DES). Key transport: RSA-OAEP only; RSA PKCS#1 v1.5 (rsa-1_5) is open to
# Bleichenbacher-style decryption oracles ("How to Break XML Encryption", CCS 2011).
DATA_ENCRYPTION = frozenset({C.AES128_CBC, C.AES192_CBC, C.AES256_CBC,
                             f"{XENC11}aes128-gcm", f"{XENC11}aes192-gcm", f"{XENC11}aes256-gcm"})
KEY_TRANSPORT = frozenset({C.RSA_OAEP_MGF1P, f"{XENC11}rsa-oaep"})


def check_encryption(root: Any) -> None:
    """An encrypted assertion names strong algorithms, checked before anything is decrypted."""
    for encrypted in root.iter(f"{{{SAML}}}EncryptedAssertion"):
        data = encrypted.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod")
        if data is None:
            raise TokenInvalid("encrypted assertion without an EncryptionMethod", reason="saml_weak_encryption")
        for method in encrypted.iter(f"{{{XENC}}}EncryptionMethod"):
            key = method.getparent().tag == f"{{{XENC}}}EncryptedKey"
            if method.get("Algorithm") not in (KEY_TRANSPORT if key else DATA_ENCRYPTION):
                what = "key transport" if key else "content encryption"
                raise TokenInvalid(f"{what} {str(method.get('Algorithm'))[:80]!r} is not allowed",
                                   reason="saml_weak_encryption")


def check_structure(root: Any) -> None:
    """Exactly one assertion, plain or encrypted, and it is a direct child of the Response (anything
    wrapped inside Extensions, ds:Object, Advice or another assertion counts, and is refused)."""
    if root.tag != f"{{{SAMLP}}}Response":
        raise TokenInvalid(f"root element {str(root.tag)[:80]} is not samlp:Response", reason="saml_not_response")
    found = [el for el in root.iter(f"{{{SAML}}}Assertion", f"{{{SAML}}}EncryptedAssertion")]
    if len(found) != 1:
        raise TokenInvalid(f"{len(found)} assertions in the response (exactly one is accepted)",
                           reason="saml_assertion_count")
    if found[0].getparent() is not root:
        raise TokenInvalid("the assertion is not a direct child of the Response", reason="saml_assertion_wrapped")
