"""Can the IdP's own token or SAMLResponse (Identity.evidence) still be forwarded to STS? Judged before any STS
call, so a pass-through grant that cannot work fails with a reason that says why, and STS is never asked.

A browser session outlives the evidence it holds: an ID token's `exp` is typically an hour away, a SAML
assertion's NotOnOrAfter minutes. The grant stays listed on /roles (the rules decide it and they are pure, with no
clock); asking for it after the evidence expired is refused as `passthrough_expired` ("sign in again").

A SAMLResponse is forwarded only when AWS can accept it at all: its one assertion in clear (AWS cannot decrypt
what was encrypted to the broker), its bearer Recipient AWS's sign-in endpoint and AWS's audience among its
Audiences. A response addressed to the broker's own ACS (the usual SP login) is refused as
`passthrough_not_for_aws` rather than sent to STS to fail.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from lxml import etree  # type: ignore[import-untyped]

from broker.aws_saml import aws_audiences, is_aws_recipient
from broker.connectors.saml_xml import guarded_parse
from broker.errors import StsRefused, XmlRejected
from broker.grants import RoleGrant
from broker.identity import Evidence
from broker.issuers.saml_assertion import BEARER, SAML_NS
from broker.safe_json import loads_object

MAX_SAML_ASSERTION = 100_000  # AssumeRoleWithSAML's SAMLAssertion length limit
MAX_WEB_IDENTITY_TOKEN = 20_000  # AssumeRoleWithWebIdentity's WebIdentityToken length limit


def expired() -> StsRefused:
    return StsRefused("the upstream evidence has expired", reason="passthrough_expired",
                      public="The identity provider's sign-in this role needs has expired. Sign in again.")


def not_for_aws(detail: str) -> StsRefused:
    return StsRefused(detail, reason="passthrough_not_for_aws",
                      public="The identity provider's assertion is not addressed to AWS, so AWS cannot accept it.")


def check_id_token(evidence: Evidence, now: datetime | None = None) -> None:
    """The token was verified at login; what is left to check is its `exp` against now (and AWS's size cap)."""
    if len(evidence.value) > MAX_WEB_IDENTITY_TOKEN:
        raise StsRefused("upstream ID token over STS's size limit", reason="passthrough_unavailable",
                         public="The identity provider's token is too large for AWS.")
    try:
        payload = evidence.value.split(".")[1]
        claims = loads_object(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise StsRefused("stored ID token unreadable", reason="passthrough_unavailable") from None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise expired()  # no usable exp: STS would refuse it as well
    if (now or datetime.now(UTC)).timestamp() >= exp:
        raise expired()


def check_saml_response(evidence: Evidence, grant: RoleGrant, now: datetime | None = None) -> None:
    if len(evidence.value) > MAX_SAML_ASSERTION:
        raise not_for_aws("upstream SAMLResponse over STS's size limit")
    try:
        root = guarded_parse(base64.b64decode(evidence.value, validate=True), max_bytes=MAX_SAML_ASSERTION)
    except (ValueError, binascii.Error, XmlRejected):
        raise StsRefused("stored SAMLResponse unreadable", reason="passthrough_unavailable") from None
    assertions = root.findall(f"{{{SAML_NS}}}Assertion")
    if len(assertions) != 1:
        raise not_for_aws("the response holds no assertion in clear (encrypted to the broker?)")
    recipient, expiry = _bearer(assertions[0])
    if not is_aws_recipient(grant.partition, recipient):
        raise not_for_aws(f"bearer Recipient {recipient[:200]!r} is not AWS's sign-in endpoint")
    if not _audiences(assertions[0]) & aws_audiences(grant.partition):
        raise not_for_aws("AWS is not among the assertion's Audiences")
    if (now or datetime.now(UTC)) >= expiry:
        raise expired()


def _bearer(assertion: etree._Element) -> tuple[str, datetime]:
    """Recipient and the earliest NotOnOrAfter (bearer confirmation, Conditions) of the assertion."""
    found = [sc for sc in assertion.iterfind(f"{{{SAML_NS}}}Subject/{{{SAML_NS}}}SubjectConfirmation")
             if sc.get("Method") == BEARER]
    data = found[0].find(f"{{{SAML_NS}}}SubjectConfirmationData") if len(found) == 1 else None
    if data is None:
        raise not_for_aws("not exactly one bearer SubjectConfirmation with data")
    conditions = assertion.find(f"{{{SAML_NS}}}Conditions")
    limits = [data.get("NotOnOrAfter"), None if conditions is None else conditions.get("NotOnOrAfter")]
    try:
        times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in limits if t]
    except ValueError:
        raise expired() from None
    if not times or any(t.tzinfo is None for t in times):
        raise expired()  # AWS needs a NotOnOrAfter; without one the assertion is not usable there
    return str(data.get("Recipient") or ""), min(times)


def _audiences(assertion: etree._Element) -> set[str]:
    path = f"{{{SAML_NS}}}Conditions/{{{SAML_NS}}}AudienceRestriction/{{{SAML_NS}}}Audience"
    return {(node.text or "").strip() for node in assertion.iterfind(path)}
