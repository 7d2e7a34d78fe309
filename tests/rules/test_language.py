"""The rules language: operators, combinators, templates, roles from claims, policies, explanations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from broker.rules.evaluate import evaluate
from broker.rules.explain import as_text, for_audit
from broker.rules.lint import lint
from broker.rules.schema import RuleSet
from tests.factories import identity

ROLE = "arn:aws:iam::111122223333:role/R"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def granted(when: dict[str, Any], **person: Any) -> bool:
    rs = RuleSet.model_validate({"version": 1, "rules": [{"id": "r", "when": when, "grant": [{"role": ROLE}]}]})
    return bool(evaluate(rs, identity(**person), now=NOW).grants)


@pytest.mark.parametrize(("when", "person", "expected"), [
    ({"email": {"equals": "alice@example.com"}}, {}, True),
    ({"email": {"equals": "ALICE@example.com"}}, {}, False),
    ({"email": {"equals": "ALICE@example.com", "ignore_case": True}}, {}, True),
    ({"email": {"not_equals": "bob@example.com"}}, {}, True),
    ({"email": {"not_equals": "bob@example.com"}}, {"email": None}, False),  # missing never widens
    ({"groups": {"in": ["a", "developers"]}}, {}, True),
    ({"groups": {"not_in": ["developers"]}}, {}, False),
    ({"groups": {"contains_any": ["x", "developers"]}}, {}, True),
    ({"groups": {"contains_all": ["developers", "ops"]}}, {"groups": ("developers", "ops", "x")}, True),
    ({"groups": {"contains_all": ["developers", "ops"]}}, {}, False),
    ({"email": {"starts_with": "alice@"}}, {}, True),
    ({"email": {"ends_with": "@EXAMPLE.COM", "ignore_case": True}}, {}, True),
    ({"email": {"glob": "*@example.com"}}, {}, True),
    ({"email": {"glob": "*@example.org"}}, {}, False),
    ({"email": {"regex": "[a-z]+@example\\.com"}}, {}, True),
    ({"email": {"regex": "alice"}}, {}, False),  # full match, not search
    ({"department": {"exists": True}}, {}, True),
    ({"claims.department": {"absent": True}}, {}, False),
    ({"level": {"ge": 3}}, {"claims": {"level": ("3",)}}, True),
    ({"level": {"lt": 3}}, {"claims": {"level": ("x",)}}, False),
    ({"auth_time": {"after": "-1h"}}, {"claims": {"auth_time": (str(int(NOW.timestamp()) - 60),)}}, True),
    ({"auth_time": {"after": "-1h"}}, {"claims": {"auth_time": (str(int(NOW.timestamp()) - 7200),)}}, False),
    ({"auth_time": {"before": "2026-07-01T00:00:00Z"}}, {"claims": {"auth_time": ("2026-05-01T00:00:00Z",)}}, True),
    ({"any": [{"email": {"equals": "x"}}, {"groups": {"contains": "developers"}}]}, {}, True),
    ({"all": [{"email": {"equals": "x"}}, {"groups": {"contains": "developers"}}]}, {}, False),
    ({"not": {"groups": {"contains": "contractors"}}}, {}, True),
    ({"address.country": {"equals": "NZ"}}, {"claims": {"address.country": ("NZ",)}}, True),
])
def test_operators(when: dict[str, Any], person: dict[str, Any], expected: bool) -> None:
    assert granted(when, **person) is expected


def test_ignore_case_folds_ascii_only() -> None:
    kelvin = "\u212aelvin"  # KELVIN SIGN, which Unicode case folding would turn into "k"
    assert not granted({"email": {"equals": "kelvin", "ignore_case": True}}, email=kelvin)
    assert granted({"email": {"equals": "kelvin", "ignore_case": True}}, email="KELVIN")


def test_very_long_values_never_match_patterns() -> None:
    assert not granted({"email": {"glob": "*"}}, email="a" * 5000)
    assert granted({"email": {"exists": True}}, email="a" * 5000)


def test_roles_from_allow_list() -> None:
    rs = RuleSet.model_validate({"version": 1, "rules": [{"id": "r", "grant": [{"roles_from": {
        "claim": "roles", "allow": ["arn:aws:iam::*:role/App-*"], "accounts": ["111122223333"]}}]}]})
    ok = identity(claims={"roles": ("arn:aws:iam::111122223333:role/App-1",)})
    assert [g.role_arn for g in evaluate(rs, ok).grants] == ["arn:aws:iam::111122223333:role/App-1"]
    for hostile in ("arn:aws:iam::111122223333:role/Admin", "arn:aws:iam::999999999999:role/App-1",
                    "arn:aws:iam::111122223333:role/App-*", "App-1",
                    "arn:aws:iam::111122223333:role/App-1,arn:aws:iam::999999999999:saml-provider/X"):
        decision = evaluate(rs, identity(claims={"roles": (hostile,)}))
        assert decision.grants == () and decision.problems, hostile


def test_policy_templates_refuse_wildcards_and_render_json() -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                      "Resource": "arn:aws:s3:::b/{subject}/*"}]}
    rs = RuleSet.model_validate({"version": 1, "rules": [{"id": "r", "grant": [{"role": ROLE, "policy": policy}]}]})
    [grant] = evaluate(rs, identity(subject="u1")).grants
    assert json.loads(grant.policy or "")["Statement"][0]["Resource"] == "arn:aws:s3:::b/u1/*"
    for subject in ("*", "a/../b", "${aws:username}", "u1?"):
        assert evaluate(rs, identity(subject=subject)).grants == ()


def test_policy_with_yaml_dates_renders_iso_text_and_binary_is_a_schema_error() -> None:
    """`aws:CurrentTime: 2027-01-01` unquoted is a YAML date: IAM reads ISO 8601 text (found by the rules fuzz:
    it crashed the loader with a TypeError)."""
    text = """
version: 1
rules:
  - id: r
    grant:
      - role: arn:aws:iam::111122223333:role/R
        policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Action: "s3:GetObject"
              Resource: "arn:aws:s3:::b/*"
              Condition:
                DateLessThan: {"aws:CurrentTime": 2027-01-01}
                DateGreaterThan: {"aws:CurrentTime": 2026-01-01T00:00:00Z}
"""
    rs = RuleSet.model_validate(yaml.safe_load(text))
    [grant] = evaluate(rs, identity(), now=NOW).grants
    condition = json.loads(grant.policy or "")["Statement"][0]["Condition"]
    assert condition == {"DateLessThan": {"aws:CurrentTime": "2027-01-01"},
                         "DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00+00:00"}}
    with pytest.raises(ValidationError, match="JSON cannot express"):
        RuleSet.model_validate(yaml.safe_load(text.replace("2027-01-01", "!!binary aGk=")))


def test_defaults_role_max_and_transitive_tags() -> None:
    rs = RuleSet.model_validate({
        "version": 1, "defaults": {"duration": "12h", "tags": {"team": "{claims.department}"},
                                   "transitive_tags": ["team"], "session_name": "{email|local_part}"},
        "roles": {ROLE: {"max_duration": "2h"}},
        "rules": [{"id": "r", "grant": [{"role": ROLE, "duration": "1h"}, {"role": ROLE.replace("/R", "/S")}]}]})
    grants = {g.role_arn: g for g in evaluate(rs, identity()).grants}
    assert grants[ROLE].duration == timedelta(hours=1) and grants[ROLE].session_name == "alice"
    assert grants[ROLE.replace("/R", "/S")].duration == timedelta(hours=12)
    assert grants[ROLE].transitive_tags == ("team",) and dict(grants[ROLE].tags) == {"team": "platform"}


@pytest.mark.parametrize(("grant", "fragment"), [
    ({"role": ROLE, "duration": "3h"}, "max_duration"),
    ({"role": ROLE, "via": "saml"}, "needs provider"),
    ({"role": ROLE, "via": "saml", "provider": "arn:aws-cn:iam::111122223333:saml-provider/P"}, "partition"),
    ({"role": ROLE, "via": "saml", "provider": "arn:aws:iam::444455556666:saml-provider/P"}, "account"),
    ({"role": ROLE, "tags": {"aws:x": "v"}}, "tag key"),
    ({"role": ROLE, "tags": {f"k{i}": "v" for i in range(51)}}, "at most 50"),
    ({"role": ROLE, "transitive_tags": ["t"]}, "not tags"),
    ({"role": ROLE, "policy_arns": ["arn:aws:iam::aws:policy/P"] * 11}, "at most 10"),
    ({"role": ROLE, "roles_from": {"claim": "r", "allow": ["arn:aws:iam::*:role/X-*"],
                                   "accounts": ["111122223333"]}}, "exactly one"),
    ({"roles_from": {"claim": "r", "allow": ["*"], "accounts": ["111122223333"]}}, "roles_from.allow.0"),
    ({"role": ROLE, "session_name": "{claims.x|shout}"}, "unknown filter"),
])
def test_grant_problems_refused(grant: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        RuleSet.model_validate({"version": 1, "roles": {ROLE: {"max_duration": "2h"}},
                                "rules": [{"id": "r", "grant": [grant]}]})


def test_explanations_name_the_failing_condition_and_keep_values_out_of_audit() -> None:
    rs = RuleSet.model_validate({"version": 1, "rules": [
        {"id": "admins", "when": {"groups": {"contains": "admins"}}, "grant": [{"role": ROLE}]}]})
    decision = evaluate(rs, identity(groups=("secret-project-x",)), explain=True)
    assert "admins (allow): no match: when.groups.contains failed; groups is ['secret-project-x']" in as_text(decision)
    audit = json.dumps(for_audit(decision))
    assert "condition_failed:when.groups.contains" in audit and "secret-project-x" not in audit


def test_lint_finds_shadowed_rules_and_idle_denies() -> None:
    rs = RuleSet.model_validate({"version": 1, "rules": [
        {"id": "a", "when": {"groups": {"contains": "x"}}, "grant": [{"role": ROLE}]},
        {"id": "d", "effect": "deny", "when": {"groups": {"contains": "x"}}},
        {"id": "e", "effect": "deny", "roles": ["arn:aws:iam::999999999999:role/*"]},
        {"id": "f", "grant": [{"role": ROLE, "via": "assume_role"}]},
    ]})
    messages = [f.message for f in lint(rs)]
    assert any("rule a is shadowed: deny rule d" in m for m in messages)
    assert any("deny rule e names no role" in m for m in messages)
    assert not any("via" in m for m in messages)  # every path the language says is issued now
