from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest
from pydantic import ValidationError

from broker.rules.evaluate import evaluate
from broker.rules.schema import RuleSet
from tests.factories import identity

ADMIN = "arn:aws:iam::111122223333:role/Admin"
DEV = "arn:aws:iam::111122223333:role/Dev"


def ruleset(*rules: Mapping[str, object]) -> RuleSet:
    return RuleSet.model_validate({"version": 1, "rules": list(rules)})


def allow(rule_id: str, role: str, when: dict[str, object], **extra: object) -> dict[str, object]:
    return {"id": rule_id, "when": when, "grant": [{"role": role, **extra}]}


def test_contains_grants_and_renders_names_and_tags() -> None:
    rs = ruleset(allow("devs", DEV, {"groups": {"contains": "developers"}}, duration="2h",
                       session_name="{email}", tags={"team": "{claims.department}"}))
    decision = evaluate(rs, identity())
    [grant] = decision.grants
    assert grant.role_arn == DEV and grant.duration == timedelta(hours=2)
    assert grant.session_name == "alice@example.com" and dict(grant.tags) == {"team": "platform"}
    assert decision.matched == ("devs",)


def test_equals_in_and_bool_values() -> None:
    rs = ruleset(
        allow("a", ADMIN, {"email": {"in": ["bob@example.com", "alice@example.com"]},
                           "email_verified": {"equals": True}}),
    )
    assert [g.role_arn for g in evaluate(rs, identity()).grants] == [ADMIN]
    assert evaluate(rs, identity(email_verified=False)).grants == ()


def test_absent_claim_never_matches() -> None:
    rs = ruleset(allow("a", ADMIN, {"claims_missing": {"equals": "x"}}))
    assert evaluate(rs, identity()).grants == ()


def test_deny_removes_named_roles_or_all_regardless_of_order() -> None:
    both = [allow("admins", ADMIN, {"groups": {"contains": "developers"}}),
            allow("devs", DEV, {"groups": {"contains": "developers"}})]
    deny_admin = {"id": "no-admin", "effect": "deny", "when": {"email": {"equals": "alice@example.com"}},
                  "roles": [ADMIN]}
    deny_all = {"id": "no-one", "effect": "deny", "when": {"groups": {"contains": "developers"}}}
    assert [g.role_arn for g in evaluate(ruleset(deny_admin, *both), identity()).grants] == [DEV]
    assert [g.role_arn for g in evaluate(ruleset(*both, deny_admin), identity()).grants] == [DEV]
    decision = evaluate(ruleset(*both, deny_all), identity())
    assert decision.grants == () and decision.denied_by == ("no-one",)


def test_idp_scope_and_mfa() -> None:
    rs = ruleset({**allow("a", ADMIN, {}), "idps": ["entra"]}, {**allow("b", DEV, {}), "require_mfa": True})
    assert evaluate(rs, identity()).grants == ()
    assert [g.role_arn for g in evaluate(rs, identity(idp="entra", mfa=True)).grants] == [ADMIN, DEV]


def test_missing_template_claim_drops_that_grant_only() -> None:
    rs = ruleset(allow("a", ADMIN, {}, tags={"cc": "{claims.cost_center}"}), allow("b", DEV, {}))
    decision = evaluate(rs, identity())
    assert [g.role_arn for g in decision.grants] == [DEV]
    assert decision.problems and "cost_center" in decision.problems[0]


def test_claim_values_are_data_not_patterns() -> None:
    rs = ruleset(allow("a", ADMIN, {"groups": {"contains": "admins"}}))
    lookalike = "\u0430dmins"  # Cyrillic a
    for hostile in ("admins,arn:aws:iam::999999999999:saml-provider/X", "admin*", "ADMINS", lookalike, "admins "):
        assert evaluate(rs, identity(groups=(hostile,))).grants == ()


@pytest.mark.parametrize("bad", [
    {"id": "x", "grant": [{"role": "arn:aws:iam::1:role/X"}]},
    {"id": "x", "grant": [{"role": ADMIN, "duration": "10m"}]},
    {"id": "x", "grant": [{"role": ADMIN, "duration": "13h"}]},
    {"id": "x", "grant": [{"role": ADMIN, "session_name": "{password}"}]},
    {"id": "x", "when": {"groups": {}}, "grant": [{"role": ADMIN}]},
    {"id": "x", "when": {"groups": {"regexp": "a"}}, "grant": [{"role": ADMIN}]},
    {"id": "x"},
    {"id": "x", "effect": "deny", "grant": [{"role": ADMIN}]},
])
def test_invalid_rules_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ruleset(bad)


def test_duplicate_rule_ids_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate rule ids: a"):
        ruleset(allow("a", ADMIN, {}), allow("a", DEV, {}))
