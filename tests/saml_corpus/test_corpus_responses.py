"""Real signed responses (tests/saml_corpus/responses): the signature layer of the broker accepts them.

Each response is old and addressed to another SP, so only the signature layer is tested, on the broker's own
code path: the XML guard, the signature-shape allow-list, then python3-saml/xmlsec with the key taken from the
IdP's metadata (as the broker does: never from the response's KeyInfo). A one-byte change to a signed value
and another IdP's key must both fail verification.
"""

from __future__ import annotations

import re

import pytest
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils as Utils

from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_descriptor import IdpDescriptor
from broker.connectors.saml_metadata import parse_metadata
from broker.connectors.saml_signature_shape import check_signature_shapes
from broker.connectors.saml_xml import guarded_parse
from tests.saml_corpus.corpus import FACTS, SIGNED, metadata_file, response_file

XPATHS = {"Response": Utils.RESPONSE_SIGNATURE_XPATH, "Assertion": Utils.ASSERTION_SIGNATURE_XPATH}
NS = {"samlp": C.NS_SAMLP, "saml": C.NS_SAML, "ds": C.NS_DS}
MAX_BYTES = 256 * 1024  # the broker's default max_response_bytes
# The text of the (signed) NameID, in any prefix.
_NAME_ID = re.compile(rb"<(?:\w+:)?NameID\b[^>]*>([^<]+)<")


def descriptor(vendor: str) -> IdpDescriptor:
    """The IdP as the broker reads it from its corpus metadata (signed AuthnRequests are beside the point)."""
    config = SamlIdpConfig.model_validate({"id": "corpus", "type": "saml", "name": "corpus",
                                           "metadata_file": str(metadata_file(vendor)),
                                           "want_authn_requests_signed": False})
    return parse_metadata(metadata_file(vendor).read_bytes(), config, now=FACTS[vendor].read_at())


def verifies(raw: bytes, signed: str, certificates: tuple[str, ...]) -> bool:
    """python3-saml's signature check (xmlsec), the keys given explicitly, on the broker's parse of the bytes."""
    root = guarded_parse(raw, max_bytes=MAX_BYTES)
    return bool(Utils.validate_sign(root, xpath=XPATHS[signed],
                                    multicerts=[Utils.format_cert(c) for c in certificates]))


def tamper_name_id(raw: bytes) -> bytes:
    """Flip one bit of the first byte of the NameID text (a letter stays a letter, '.' becomes '/')."""
    match = _NAME_ID.search(raw)
    assert match is not None
    at = match.start(1)
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]


def _other(vendor: str) -> str:
    """Another IdP of the corpus, with another key."""
    names = sorted(SIGNED)
    return names[(names.index(vendor) + 1) % len(names)]


@pytest.mark.parametrize("vendor", sorted(SIGNED))
def test_real_response_signature(vendor: str) -> None:
    idp = descriptor(vendor)
    raw = response_file(vendor).read_bytes()
    root = guarded_parse(raw, max_bytes=MAX_BYTES)
    check_signature_shapes(root)  # the shape this IdP really sends is on the allow-list
    assert root.xpath("string(/samlp:Response/saml:Issuer)", namespaces=NS) == FACTS[vendor].entity_id
    holders = tuple(s.getparent().tag.rsplit("}", 1)[1] for s in root.iter(f"{{{C.NS_DS}}}Signature"))
    assert holders == SIGNED[vendor]
    for signed in SIGNED[vendor]:
        assert verifies(raw, signed, idp.certificates), f"{vendor}: {signed} signature"
        assert not verifies(raw, signed, descriptor(_other(vendor)).certificates)
        tampered = tamper_name_id(raw)
        assert len(tampered) == len(raw) and sum(a != b for a, b in zip(raw, tampered, strict=True)) == 1
        check_signature_shapes(guarded_parse(tampered, max_bytes=MAX_BYTES))  # same shape: only the crypto fails
        assert not verifies(tampered, signed, idp.certificates)


def test_pingone_keyinfo_carries_an_rsa_key_value() -> None:
    """PingOne sends an RSAKeyValue beside the certificate; the shape allows it and the key still comes from
    metadata (a response verified with another IdP's metadata fails above whatever its KeyInfo says)."""
    root = guarded_parse(response_file("pingone").read_bytes(), max_bytes=MAX_BYTES)
    key_info = root.xpath("/samlp:Response/saml:Assertion/ds:Signature/ds:KeyInfo", namespaces=NS)[0]
    assert [child.tag.rsplit("}", 1)[1] for child in key_info] == ["X509Data", "KeyValue"]
    assert key_info.find(f"{{{C.NS_DS}}}KeyValue/{{{C.NS_DS}}}RSAKeyValue") is not None
