"""Test cases that live beside the rules: an identity and the exact grants expected.

Every expected role must be granted and nothing else; for each expected grant, the fields the case names
(via, duration, session_name, source_identity, tags, policy, from) must be equal. Failures come with a diff.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from broker.grants import RoleGrant
from broker.identity import Identity, normalize_claims
from broker.rules.evaluate import evaluate
from broker.rules.schema import ExpectedGrant, IdentitySpec, RuleSet, TestCase

FIXED_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    diff: str


def identity_of(spec: IdentitySpec) -> Identity:
    return Identity(
        idp=spec.idp, protocol=spec.protocol, issuer=spec.issuer, subject=spec.subject, email=spec.email,
        email_verified=spec.email_verified, groups=tuple(spec.groups), mfa=spec.mfa,
        claims=normalize_claims(spec.claims), authenticated_at=FIXED_NOW,
    )


def _actual(grant: RoleGrant, wanted: ExpectedGrant | None) -> dict[str, Any]:
    full: dict[str, Any] = {
        "role": grant.role_arn, "via": grant.via, "duration": int(grant.duration.total_seconds()),
        "session_name": grant.session_name, "source_identity": grant.source_identity, "tags": dict(grant.tags),
        "policy": json.loads(grant.policy) if grant.policy else None, "from": grant.chain_from,
    }
    named = {"role"} | {"from" if name == "from_" else name for name in (wanted.model_fields_set if wanted else ())}
    return {k: v for k, v in full.items() if k in named}


def _expected(wanted: ExpectedGrant) -> dict[str, Any]:
    out = wanted.model_dump(include=wanted.model_fields_set | {"role"}, by_alias=True)
    if "duration" in out:
        out["duration"] = int(wanted.duration.total_seconds()) if wanted.duration else None
    return out


def run_case(rules: RuleSet, case: TestCase) -> CaseResult:
    decision = evaluate(rules, identity_of(case.identity), now=FIXED_NOW)
    by_role = {e.role: e for e in case.expect}
    expected = sorted((_expected(e) for e in case.expect), key=lambda g: g["role"])
    actual = sorted((_actual(g, by_role.get(g.role_arn)) for g in decision.grants), key=lambda g: g["role"])
    if expected == actual:
        return CaseResult(case.name, True, "")
    diff = difflib.unified_diff(yaml.safe_dump(expected, sort_keys=True).splitlines(),
                                yaml.safe_dump(actual, sort_keys=True).splitlines(),
                                "expected", "actual", lineterm="")
    return CaseResult(case.name, False, "\n".join(diff))


def run_cases(rules: RuleSet, cases: list[TestCase]) -> list[CaseResult]:
    return [run_case(rules, case) for case in cases]
