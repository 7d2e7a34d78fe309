"""The parameter checks AWS STS makes on AssumeRole and GetFederationToken, from the STS API model and the IAM user
guide, written without the broker's code. Pure: the front authenticates the caller and judges the trust policy.

Model constraint violations are reported together as one ValidationError, as AWS does. The packed size (session
policy, policy ARNs and tags, compressed) is not published by AWS; the local estimate is zlib's output against a
2048-byte budget, which refuses what AWS surely refuses (50 long random tags, a 2048-character policy plus large
tags) and accepts ordinary sessions.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.devstack.web_identity_checks import StsError, duration_errors, refuse_invalid

ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]*", re.ASCII)
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]*", re.ASCII)
SERIAL_NUMBER = re.compile(r"[\w+=/:,.@-]*", re.ASCII)
TOKEN_CODE = re.compile(r"[0-9]*", re.ASCII)
FEDERATED_NAME = re.compile(r"[\w+=,.@-]*", re.ASCII)
POLICY_CHARS = re.compile(r"[\t\n\r\x20-\xff]+")
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_POLICY_ARNS = 50, 128, 256, 10
MAX_POLICY_PLAINTEXT = 2048
PACKED_BUDGET = 2048
TAG_EXTRA_CHARS = frozenset("_.:/=+-@")


@dataclass(frozen=True)
class SessionParams:
    """What AssumeRole and GetFederationToken share."""

    duration: int | None
    policy: str | None = field(repr=False)
    policy_arns: tuple[str, ...]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class AssumeRoleRequest:
    role_arn: str
    session_name: str
    session: SessionParams
    transitive: tuple[str, ...]
    external_id: str | None = field(repr=False)
    source_identity: str | None


@dataclass(frozen=True)
class FederationRequest:
    name: str
    session: SessionParams


def _violation(name: str, value: str, constraint: str) -> str:
    return f"Value '{value[:100]}' at '{name}' failed to satisfy constraint: Member must {constraint}"


def _string_errors(name: str, value: str | None, low: int, high: int | None,
                   pattern: re.Pattern[str] | None = None, *, required: bool = False) -> list[str]:
    if value is None:
        return [f"Value null at '{name}' failed to satisfy constraint: Member must not be null"] if required else []
    if len(value) < low:
        return [_violation(name, value, f"have length greater than or equal to {low}")]
    if high is not None and len(value) > high:
        return [_violation(name, value, f"have length less than or equal to {high}")]
    if pattern is not None and pattern.fullmatch(value) is None:
        return [_violation(name, value, f"satisfy regular expression pattern: {pattern.pattern}")]
    return []


def _members(params: Mapping[str, str], prefix: str, suffix: str = "") -> list[str]:
    """The values of a query-protocol list (Prefix.member.N[suffix]) in N order."""
    found = {}
    for key, value in params.items():
        match = re.fullmatch(re.escape(prefix) + r"\.member\.([0-9]{1,4})" + re.escape(suffix), key)
        if match is not None:
            found[int(match.group(1))] = value
    return [found[n] for n in sorted(found)]


def _tag_text_ok(text: str, low: int, high: int) -> bool:
    # AWS's pattern [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters, separators and numbers by Unicode category.
    return low <= len(text) <= high and all(unicodedata.category(c)[0] in "LZN" or c in TAG_EXTRA_CHARS
                                            for c in text)


def _tag_errors(keys: list[str], values: list[str], transitive: list[str]) -> list[str]:
    errors: list[str] = []
    if len(keys) > MAX_TAGS:
        errors.append(_violation("tags", str(len(keys)), f"have length less than or equal to {MAX_TAGS}"))
    if len(transitive) > MAX_TAGS:
        errors.append(_violation("transitiveTagKeys", str(len(transitive)),
                                 f"have length less than or equal to {MAX_TAGS}"))
    for n, key in enumerate(keys + transitive, start=1):
        if not _tag_text_ok(key, 1, MAX_TAG_KEY):
            errors.append(_violation(f"tags.{n}.member.key", key, f"have length less than or equal to "
                                     f"{MAX_TAG_KEY} and satisfy regular expression pattern: "
                                     r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+"))
    for n, value in enumerate(values, start=1):
        if not _tag_text_ok(value, 0, MAX_TAG_VALUE):
            errors.append(_violation(f"tags.{n}.member.value", value, f"have length less than or equal to "
                                     f"{MAX_TAG_VALUE} and satisfy regular expression pattern: "
                                     r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"))
    return errors


def _session_errors(params: Mapping[str, str], *, max_duration: int, max_policy: int | None) -> list[str]:
    errors = duration_errors(params.get("DurationSeconds"), max_duration)
    errors += _string_errors("policy", params.get("Policy"), 1, max_policy, POLICY_CHARS)
    arns = _members(params, "PolicyArns", ".arn")
    if len(arns) > MAX_POLICY_ARNS:
        errors.append(_violation("policyArns", str(len(arns)), f"have length less than or equal to "
                                 f"{MAX_POLICY_ARNS}"))
    for arn in arns:
        errors += _string_errors("policyArns.member.arn", arn, 20, 2048)
    keys, values = _members(params, "Tags", ".Key"), _members(params, "Tags", ".Value")
    if len(keys) != len(values):
        errors.append("Every member of 'tags' must have both a Key and a Value")
    return errors + _tag_errors(keys, values, _members(params, "TransitiveTagKeys"))


def invalid_parameter(message: str) -> StsError:
    return StsError("InvalidParameterValue", message)


def _session(params: Mapping[str, str], default_duration: int | None) -> SessionParams:
    tags: dict[str, str] = {}
    for key, value in zip(_members(params, "Tags", ".Key"), _members(params, "Tags", ".Value"), strict=True):
        if key.lower() in {k.lower() for k in tags}:
            raise invalid_parameter("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
        tags[key] = value
    raw = params.get("DurationSeconds")
    return SessionParams(duration=int(raw) if raw is not None else default_duration, policy=params.get("Policy"),
                         policy_arns=tuple(_members(params, "PolicyArns", ".arn")), tags=tags)


def validate_assume_role(params: Mapping[str, str]) -> AssumeRoleRequest:
    errors = _string_errors("roleArn", params.get("RoleArn"), 20, 2048, required=True)
    errors += _string_errors("roleSessionName", params.get("RoleSessionName"), 2, 64, ROLE_SESSION_NAME,
                             required=True)
    errors += _string_errors("externalId", params.get("ExternalId"), 2, 1224, EXTERNAL_ID)
    errors += _string_errors("sourceIdentity", params.get("SourceIdentity"), 2, 64, ROLE_SESSION_NAME)
    errors += _string_errors("serialNumber", params.get("SerialNumber"), 9, 256, SERIAL_NUMBER)
    errors += _string_errors("tokenCode", params.get("TokenCode"), 6, 6, TOKEN_CODE)
    refuse_invalid(errors + _session_errors(params, max_duration=43200, max_policy=None), params.get("Policy"))
    if "SerialNumber" in params or "TokenCode" in params:
        # The local AWS has no MFA devices, so no one-time code can be right.
        raise StsError("AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code. ", 403)
    session = _session(params, None)
    transitive = tuple(_members(params, "TransitiveTagKeys"))
    if not {k.lower() for k in transitive} <= {k.lower() for k in session.tags}:
        raise invalid_parameter("The transitive tag keys must be a subset of the session tag keys in the request.")
    # The reserved "aws:" prefix AWS forbids in SourceIdentity cannot pass the pattern (no colon) in the first place.
    check_packed_size(session)
    return AssumeRoleRequest(role_arn=params["RoleArn"], session_name=params["RoleSessionName"], session=session,
                             transitive=transitive, external_id=params.get("ExternalId"),
                             source_identity=params.get("SourceIdentity"))


def validate_federation(params: Mapping[str, str]) -> FederationRequest:
    errors = _string_errors("name", params.get("Name"), 2, 32, FEDERATED_NAME, required=True)
    errors += _session_errors(params, max_duration=129600, max_policy=MAX_POLICY_PLAINTEXT)
    if "TransitiveTagKeys.member.1" in params:
        errors.append("TransitiveTagKeys is not a parameter of GetFederationToken")
    refuse_invalid(errors, params.get("Policy"))
    session = _session(params, 43200)
    check_packed_size(session)
    return FederationRequest(name=params["Name"], session=session)


def packed_percent(session: SessionParams, inherited: Mapping[str, str] | None = None) -> int:
    """The local estimate of AWS's packed size, in percent of the limit (see the module docstring)."""
    policy = json.dumps(json.loads(session.policy), separators=(",", ":")) if session.policy else ""
    tags = {**(inherited or {}), **session.tags}
    material = "\n".join([policy, *session.policy_arns, *(f"{k}={v}" for k, v in tags.items())]).encode()
    return math.ceil(len(zlib.compress(material, 9)) * 100 / PACKED_BUDGET)


def check_packed_size(session: SessionParams, inherited: Mapping[str, str] | None = None) -> int:
    plaintext = len(session.policy or "") + sum(len(arn) for arn in session.policy_arns)
    if plaintext > MAX_POLICY_PLAINTEXT:
        raise StsError("PackedPolicyTooLarge", f"The plaintext of the session policies ({plaintext} characters) "
                       f"exceeds the limit of {MAX_POLICY_PLAINTEXT}.")
    percent = packed_percent(session, inherited)
    if percent > 100:
        raise StsError("PackedPolicyTooLarge", f"Packed size of the session policy and session tags consumes "
                       f"{percent}% of the allowed limit.")
    return percent
