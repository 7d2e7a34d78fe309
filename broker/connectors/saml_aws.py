"""python3-saml for a response an IdP's "AWS" app sent to the broker's ACS (the IdP's `aws_passthrough` option).

Strict python3-saml knows one URL and one entity id: the response's Destination must start with the URL, a bearer
Recipient must contain it and the Audiences must name the SP's entity id, and it makes those checks before it
verifies any signature. An AWS app's response names AWS (Recipient https://signin.aws.amazon.com/saml, Audience
urn:amazon:webservices) while the browser posts it to the broker's ACS (Destination: the IdP's "Single sign-on
URL"), so no settings let strict python3-saml verify it.

For such a response, and only for an IdP with `aws_passthrough`, the library runs with strict off. It then still
checks the version, the ID, the status, the one assertion, the signed elements (references, algorithms) and
verifies every signature against the IdP's certificates. `strict_remainder` makes the strict checks it then skips
that saml_checks does not make itself: the protocol schema (of the decrypted document too), an encrypted assertion
where the SP wants one, no EncryptedAttribute, SessionNotOnOrAfter not passed. saml_checks makes the rest exactly,
as for every response: Destination, Issuer, IssueInstant, Conditions and Audience, the one AuthnStatement, the
bearer confirmation (Recipient, InResponseTo, times), and which signature covers the assertion.
"""

from __future__ import annotations

from typing import Any

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError as Invalid
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from broker.aws_saml import any_aws_audience, any_aws_recipient
from broker.errors import TokenInvalid

SAML = C.NS_SAML
_SCD = f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData"
_RESTRICTIONS = f"{{{SAML}}}Conditions/{{{SAML}}}AudienceRestriction"
_ENCRYPTED_ATTRIBUTE = f"{{{SAML}}}AttributeStatement/{{{SAML}}}EncryptedAttribute"


def _assertion(document: Any) -> Any:
    root = document.getroottree().getroot() if hasattr(document, "getroottree") else document
    return root.find(f"{{{SAML}}}Assertion")


def _recipients(assertion: Any) -> list[str]:
    return [str(data.get("Recipient") or "") for data in assertion.iterfind(_SCD)]


def _audience_sets(assertion: Any) -> list[set[str]]:
    return [{(a.text or "").strip() for a in restriction.iterfind(f"{{{SAML}}}Audience")}
            for restriction in assertion.iterfind(_RESTRICTIONS)]


def names_another_party(document: Any, acs_url: str, sp_entity_id: str) -> bool:
    """Not yet verified, used only to pick the library's mode: does the assertion name a Recipient other than
    this ACS, or an AudienceRestriction without this SP? Strict python3-saml refuses such a response."""
    assertion = _assertion(document)
    if assertion is None:
        return False  # the library's own count check refuses it, strict or not
    return any(r != acs_url for r in _recipients(assertion)) or \
        any(sp_entity_id not in audiences for audiences in _audience_sets(assertion))


def refuse_if_for_aws(document: Any) -> None:
    """Without aws_passthrough: a response addressed to AWS is refused with a reason that says so (the IdP's AWS
    app posts to the broker, or the option is missing), before the library's less telling audience error."""
    assertion = _assertion(document)
    if assertion is None:
        return
    named = any(any_aws_recipient(r) for r in _recipients(assertion)) or \
        any(any_aws_audience(a) for audiences in _audience_sets(assertion) for a in audiences)
    if named:
        raise TokenInvalid("the assertion is addressed to AWS (its Recipient or Audience); this IdP's config does "
                           "not accept AWS's assertions at the ACS (aws_passthrough is off)", reason="saml_for_aws")


def relaxed(settings_data: dict[str, Any]) -> OneLogin_Saml2_Settings:
    """The IdP's python3-saml settings with strict off (the same IdP, certificates, SP keys and security)."""
    return OneLogin_Saml2_Settings({**settings_data, "strict": False}, custom_base_path=None)


def strict_remainder(response: OneLogin_Saml2_Response, strict: OneLogin_Saml2_Settings) -> None:
    """The checks strict python3-saml makes that its relaxed run skips and saml_checks does not make, with the
    library's own helpers and error codes (so the refusal reasons are the stock ones)."""
    for document in (response.document, response.decrypted_document if response.encrypted else None):
        if document is not None and isinstance(
                OneLogin_Saml2_XML.validate_xml(document, "saml-schema-protocol-2.0.xsd", False), str):
            raise Invalid("Invalid SAML Response. Not match the saml-schema-protocol-2.0.xsd",
                          Invalid.INVALID_XML_FORMAT)
    security = strict.get_security_data()
    if not response.encrypted and security["wantAssertionsEncrypted"]:
        raise Invalid("The assertion of the Response is not encrypted and the SP require it",
                      Invalid.NO_ENCRYPTED_ASSERTION)
    assertion = _assertion(response.decrypted_document if response.encrypted else response.document)
    if assertion is not None and assertion.find(_ENCRYPTED_ATTRIBUTE) is not None:
        raise Invalid("There is an EncryptedAttribute in the Response and this SP not support them",
                      Invalid.ENCRYPTED_ATTRIBUTES)
    expiry = response.get_session_not_on_or_after()
    if expiry and expiry <= OneLogin_Saml2_Utils.now():
        raise Invalid("The attributes have expired, based on the SessionNotOnOrAfter of the AuthnStatement",
                      Invalid.SESSION_EXPIRED)
