"""The caller's side of an STS call: identity-based policies (and a session's own session policy), as IAM's policy
evaluation logic documents it. Pure: the front fetches the documents from moto.

IAM asks for the caller's identity policies when the trust policy alone does not settle it: the role is in another
account, or its trust policy names only the account (root or bare id) rather than the principal. GetFederationToken
always needs them (sts:GetFederationToken on the federated user's ARN). A role session's session policy limits it
further unless the trust policy names that very session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.devstack.trust_policy import (
    UnsupportedPolicy,
    action_matches,
    conditions_hold,
    glob_match,
    statements_of,
)


@dataclass(frozen=True)
class Question:
    actions: tuple[str, ...]
    resource: str
    context: Mapping[str, tuple[str, ...]]


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        patterns = statement["NotResource"]
        return not any(glob_match(str(p), resource) for p in (patterns if isinstance(patterns, list) else [patterns]))
    patterns = statement.get("Resource", [])
    return any(glob_match(str(p), resource) for p in (patterns if isinstance(patterns, list) else [patterns]))


def _applies(statement: Mapping[str, Any], effect: str, action: str, question: Question) -> bool:
    # Identity policies name no principal; one that does is malformed, and counts for nothing.
    if statement.get("Effect") != effect or "Principal" in statement or "NotPrincipal" in statement:
        return False
    return action_matches(statement, action) and _resource_matches(statement, question.resource) \
        and conditions_hold(statement.get("Condition"), question.context)


def _verdicts(documents: Sequence[Mapping[str, Any]], action: str, question: Question) -> tuple[bool, bool]:
    statements = [s for document in documents for s in statements_of(document)]
    denied = any(_applies(s, "Deny", action, question) for s in statements)
    allowed = any(_applies(s, "Allow", action, question) for s in statements)
    return denied, allowed


def allows(documents: Sequence[Mapping[str, Any]], question: Question) -> bool:
    """Every action allowed by some statement and denied by none. False on any doubt (an unknown operator)."""
    try:
        for action in question.actions:
            denied, allowed = _verdicts(documents, action, question)
            if denied or not allowed:
                return False
        return True
    except UnsupportedPolicy:
        return False


def session_policy_allows(session_policies: Sequence[Mapping[str, Any]], question: Question) -> bool:
    """No session policy: the session keeps its role's permissions. Some (inline and managed together): they must
    allow too, since the session's permissions are their intersection with the role's."""
    return not session_policies or allows(session_policies, question)
