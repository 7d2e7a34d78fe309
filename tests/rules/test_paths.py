"""What each STS path allows in a grant, judged when the rules load (rules/paths.py), and the role chain's
hub resolved per identity by the evaluation (the hub grant, after deny rules)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from broker.rules.evaluate import evaluate
from broker.rules.explain import as_json, as_text
from broker.rules.schema import RuleSet
from tests.factories import identity

HUB = "arn:aws:iam::111122223333:role/Hub"
SPOKE = "arn:aws:iam::444455556666:role/Spoke"
OTHER = "arn:aws:iam::444455556666:role/Other"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def rules(*grants: dict[str, Any], hub: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    hub_grant = {"role": HUB, **(hub or {})}
    return {"version": 1, "rules": [{"id": "hub", "grant": [hub_grant]}, {"id": "spokes", "grant": list(grants)}],
            **extra}


def refused(document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        RuleSet.model_validate(document)
    return str(caught.value)


def chain(**fields: Any) -> dict[str, Any]:
    return {"role": SPOKE, "via": "assume_role", "from": HUB, **fields}


def test_a_chain_from_a_web_identity_hub_loads_and_carries_its_hub() -> None:
    rs = RuleSet.model_validate(rules(chain(duration="1h", external_id="ext-1")))
    decision = evaluate(rs, identity())
    spoke = decision.grant_for(SPOKE)
    assert spoke is not None and spoke.chain_from == HUB and spoke.hub == decision.grant_for(HUB)
    assert spoke.external_id == "ext-1" and "ext-1" not in repr(spoke)  # not a secret, still kept out of reprs
    assert as_json(decision)["grants"][1]["from"] == HUB and as_json(decision)["grants"][1]["hub_granted"]


@pytest.mark.parametrize(("document", "message"), [
    # two hops: a chain from a chained grant
    (rules(chain(), {"role": OTHER, "via": "assume_role", "from": SPOKE}),
     f"from: {SPOKE} is granted via assume_role: one hop only"),
    # a hub no rule grants
    (rules({"role": SPOKE, "via": "assume_role", "from": "arn:aws:iam::111122223333:role/Nobody"}),
     "from: arn:aws:iam::111122223333:role/Nobody is granted by no rule of this file"),
    # a chained duration above AWS's 1 h
    (rules(chain(duration="2h")), "a chained grant (from:) lasts at most 1h: AWS caps role chaining at one hour"),
    # from on another path
    (rules({"role": SPOKE, "from": HUB}), "from: names the hub of a via assume_role grant only"),
    # the hub's transitive tag set again in the chain
    (rules(chain(tags={"team": "x"}), hub={"tags": {"team": "{email}"}, "transitive_tags": ["team"]}),
     "tags team: transitive tags of the hub session carry into the chain"),
    # another SourceIdentity than the hub's
    (rules(chain(source_identity="{subject}"), hub={"source_identity": "{email}"}),
     "source_identity differs from the hub's"),
    (rules({"role": SPOKE, "external_id": "ext-1"}), "external_id applies to via assume_role only"),
    (rules(chain(external_id="has space")), "external_id"),
    (rules({"role": SPOKE, "via": "federation_token"}), "via federation_token needs policy or policy_arns"),
    (rules({"role": SPOKE, "via": "federation_token", "policy": POLICY, "source_identity": "{email}"}),
     "via federation_token takes no source_identity"),
    (rules({"role": SPOKE, "via": "federation_token", "policy": POLICY, "duration": "37h"}),
     "duration must be between 15m and 12h (36h for via federation_token)"),
    (rules({"role": SPOKE, "duration": "13h"}), "duration must be between 15m and 12h (the AWS STS bounds)"),
])
def test_what_a_path_cannot_do_is_refused_at_load(document: dict[str, Any], message: str) -> None:
    assert message in refused(document)


def test_a_hub_from_roles_from_counts_and_its_own_via_decides() -> None:
    from_claim = {"roles_from": {"claim": "roles", "allow": ["arn:aws:iam::111122223333:role/*"],
                                 "accounts": ["111122223333"]}}
    ok = {"version": 1, "rules": [{"id": "hub", "grant": [from_claim]}, {"id": "s", "grant": [chain()]}]}
    assert RuleSet.model_validate(ok).rules[1].grant[0].from_ == HUB
    deeper = {"version": 1, "rules": [{"id": "hub", "grant": [{**from_claim, "via": "assume_role"}]},
                                      {"id": "s", "grant": [chain()]}]}
    assert "one hop only" in refused(deeper)


def test_federation_tokens_last_up_to_36h_and_their_names_32_characters() -> None:
    rs = RuleSet.model_validate(rules({"role": SPOKE, "via": "federation_token", "policy_arns": [
        "arn:aws:iam::aws:policy/ReadOnlyAccess"], "duration": "36h", "session_name": "{email}"}))
    long_email = "a-very-long-local-part-for-a-name@example.com"
    grant = evaluate(rs, identity(email=long_email)).grant_for(SPOKE)
    assert grant is not None and grant.duration == timedelta(hours=36) and grant.via == "federation_token"
    assert len(grant.session_name) == 32 and grant.session_name.startswith("a-ve==")  # digest form, 2..32
    short = evaluate(rs, identity()).grant_for(SPOKE)
    assert short is not None and short.session_name == "alice@example.com"


def test_a_person_without_the_hub_keeps_the_chain_listed_without_a_hub() -> None:
    document = rules(chain())
    document["rules"][0]["when"] = {"groups": {"contains": "hub-users"}}
    rs = RuleSet.model_validate(document)
    decision = evaluate(rs, identity(groups=("developers",)))
    [spoke] = decision.grants
    assert spoke.chain_from == HUB and spoke.hub is None
    assert "(hub not granted: refused)" in as_text(decision)


def test_a_deny_of_the_hub_takes_the_chain_with_it() -> None:
    document = rules(chain())
    document["rules"].append({"id": "no-hub", "effect": "deny", "roles": [HUB]})
    decision = evaluate(RuleSet.model_validate(document), identity())
    assert [g.role_arn for g in decision.grants] == [SPOKE] and decision.grants[0].hub is None


def test_a_chain_rule_test_case_compares_from() -> None:
    document = rules(chain(), tests=[{"name": "t", "identity": {"subject": "s1", "email": "a@example.com"},
                                      "expect": [{"role": HUB}, {"role": SPOKE, "from": HUB}]}])
    from broker.rules.testing import run_cases

    rs = RuleSet.model_validate(document)
    assert [r.passed for r in run_cases(rs, rs.tests)] == [True]
    wrong = rs.tests[0].model_copy(update={"expect": [rs.tests[0].expect[0],
                                                      rs.tests[0].expect[1].model_copy(update={"from_": OTHER})]})
    assert [r.passed for r in run_cases(rs, [wrong])] == [False]


def test_rules_check_warns_of_a_hub_session_policy_without_assume_role() -> None:
    from broker.rules.lint import lint

    narrow = RuleSet.model_validate(rules(chain(), hub={"policy": POLICY}))
    [finding] = lint(narrow)
    assert "its session policy does not allow sts:AssumeRole" in finding.message
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:Assume*"],
                                                    "Resource": "*"}]}
    assert lint(RuleSet.model_validate(rules(chain(), hub={"policy": wide}))) == []
