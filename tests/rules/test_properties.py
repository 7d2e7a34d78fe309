"""Properties of the evaluator, over generated rule sets and identities (hypothesis)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.rules.evaluate import evaluate
from broker.rules.sanitize import STS_NAME, UnusableName, sts_name
from broker.rules.schema import RuleSet
from tests.factories import identity

GROUPS = ["a", "b", "c", "d"]
ROLES = [f"arn:aws:iam::111122223333:role/R{i}" for i in range(4)]
group = st.sampled_from(GROUPS)
condition = st.one_of(
    st.builds(lambda g: {"groups": {"contains": g}}, group),
    st.builds(lambda gs: {"groups": {"contains_any": gs}}, st.lists(group, min_size=1, max_size=3)),
    st.builds(lambda g: {"not": {"groups": {"contains": g}}}, group),
    st.just({}),
)


@st.composite
def rule_sets(draw: Any) -> list[dict[str, Any]]:
    rules = []
    for i in range(draw(st.integers(1, 8))):
        when = draw(condition)
        if draw(st.booleans()):
            rules.append({"id": f"allow{i}", "when": when or None, "grant": [
                {"role": r, "duration": draw(st.sampled_from(["15m", "1h", "12h"]))}
                for r in draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True))]})
        else:
            roles = draw(st.one_of(st.none(), st.lists(st.sampled_from(ROLES), min_size=1, max_size=2)))
            rules.append({"id": f"deny{i}", "effect": "deny", "when": when or None, "roles": roles})
    return rules


def decide(rules: list[dict[str, Any]], groups: tuple[str, ...]) -> list[tuple[str, str, float]]:
    rs = RuleSet.model_validate({"version": 1, "rules": rules})
    return [(g.role_arn, g.rule_id, g.duration.total_seconds())
            for g in evaluate(rs, identity(groups=groups)).grants]


people = st.lists(group, max_size=4, unique=True).map(tuple)


@settings(max_examples=150, deadline=None)
@given(rule_sets(), people, st.randoms(use_true_random=False))
def test_order_never_changes_the_result(rules: list[dict[str, Any]], groups: tuple[str, ...],
                                        rnd: random.Random) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    assert decide(rules, groups) == decide(shuffled, groups)


@settings(max_examples=150, deadline=None)
@given(rule_sets(), people, st.sampled_from(ROLES))
def test_a_matching_deny_always_wins(rules: list[dict[str, Any]], groups: tuple[str, ...], role: str) -> None:
    with_deny = [*rules, {"id": "zz-deny", "effect": "deny", "roles": [role]}]
    assert role not in [r for r, _, _ in decide(with_deny, groups)]
    everything = [*rules, {"id": "zz-deny-all", "effect": "deny"}]
    assert decide(everything, groups) == []


@settings(max_examples=100, deadline=None)
@given(rule_sets(), people)
def test_deterministic_and_deduplicated(rules: list[dict[str, Any]], groups: tuple[str, ...]) -> None:
    first = decide(rules, groups)
    assert first == decide(rules, groups)
    assert len({r for r, _, _ in first}) == len(first)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_sanitized_names_are_always_valid_for_sts(raw: str) -> None:
    try:
        name = sts_name(raw)
    except UnusableName:
        return
    assert STS_NAME.match(name)
    assert sts_name(raw) == name
