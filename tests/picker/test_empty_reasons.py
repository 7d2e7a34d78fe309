"""The empty picker's reasons: each reason code comes from a real evaluation of a rules file (explain on),
and the messages never carry a rule id, a claim name or a value."""

from __future__ import annotations

from typing import Any

import pytest

from broker.rules.empty_reasons import MESSAGES, reason_codes, why_none
from broker.rules.evaluate import evaluate
from broker.rules.schema import RuleSet
from tests.factories import identity

ROLE = "arn:aws:iam::310000000001:role/Ops"
RULES: dict[str, Any] = {"version": 1, "rules": [
    {"id": "ops-mfa", "require_mfa": True, "when": {"groups": {"contains": "ops"}}, "grant": [{"role": ROLE}]},
    {"id": "corp-only", "idps": ["corp"], "when": {"groups": {"contains": "corp-ops"}}, "grant": [{"role": ROLE}]},
    {"id": "secret-team", "when": {"groups": {"contains": "secret-team-x"}}, "grant": [{"role": ROLE}]},
    {"id": "leavers", "effect": "deny", "when": {"groups": {"contains": "leavers"}}},
]}
RULESET = RuleSet.model_validate(RULES)


@pytest.mark.parametrize(("groups", "idp", "mfa", "codes"), [
    (("ops",), "okta", False, ("mfa_required", "idp_not_in_scope", "condition_failed")),
    (("ops", "leavers"), "okta", True, ("denied", "idp_not_in_scope", "condition_failed")),
    (("nobody",), "corp", False, ("mfa_required", "condition_failed")),
])
def test_reason_codes_from_a_real_evaluation(groups: tuple[str, ...], idp: str, mfa: bool,
                                             codes: tuple[str, ...]) -> None:
    decision = evaluate(RULESET, identity(groups=groups, idp=idp, mfa=mfa), explain=True)
    assert decision.grants == () and reason_codes(decision) == codes
    shown = why_none(decision)
    assert [w["code"] for w in shown] == list(codes[:2])  # the two most actionable only
    for text in (w["message"] for w in shown):
        for internal in ("ops-mfa", "corp-only", "secret-team", "leavers", "corp", "groups"):
            assert internal not in text


def test_no_rules_at_all() -> None:
    decision = evaluate(RuleSet.model_validate({"version": 1, "rules": []}), identity(), explain=True)
    assert reason_codes(decision) == ("no_rule",)
    assert why_none(decision)[0]["message"] == MESSAGES["no_rule"]
