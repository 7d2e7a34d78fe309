"""A samlp:Response for AssumeRoleWithSAML, built with lxml elements and its Assertion signed (rsa-sha256,
exclusive c14n, enveloped; xml_signature.py, in python-xmlsec's layout) with the key loaded once. Every value
is set as element text or an attribute, so nothing an IdP sent can become markup.
"""

from __future__ import annotations

import base64
import copy
import functools
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lxml import etree  # type: ignore[import-untyped]

from broker.aws_saml import PARTITIONS
from broker.issuers.saml_idp import NAMEID_PERSISTENT, SamlKey
from broker.issuers.xml_signature import sign_enveloped

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
ATTR = "https://aws.amazon.com/SAML/Attributes/"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
ATTR_NAME_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
AUTHN_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
NSMAP = {"samlp": SAMLP_NS, "saml": SAML_NS}


def recipient_for(partition: str, signin_region: str | None = None) -> str:
    """The sign-in endpoint AWS expects as Recipient (and checks as SAML:aud); regional in the aws partition
    when a region is configured (https://REGION.signin.aws.amazon.com/saml)."""
    if partition == "aws" and signin_region:
        return f"https://{signin_region}.signin.aws.amazon.com/saml"
    return PARTITIONS[partition].recipient


@dataclass(frozen=True)
class AssertionContent:
    """Everything one assertion says; the values are already valid for AWS (the grant's sanitizers)."""

    issuer: str
    name_id: str
    partition: str
    recipient: str
    roles: tuple[tuple[str, str], ...]  # (role-arn, provider-arn)
    session_name: str
    session_duration: int
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tags: tuple[str, ...] = ()
    source_identity: str | None = None


def new_id() -> str:
    return "_" + secrets.token_hex(20)  # an NCName: starts with a letter or underscore


def _instant(moment: datetime) -> str:
    # strftime costs more than the rest of the timestamps' share of a mint (bench/signing_keys.py)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


@functools.cache
def _qualified(tag: str) -> str:
    prefix, local = tag.split(":")
    return f"{{{NSMAP[prefix]}}}{local}"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _qualified(tag), attrib=attrs)
    if text is not None:
        element.text = text
    return element


def _attribute(statement: etree._Element, name: str, values: list[str]) -> None:
    attribute = _el(statement, "saml:Attribute", Name=ATTR + name, NameFormat=ATTR_NAME_FORMAT)
    for value in values:
        _el(attribute, "saml:AttributeValue", value)


def _attributes(assertion: etree._Element, content: AssertionContent) -> None:
    statement = _el(assertion, "saml:AttributeStatement")
    _attribute(statement, "Role", [f"{role},{provider}" for role, provider in content.roles])
    _attribute(statement, "RoleSessionName", [content.session_name])
    _attribute(statement, "SessionDuration", [str(content.session_duration)])
    for key, value in sorted(content.tags.items()):
        _attribute(statement, f"PrincipalTag:{key}", [value])
    if content.transitive_tags:
        _attribute(statement, "TransitiveTagKeys", list(content.transitive_tags))
    if content.source_identity is not None:
        _attribute(statement, "SourceIdentity", [content.source_identity])


_SHAPES = threading.local()  # lxml trees are not shared between threads: each keeps its own shapes


def _shape(partition: str) -> etree._Element:
    """The response's fixed elements with the values that never change; per-assertion values are empty here
    and set by `build_response` on a copy (a deep copy costs a tenth of building the elements again)."""
    shapes: dict[str, etree._Element] = _SHAPES.__dict__.setdefault("by_partition", {})
    if partition not in shapes:
        shapes[partition] = _new_shape(partition)
    return shapes[partition]


def _new_shape(partition: str) -> etree._Element:
    response = etree.Element(f"{{{SAMLP_NS}}}Response", nsmap=NSMAP, ID="", Version="2.0", IssueInstant="",
                             Destination="")
    _el(response, "saml:Issuer")
    _el(_el(response, "samlp:Status"), "samlp:StatusCode", Value=SUCCESS)
    assertion = _el(response, "saml:Assertion", ID="", Version="2.0", IssueInstant="")
    _el(assertion, "saml:Issuer")
    subject = _el(assertion, "saml:Subject")
    _el(subject, "saml:NameID", Format=NAMEID_PERSISTENT)
    confirmation = _el(subject, "saml:SubjectConfirmation", Method=BEARER)
    _el(confirmation, "saml:SubjectConfirmationData", NotOnOrAfter="", Recipient="")
    conditions = _el(assertion, "saml:Conditions", NotBefore="", NotOnOrAfter="")
    _el(_el(conditions, "saml:AudienceRestriction"), "saml:Audience", PARTITIONS[partition].audience)
    authn = _el(assertion, "saml:AuthnStatement", AuthnInstant="", SessionIndex="")
    _el(_el(authn, "saml:AuthnContext"), "saml:AuthnContextClassRef", AUTHN_CLASS)
    return response


def build_response(content: AssertionContent, *, now: datetime, lifetime: timedelta) -> etree._Element:
    """The unsigned samlp:Response; `sign_assertion` signs it in place."""
    issued, expires = _instant(now), _instant(now + lifetime)
    response = copy.deepcopy(_shape(content.partition))
    issuer, _, assertion = response
    _set(response, ID=new_id(), IssueInstant=issued, Destination=content.recipient)
    _set(assertion, ID=new_id(), IssueInstant=issued)
    assertion_issuer, (name_id, confirmation), conditions, authn = assertion
    issuer.text = assertion_issuer.text = content.issuer
    name_id.text = content.name_id
    _set(confirmation[0], NotOnOrAfter=expires, Recipient=content.recipient)
    _set(conditions, NotBefore=issued, NotOnOrAfter=expires)
    _set(authn, AuthnInstant=issued, SessionIndex=new_id())
    _attributes(assertion, content)
    return response


def _set(element: etree._Element, **attrs: str) -> None:
    for name, value in attrs.items():
        element.set(name, value)


def sign_assertion(response: etree._Element, key: SamlKey) -> None:
    """Enveloped signature over the Assertion (by its ID), placed right after its Issuer as the schema wants."""
    assertion = response.find(f"{{{SAML_NS}}}Assertion")
    assert assertion is not None
    sign_enveloped(assertion, key.signer.sign, key.cert_base64, position=1)


def signed_response(content: AssertionContent, key: SamlKey, *, now: datetime, lifetime: timedelta) -> str:
    """The base64 samlp:Response, as AssumeRoleWithSAML's SAMLAssertion parameter wants it."""
    response = build_response(content, now=now, lifetime=lifetime)
    sign_assertion(response, key)
    return base64.b64encode(etree.tostring(response, encoding="UTF-8", xml_declaration=True)).decode("ascii")
