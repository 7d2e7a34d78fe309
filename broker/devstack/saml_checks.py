"""The checks AWS STS makes on an AssumeRoleWithSAML call, written without the broker's code: call parameters,
then the claims of the Assertion saml_signature verified (times, Issuer, Audience, Recipient, NameID, Role pairs,
RoleSessionName, SessionDuration, tags, SourceIdentity) and the trust policy's request. Pure: the front supplies
the provider metadata and the role.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree  # type: ignore[import-untyped]

from broker.devstack import trust_policy as trust
from broker.devstack.saml_signature import NS, SAML, SAMLP, Metadata, invalid, single
from broker.devstack.web_identity_checks import StsError, refuse_invalid

ATTR = "https://aws.amazon.com/SAML/Attributes/"
ASSUME = "sts:AssumeRoleWithSAML"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
AUDIENCES = {"aws": {"urn:amazon:webservices", "https://signin.aws.amazon.com/saml"},
             "aws-us-gov": {"urn:amazon:webservices:govcloud"}, "aws-cn": {"urn:amazon:webservices:cn-north-1"}}
RECIPIENTS = {"aws": re.compile(r"https://((?:[a-z]{2}(?:-[a-z]+)+-[0-9])\.)?signin\.aws\.amazon\.com/(static/)?saml"),
              "aws-us-gov": re.compile(r"https://signin\.amazonaws-us-gov\.com/saml"),
              "aws-cn": re.compile(r"https://signin\.amazonaws\.cn/saml")}
STS_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 128, 256
SKEW = 60


def access_denied() -> StsError:
    return StsError("AccessDenied", f"Not authorized to perform {ASSUME}", 403)


@dataclass(frozen=True)
class SamlRequest:
    role_arn: str
    principal_arn: str
    assertion: str = field(repr=False)
    duration: int | None


@dataclass(frozen=True)
class SamlClaims:
    issuer: str
    name_id: str
    name_id_format: str
    recipient: str
    audience: str
    session_name: str
    session_duration: int | None
    tags: Mapping[str, str]
    transitive: tuple[str, ...]
    source_identity: str | None
    session_not_on_or_after: datetime | None


def _violation(name: str, value: str, constraint: str) -> str:
    return f"Value '{value[:100]}' at '{name}' failed to satisfy constraint: Member must {constraint}"


def _constraint_errors(params: Mapping[str, str]) -> list[str]:
    """The API model's constraints, reported together as AWS does."""
    errors: list[str] = []
    for param, name, low, high in (("RoleArn", "roleArn", 20, 2048), ("PrincipalArn", "principalArn", 20, 2048),
                                   ("SAMLAssertion", "sAMLAssertion", 4, 100000), ("Policy", "policy", 1, 2048)):
        value = params.get(param)
        if value is None:
            if param != "Policy":
                errors.append(f"Value null at '{name}' failed to satisfy constraint: Member must not be null")
        elif not low <= len(value) <= high:
            bound = f"greater than or equal to {low}" if len(value) < low else f"less than or equal to {high}"
            errors.append(_violation(name, value, f"have length {bound}"))
    arns = [k for k in params if re.fullmatch(r"PolicyArns\.member\.\d+\.arn", k)]
    if len(arns) > 10:
        errors.append(_violation("policyArns", str(len(arns)), "have length less than or equal to 10"))
    raw = params.get("DurationSeconds")
    if raw is not None and (not re.fullmatch(r"[0-9]{1,9}", raw) or not 900 <= int(raw) <= 43200):
        errors.append(_violation("durationSeconds", raw, "be an integer from 900 to 43200"))
    return errors


def validate_request(params: Mapping[str, str]) -> SamlRequest:
    refuse_invalid(_constraint_errors(params), params.get("Policy"))
    duration = params.get("DurationSeconds")
    return SamlRequest(params["RoleArn"], params["PrincipalArn"], params["SAMLAssertion"],
                       int(duration) if duration is not None else None)


def _instant(value: str | None, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        raise invalid(f"Invalid {what}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_times(assertion: etree._Element, now: datetime) -> str:
    """The bearer confirmation's NotOnOrAfter and the Conditions window; returns the Recipient."""
    confirmations = assertion.findall("saml:Subject/saml:SubjectConfirmation", NS)
    if len(confirmations) != 1 or confirmations[0].get("Method") != BEARER:
        raise invalid("The assertion must have exactly one bearer SubjectConfirmation")
    data = single(confirmations[0], "saml:SubjectConfirmationData", "SubjectConfirmationData is required")
    recipient, expires = data.get("Recipient"), data.get("NotOnOrAfter")
    if not recipient or not expires:
        raise invalid("SubjectConfirmationData needs both Recipient and NotOnOrAfter")
    stamp = int(now.timestamp())
    limits = [(expires, "SubjectConfirmationData NotOnOrAfter")]
    conditions = assertion.find("saml:Conditions", NS)
    if conditions is not None and conditions.get("NotOnOrAfter"):
        limits.append((conditions.get("NotOnOrAfter"), "Conditions NotOnOrAfter"))
    for value, what in limits:
        if (_instant(value, what) - now).total_seconds() <= -SKEW:
            raise StsError("ExpiredTokenException", f"Token expired: {what} {value} is before {stamp}")
    for node in (data, conditions):
        if node is not None and node.get("NotBefore") and \
                (_instant(node.get("NotBefore"), "NotBefore") - now).total_seconds() > SKEW:
            raise invalid("The assertion is not yet valid (NotBefore)")
    return str(recipient)


def check_audience(assertion: etree._Element, partition: str, recipient: str) -> str:
    if RECIPIENTS[partition].fullmatch(recipient) is None:
        raise invalid(f"Invalid Recipient {recipient[:200]}")
    audiences = [a.text or "" for a in assertion.findall("saml:Conditions/saml:AudienceRestriction/saml:Audience", NS)]
    allowed = [a for a in audiences if a in AUDIENCES[partition]]
    if not allowed:
        raise invalid("The assertion's Audience is not this partition's AWS sign-in")
    return allowed[0]


def attributes(assertion: etree._Element) -> dict[str, list[str]]:
    """AWS's attributes by short name; an attribute given twice is refused rather than merged."""
    found: dict[str, list[str]] = {}
    for attribute in assertion.findall("saml:AttributeStatement/saml:Attribute", NS):
        name = attribute.get("Name", "")
        if not name.startswith(ATTR):
            continue
        if name[len(ATTR):] in found:
            raise invalid(f"Duplicate attribute {name[:200]}")
        # itertext(): comments or processing instructions inside a value never truncate it.
        found[name[len(ATTR):]] = ["".join(v.itertext()) for v in attribute.findall("saml:AttributeValue", NS)]
    return found


def _sts_name(value: str) -> bool:
    return STS_NAME.fullmatch(value) is not None


def check_role_pair(values: list[str] | None, request: SamlRequest) -> None:
    """The call's (RoleArn, PrincipalArn) must be one of the Role values, in the same account and partition."""
    if not values:
        raise access_denied()
    role_parts, provider_parts = request.role_arn.split(":"), request.principal_arn.split(":")
    if len(role_parts) < 6 or len(provider_parts) < 6 or role_parts[1:5] != provider_parts[1:5]:
        raise StsError("ValidationError", "Principal exists outside the account of the Role being assumed.")
    pairs = {tuple(p.strip() for p in value.split(",")) for value in values}
    wanted = {(request.role_arn, request.principal_arn), (request.principal_arn, request.role_arn)}
    if not pairs & wanted:
        raise access_denied()


def session_name(values: list[str] | None) -> str:
    if not values:
        raise invalid("RoleSessionName is required in AuthnResponse")
    if len(values) != 1 or not _sts_name(values[0]):
        raise invalid("RoleSessionName in AuthnResponse must be one value of 2-64 characters [A-Za-z0-9_+=,.@-]")
    return values[0]


def session_duration(values: list[str] | None) -> int | None:
    if values is None:
        return None
    if len(values) != 1 or not re.fullmatch(r"[0-9]{3,5}", values[0]) or not 900 <= int(values[0]) <= 43200:
        raise invalid("SessionDuration in AuthnResponse must be an integer from 900 to 43200")
    return int(values[0])


def _tag_key_ok(key: str) -> bool:
    def char_ok(ch: str) -> bool:
        category = unicodedata.category(ch)
        return category[0] in "LNZ" or ch in "_.:/=+-@"

    return 0 < len(key) <= MAX_TAG_KEY and all(char_ok(c) for c in key) and not key.lower().startswith("aws:")


def session_tags(found: Mapping[str, list[str]]) -> tuple[dict[str, str], tuple[str, ...]]:
    tags: dict[str, str] = {}
    for name, values in found.items():
        if not name.startswith("PrincipalTag:"):
            continue
        key = name.removeprefix("PrincipalTag:")
        if not _tag_key_ok(key) or len(values) != 1 or len(values[0]) > MAX_TAG_VALUE:
            raise invalid(f"Invalid session tag {key[:128]}")
        if key.lower() in {k.lower() for k in tags}:
            raise invalid("Duplicate session tag keys (keys are case-insensitive)")
        tags[key] = values[0]
    if len(tags) > MAX_TAGS:
        raise invalid(f"Session tags exceed the limit of {MAX_TAGS}")
    transitive = tuple(found.get("TransitiveTagKeys", []))
    if not {k.lower() for k in transitive} <= {k.lower() for k in tags}:
        raise invalid("TransitiveTagKeys must be a subset of the session tag keys")
    return tags, transitive


def source_identity(values: list[str] | None) -> str | None:
    if values is None:
        return None
    if len(values) != 1 or not _sts_name(values[0]) or values[0].lower().startswith("aws:"):
        raise invalid("SourceIdentity in AuthnResponse must be one value of 2-64 characters [A-Za-z0-9_+=,.@-]")
    return values[0]


def judge_assertion(assertion: etree._Element, request: SamlRequest, metadata: Metadata,
                    now: datetime) -> SamlClaims:
    """Every claim check, on the verified assertion."""
    issuer = assertion.find("saml:Issuer", NS)
    if issuer is None or "".join(issuer.itertext()).strip() != metadata.entity_id:
        raise invalid("Issuer does not match the entityID in the SAML provider's metadata")
    recipient = check_times(assertion, now)
    partition = request.role_arn.split(":")[1]
    audience = check_audience(assertion, partition, recipient)
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    if name_id is None or not "".join(name_id.itertext()).strip():
        raise access_denied()
    found = attributes(assertion)
    check_role_pair(found.get("Role"), request)
    tags, transitive = session_tags(found)
    conditions = assertion.find("saml:AuthnStatement", NS)
    ends = conditions.get("SessionNotOnOrAfter") if conditions is not None else None
    return SamlClaims(
        issuer=metadata.entity_id, name_id="".join(name_id.itertext()).strip(),
        name_id_format=name_id.get("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        recipient=recipient, audience=audience, session_name=session_name(found.get("RoleSessionName")),
        session_duration=session_duration(found.get("SessionDuration")), tags=tags, transitive=transitive,
        source_identity=source_identity(found.get("SourceIdentity")),
        session_not_on_or_after=_instant(ends, "SessionNotOnOrAfter") if ends else None)


def name_qualifier(issuer: str, account_id: str, provider_name: str) -> str:
    digest = hashlib.sha1(f"{issuer}{account_id}/{provider_name}".encode()).digest()  # noqa: S324 (AWS's formula)
    return base64.b64encode(digest).decode()


def trust_request(provider_arn: str, claims: SamlClaims) -> trust.TrustRequest:
    """The actions and the SAML condition keys IAM evaluates the role's trust policy with."""
    account, provider_name = provider_arn.split(":")[4], provider_arn.rsplit("/", 1)[-1]
    sub_type = claims.name_id_format.rsplit(":", 1)[-1]
    context: dict[str, tuple[str, ...]] = {
        "saml:aud": (claims.recipient,), "saml:iss": (claims.issuer,), "saml:sub": (claims.name_id,),
        "saml:sub_type": (sub_type,), "saml:namequalifier": (name_qualifier(claims.issuer, account, provider_name),),
        "sts:rolesessionname": (claims.session_name,),
    }
    if claims.source_identity:
        context["sts:sourceidentity"] = (claims.source_identity,)
    if claims.tags:
        context["aws:tagkeys"] = tuple(claims.tags)
        context.update({f"aws:requesttag/{k}".lower(): (v,) for k, v in claims.tags.items()})
    actions = (ASSUME,) + ((trust.TAG_SESSION,) if claims.tags else ()) + \
        ((trust.SET_SOURCE_IDENTITY,) if claims.source_identity else ())
    return trust.TrustRequest(provider_arn, actions, context)


def session_seconds(request: SamlRequest, claims: SamlClaims, now: datetime) -> int:
    """min(DurationSeconds, SessionNotOnOrAfter); SessionDuration can only shorten it."""
    seconds = request.duration or 3600
    if claims.session_duration is not None:
        seconds = min(seconds, claims.session_duration)
    if claims.session_not_on_or_after is not None:
        seconds = min(seconds, int((claims.session_not_on_or_after - now).total_seconds()))
    if seconds < 900:
        raise StsError("ExpiredTokenException", "The session ends before the minimum duration of 900 seconds")
    return seconds


def moto_response(role_arn: str, provider_arn: str, claims: SamlClaims, seconds: int) -> str:
    """What moto gets once every check has passed: a minimal response it parses without crashing (at least two
    attributes, one Role value, no encryption), carrying only the checked values."""
    root = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP, "saml": SAML})
    assertion = etree.SubElement(root, f"{{{SAML}}}Assertion")
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    for name, value in (("Role", f"{role_arn},{provider_arn}"), ("RoleSessionName", claims.session_name),
                        ("SessionDuration", str(seconds))):
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=ATTR + name)
        etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = value
    data: bytes = etree.tostring(root, encoding="UTF-8")
    return base64.b64encode(data).decode("ascii")


def with_saml_fields(body: bytes, provider_arn: str, claims: SamlClaims) -> bytes:
    """moto answers with fixed placeholder Subject, Issuer, Audience and NameQualifier; put in what AWS returns."""
    sts_ns = "https://sts.amazonaws.com/doc/2011-06-15/"
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return body
    result = root.find(f"{{{sts_ns}}}AssumeRoleWithSAMLResult")
    if result is None:
        return body
    account, provider_name = provider_arn.split(":")[4], provider_arn.rsplit("/", 1)[-1]
    values = {"Subject": claims.name_id, "SubjectType": claims.name_id_format.rsplit(":", 1)[-1],
              "Issuer": claims.issuer, "Audience": claims.recipient,
              "NameQualifier": name_qualifier(claims.issuer, account, provider_name),
              "SourceIdentity": claims.source_identity}
    for name, value in values.items():
        if value is None:
            continue
        element = result.find(f"{{{sts_ns}}}{name}")
        if element is None:
            element = etree.SubElement(result, f"{{{sts_ns}}}{name}")
        element.text = value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data
