"""The checks python3-saml leaves to the application, made exactly, and the claims read from the assertion
the verified signature covers (never from anywhere else in the document)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from broker.connectors.saml_config import SamlIdpConfig
from broker.errors import TokenInvalid
from broker.identity import GROUPS_OVERAGE, Evidence, Identity

if TYPE_CHECKING:  # saml_metadata imports the signature shape check, which imports this module's algorithms
    from broker.connectors.saml_descriptor import IdpDescriptor

SAML, SAMLP, DS = C.NS_SAML, C.NS_SAMLP, C.NS_DS
STRONG_SIGNATURES = {C.RSA_SHA256, C.RSA_SHA384, C.RSA_SHA512,
                     "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
                     "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
                     "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"}
STRONG_DIGESTS = {C.SHA256, C.SHA384, C.SHA512}
# Entra ID sends this (a Graph URL) instead of the groups claim when the user is in more than 150 groups.
GROUPS_LINK = "http://schemas.microsoft.com/claims/groups.link"


@dataclass(frozen=True, slots=True)
class AssertionFacts:
    issuer: str
    assertion_id: str
    name_id: str
    name_id_format: str | None
    attributes: Mapping[str, tuple[str, ...]]
    authn_contexts: tuple[str, ...]
    authn_instant: datetime
    not_on_or_after: datetime


def _q(tag: str, ns: str = SAML) -> str:
    return f"{{{ns}}}{tag}"


def _refuse(detail: str, reason: str) -> TokenInvalid:
    return TokenInvalid(detail, reason=reason)


def parse_time(value: str | None, what: str) -> datetime:
    if not value:
        raise _refuse(f"{what} is missing", "saml_time_missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _refuse(f"{what} {value[:40]!r} is not a time", "saml_time_malformed") from None
    if parsed.tzinfo is None:
        raise _refuse(f"{what} has no time zone", "saml_time_malformed")
    return parsed.astimezone(UTC)


def text_of(node: Any, what: str) -> str:
    """Plain text only: an element inside a value is refused (comments and PIs were refused earlier)."""
    if len(node):
        raise _refuse(f"{what} holds child nodes", "saml_value_not_text")
    return str(node.text or "").strip()


def _only(parent: Any, tag: str, what: str) -> Any:
    found = parent.findall(tag)
    if len(found) != 1:
        raise _refuse(f"{len(found)} {what} elements (exactly one is accepted)", "saml_structure")
    return found[0]


def check_assertion(document: Any, *, config: SamlIdpConfig, idp: IdpDescriptor, acs_url: str,
                    sp_entity_id: str, request_id: str | None, now: datetime) -> AssertionFacts:
    root = document.getroottree().getroot() if hasattr(document, "getroottree") else document
    [assertion] = [el for el in root if el.tag == _q("Assertion")] or [None]
    if assertion is None:
        raise _refuse("no assertion at the top of the verified document", "saml_assertion_count")
    _signature(root, assertion, config.want_assertions_signed)
    skew, aws = config.clock_skew, config.aws_passthrough
    # aws_passthrough: AWS's sign-in endpoint and audience are accepted beside this SP's own (nothing else).
    recipients = {acs_url} | (aws.recipients if aws else frozenset())
    audiences = {sp_entity_id} | (aws.audiences if aws else frozenset())
    _destination(root, acs_url, absent_ok=aws is not None and root.find(_q("Signature", DS)) is None)
    _issuers(root, assertion, idp.entity_id)
    _instants(root, assertion, now, skew, config.max_assertion_age)
    not_on_or_after = _conditions(assertion, audiences, now, skew)
    scd_expiry = _subject_confirmation(assertion, recipients, root.get("InResponseTo"), request_id, now, skew)
    subject = _only(assertion, _q("Subject"), "Subject")
    name_id = _only(subject, _q("NameID"), "NameID")
    value = text_of(name_id, "NameID")
    if not value:
        raise _refuse("empty NameID", "saml_nameid_missing")
    authn = _only(assertion, _q("AuthnStatement"), "AuthnStatement")
    contexts = tuple(text_of(n, "AuthnContextClassRef") for n in authn.iter(_q("AuthnContextClassRef")))
    return AssertionFacts(
        issuer=idp.entity_id, assertion_id=str(assertion.get("ID")), name_id=value,
        name_id_format=name_id.get("Format"), attributes=_attributes(assertion), authn_contexts=contexts,
        authn_instant=parse_time(authn.get("AuthnInstant"), "AuthnInstant"),
        not_on_or_after=min(not_on_or_after, scd_expiry),
    )


def _signature(root: Any, assertion: Any, want_assertion_signed: bool) -> None:
    """A signature python3-saml verified covers the assertion the claims are read from: the assertion's own
    (over itself), or, unless the IdP's config wants the assertion's own, the Response's (over the whole
    Response, which holds this assertion as its only one: the structure check). Strong algorithms only."""
    if want_assertion_signed or assertion.find(_q("Signature", DS)) is not None:
        _covers(_only(assertion, _q("Signature", DS), "assertion Signature"), assertion, "assertion")
    elif root.find(_q("Signature", DS)) is None:
        raise _refuse("neither the assertion nor the Response is signed", "saml_no_signature_found")
    else:
        _covers(_only(root, _q("Signature", DS), "Response Signature"), root, "Response")


def _covers(sig: Any, signed: Any, what: str) -> None:
    refs = list(sig.iter(_q("Reference", DS)))
    if len(refs) != 1 or refs[0].get("URI") != f"#{signed.get('ID')}":
        raise _refuse(f"the {what} signature does not cover the {what}", "saml_signature_scope")
    method = sig.find(f"{_q('SignedInfo', DS)}/{_q('SignatureMethod', DS)}")
    digest = refs[0].find(_q("DigestMethod", DS))
    if method is None or method.get("Algorithm") not in STRONG_SIGNATURES or digest is None \
            or digest.get("Algorithm") not in STRONG_DIGESTS:
        raise _refuse("signature or digest algorithm not allowed", "saml_weak_algorithm")


def _destination(root: Any, acs_url: str, *, absent_ok: bool) -> None:
    """Exactly this ACS. Absent only for an IdP with aws_passthrough and an unsigned Response: SAML (bindings
    3.5.5.2) requires Destination on signed messages only, and an AWS app may leave it out."""
    if absent_ok and root.get("Destination") is None:
        return
    if root.get("Destination") != acs_url:
        raise _refuse(f"Destination {str(root.get('Destination'))[:200]!r} is not this ACS", "saml_destination")


def _issuers(root: Any, assertion: Any, entity_id: str) -> None:
    issuer = _only(assertion, _q("Issuer"), "assertion Issuer")
    if text_of(issuer, "Issuer") != entity_id:
        raise _refuse("assertion Issuer is not this IdP", "saml_issuer")
    outer = root.find(_q("Issuer"))
    if outer is not None and text_of(outer, "Issuer") != entity_id:
        raise _refuse("response Issuer is not this IdP", "saml_issuer")


def _instants(root: Any, assertion: Any, now: datetime, skew: timedelta, max_age: timedelta) -> None:
    for node, what in ((root, "Response IssueInstant"), (assertion, "Assertion IssueInstant")):
        instant = parse_time(node.get("IssueInstant"), what)
        if instant > now + skew:
            raise _refuse(f"{what} is in the future", "saml_issued_in_future")
        if instant < now - max_age - skew:
            raise _refuse(f"{what} is older than {max_age}", "saml_stale")


def _conditions(assertion: Any, audiences: set[str], now: datetime, skew: timedelta) -> datetime:
    conditions = _only(assertion, _q("Conditions"), "Conditions")
    if conditions.get("NotBefore") and parse_time(conditions.get("NotBefore"), "NotBefore") > now + skew:
        raise _refuse("Conditions NotBefore is in the future", "saml_not_yet_valid")
    expiry = parse_time(conditions.get("NotOnOrAfter"), "Conditions NotOnOrAfter")
    if expiry <= now - skew:
        raise _refuse("Conditions NotOnOrAfter has passed", "saml_expired")
    restrictions = conditions.findall(_q("AudienceRestriction"))
    if not restrictions:
        raise _refuse("no AudienceRestriction", "saml_audience")
    for restriction in restrictions:  # every restriction must name this SP (or, with aws_passthrough, AWS)
        if not audiences & {text_of(a, "Audience") for a in restriction.findall(_q("Audience"))}:
            raise _refuse("neither this SP nor an accepted AWS audience is in the Audience", "saml_audience")
    return expiry


def _subject_confirmation(assertion: Any, recipients: set[str], in_response_to: str | None,
                          request_id: str | None, now: datetime, skew: timedelta) -> datetime:
    subject = _only(assertion, _q("Subject"), "Subject")
    bearers = [sc for sc in subject.findall(_q("SubjectConfirmation")) if sc.get("Method") == C.CM_BEARER]
    if len(bearers) != 1:
        raise _refuse(f"{len(bearers)} bearer SubjectConfirmations", "saml_subject_confirmation")
    data = _only(bearers[0], _q("SubjectConfirmationData"), "SubjectConfirmationData")
    if data.get("Recipient") not in recipients:
        raise _refuse(f"Recipient {str(data.get('Recipient'))[:200]!r} is not this ACS (nor an accepted AWS "
                      "sign-in endpoint)", "saml_recipient")
    if data.get("InResponseTo") != in_response_to or in_response_to != request_id:
        raise _refuse("InResponseTo does not name the request this browser sent", "saml_in_response_to")
    if data.get("NotBefore") and parse_time(data.get("NotBefore"), "NotBefore") > now + skew:
        raise _refuse("SubjectConfirmationData NotBefore is in the future", "saml_not_yet_valid")
    expiry = parse_time(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter")
    if expiry <= now - skew:
        raise _refuse("SubjectConfirmationData NotOnOrAfter has passed", "saml_expired")
    return expiry


def _attributes(assertion: Any) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for statement in assertion.findall(_q("AttributeStatement")):
        for attribute in statement.findall(_q("Attribute")):
            name = attribute.get("Name")
            if not name:
                raise _refuse("Attribute without a Name", "saml_structure")
            if name in out:
                raise _refuse(f"attribute {name[:80]!r} appears twice", "saml_duplicate_attribute")
            out[name] = tuple(text_of(v, f"attribute {name[:80]!r}") for v in attribute.findall(_q("AttributeValue")))
    return out


def read_identity(facts: AssertionFacts, config: SamlIdpConfig, *, evidence: Evidence) -> Identity:
    attrs, names = facts.attributes, config.attributes
    email: str | None
    if names.email:
        email = next(iter(attrs.get(names.email, ())), None)
    else:
        email = facts.name_id if facts.name_id_format == C.NAMEID_EMAIL_ADDRESS else None
    verified: bool | None = None
    if names.email_verified and attrs.get(names.email_verified):
        verified = attrs[names.email_verified][0].lower() == "true"
    elif email and names.email_trusted:
        verified = True
    groups = attrs.get(names.groups, ()) if names.groups else ()
    mfa = bool(set(facts.authn_contexts) & set(config.mfa.authn_context))
    if config.mfa.attribute:
        mfa = mfa or bool(set(attrs.get(config.mfa.attribute, ())) & set(config.mfa.attribute_values))
    claims = dict(attrs)
    claims.update({alias: attrs.get(name, ()) for alias, name in names.aliases.items()})
    claims.update({"name_id": (facts.name_id,), "name_id_format": (facts.name_id_format or C.NAMEID_UNSPECIFIED,),
                   "authn_context": facts.authn_contexts, "groups": groups,
                   "email": (email,) if email else ()})
    if verified is not None:
        claims["email_verified"] = ("true" if verified else "false",)
    claims.pop(GROUPS_OVERAGE, None)  # set by the broker only, never by an attribute of that name
    if not groups and attrs.get(GROUPS_LINK):  # recorded for the decision's explanation; Graph is not called
        claims[GROUPS_OVERAGE] = ("true",)
    return Identity(
        idp=config.id, protocol="saml", issuer=facts.issuer, subject=facts.name_id, email=email,
        email_verified=verified, groups=groups, mfa=mfa, claims=claims, authenticated_at=facts.authn_instant,
        evidence=evidence,
    )
