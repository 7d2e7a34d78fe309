"""Role trust policy evaluation for the Assume* calls, as IAM documents it. Pure: no I/O.

Every action the call needs (sts:AssumeRoleWithWebIdentity, sts:AssumeRoleWithSAML or sts:AssumeRole, plus
sts:TagSession when session tags are set or carried and sts:SetSourceIdentity when a source identity is) must be
allowed by some Allow statement whose principal is the caller (the provider for federated calls, an AWS principal
for AssumeRole) and whose conditions hold; any matching Deny statement wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

ASSUME = "sts:AssumeRoleWithWebIdentity"
ASSUME_ROLE = "sts:AssumeRole"
TAG_SESSION = "sts:TagSession"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"
Matcher = Callable[[str, str], bool]


class UnsupportedPolicy(ValueError):
    """A policy we cannot judge. Refusing it is safer than guessing what an unknown operator means."""


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` any run of characters, `?` exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


_OPERATORS: dict[str, tuple[Matcher, bool]] = {
    "stringequals": (lambda p, v: p == v, False),
    "stringnotequals": (lambda p, v: p == v, True),
    "stringequalsignorecase": (lambda p, v: p.lower() == v.lower(), False),
    "stringnotequalsignorecase": (lambda p, v: p.lower() == v.lower(), True),
    "stringlike": (lambda p, v: glob_match(p, v), False),
    "stringnotlike": (lambda p, v: glob_match(p, v), True),
}


@dataclass(frozen=True)
class TrustRequest:
    provider_arn: str  # the Federated principal; "" for an AWS principal
    actions: tuple[str, ...]
    context: Mapping[str, tuple[str, ...]]  # condition keys, lower-cased (IAM keys are case-insensitive)
    # Every spelling under which an AWS principal matches Principal.AWS: its ARN (a session also matches its
    # role's ARN), and the account (root ARN or bare id; IAM then defers to the caller's identity policies).
    aws_principals: frozenset[str] = frozenset()


def load_document(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """moto hands the document back URL-encoded in XML; boto3 usually decodes it to a dict. Accept all three."""
    if isinstance(document, Mapping):
        return document
    text = document if document.lstrip().startswith("{") else unquote(document)
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise UnsupportedPolicy("trust policy is not a JSON object")
    return loaded


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_values(value: Any) -> list[str]:
    # IAM accepts booleans and numbers as condition values and compares them as their JSON text.
    return [json.dumps(v) if isinstance(v, bool | int | float) else str(v) for v in _as_list(value)]


def _split_operator(operator: str) -> tuple[str | None, Matcher, bool, bool]:
    lowered = operator.lower()
    qualifier = None
    for prefix in ("forallvalues:", "foranyvalue:"):
        if lowered.startswith(prefix):
            qualifier, lowered = prefix[:-1], lowered[len(prefix):]
    if_exists = lowered.endswith("ifexists")
    base = lowered.removesuffix("ifexists")
    if base not in _OPERATORS:
        raise UnsupportedPolicy(f"unsupported condition operator {operator}")
    matcher, negated = _OPERATORS[base]
    return qualifier, matcher, negated, if_exists


def _key_holds(operator: str, expected: list[str], values: tuple[str, ...] | None) -> bool:
    qualifier, matcher, negated, if_exists = _split_operator(operator)
    if values is None:
        # A missing key: ...IfExists and ForAllValues hold vacuously, a negated plain operator holds,
        # everything else fails (IAM's documented missing-key rules).
        return if_exists or qualifier == "forallvalues" or (negated and qualifier is None)

    def hit(value: str) -> bool:
        return any(matcher(pattern, value) for pattern in expected) != negated

    if qualifier == "forallvalues":
        return all(hit(v) for v in values)
    if qualifier == "foranyvalue" or not negated:
        return any(hit(v) for v in values)
    return all(hit(v) for v in values)  # a negated plain operator: no value may match


def conditions_hold(block: Any, context: Mapping[str, tuple[str, ...]]) -> bool:
    if block is None:
        return True
    if not isinstance(block, dict) or not all(isinstance(keys, dict) for keys in block.values()):
        raise UnsupportedPolicy("malformed Condition block")
    return all(_key_holds(operator, _condition_values(expected), context.get(key.lower()))
               for operator, keys in block.items() for key, expected in keys.items())


def _principal_matches(principal: Any, request: TrustRequest, *, wildcard_ok: bool) -> bool:
    aws_caller = bool(request.aws_principals)
    if principal == "*":
        return wildcard_ok or aws_caller  # for AWS principals "*" means everyone, as in IAM
    if not isinstance(principal, dict):
        return False
    if not aws_caller:
        federated = _as_list(principal.get("Federated", []))
        return request.provider_arn in federated or (wildcard_ok and "*" in federated)
    return any(str(p) == "*" or str(p) in request.aws_principals for p in _as_list(principal.get("AWS", [])))


def action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(glob_match(str(p), action, ignore_case=True) for p in _as_list(statement["NotAction"]))
    return any(glob_match(str(p), action, ignore_case=True) for p in _as_list(statement.get("Action", [])))


def _applies(statement: Mapping[str, Any], effect: str, request: TrustRequest, action: str) -> bool:
    if statement.get("Effect") != effect or "NotPrincipal" in statement:
        return False
    # A Deny naming every principal must still bite; an Allow must name this provider.
    if not _principal_matches(statement.get("Principal"), request, wildcard_ok=effect == "Deny"):
        return False
    return action_matches(statement, action) and conditions_hold(statement.get("Condition"), request.context)


def statements_of(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = _as_list(policy.get("Statement", []))
    if not all(isinstance(s, dict) for s in statements):
        raise UnsupportedPolicy("malformed Statement")
    return statements


def is_allowed(policy: Mapping[str, Any], request: TrustRequest) -> bool:
    """False on any doubt: an unknown operator or a malformed statement refuses rather than guesses."""
    try:
        statements = statements_of(policy)
        for action in request.actions:
            if any(_applies(s, "Deny", request, action) for s in statements):
                return False
        return all(any(_applies(s, "Allow", request, action) for s in statements) for action in request.actions)
    except UnsupportedPolicy:
        return False


def required_actions(*, tagged: bool, source_identity: bool, action: str = ASSUME) -> tuple[str, ...]:
    return (action,) + ((TAG_SESSION,) if tagged else ()) + ((SET_SOURCE_IDENTITY,) if source_identity else ())


def _claim_values(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(str(v) for v in _as_list(value))


def web_identity_context(provider: str, *, audience: str, claims: Mapping[str, Any], session_name: str,
                         tags: Mapping[str, str], source_identity: str | None) -> dict[str, tuple[str, ...]]:
    """The condition keys IAM offers for a web identity call. `provider` is host[:port]/path."""
    context: dict[str, tuple[str, ...] | None] = {
        f"{provider}:aud": (audience,), f"{provider}:sub": _claim_values(claims.get("sub")),
        f"{provider}:amr": _claim_values(claims.get("amr")), "sts:rolesessionname": (session_name,),
        "sts:sourceidentity": (source_identity,) if source_identity else None,
        "aws:tagkeys": tuple(tags) if tags else None,
    }
    if provider == "accounts.google.com" and isinstance(claims.get("azp"), str):
        # Google: IAM's :aud key carries azp, and :oaud the audience (AWS IAM user guide).
        context[f"{provider}:aud"], context[f"{provider}:oaud"] = (claims["azp"],), (audience,)
    context.update({f"aws:requesttag/{key}": (value,) for key, value in tags.items()})
    return {key.lower(): value for key, value in context.items() if value is not None}
