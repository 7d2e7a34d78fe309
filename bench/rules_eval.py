"""Rules evaluation time for 10, 100 and 1,000 rules and a typical identity, and how it grows.

Each rule set mixes the operators a platform team writes (contains on groups, equals on a claim, a regex,
a nested any/not) and the identity matches a handful of rules, as a real one does. Baseline in the same
run: one plain dict lookup per rule (the cheapest conceivable evaluator), so the ratio says what the
language costs per rule on this machine.
"""

from __future__ import annotations

import time
from typing import Any

from broker.rules.evaluate import compiled_of, evaluate
from broker.rules.schema import RuleSet
from tests.factories import identity

SIZES = (10, 100, 1000)
TARGET_MS_1000 = 0.5


def rule(i: int) -> dict[str, Any]:
    kind = i % 4
    whens: list[dict[str, Any]] = [
        {"groups": {"contains": f"team-{i}"}},
        {"department": {"equals": f"dept-{i}"}, "email_verified": {"equals": True}},
        {"email": {"regex": f"user{i}\\.[a-z]+@example\\.com"}},
        {"any": [{"groups": {"contains": f"ops-{i}"}}, {"not": {"groups": {"contains": "contractors"}}}],
         "idp": {"equals": f"idp-{i}"}},
    ]
    when = whens[kind]
    return {"id": f"r{i}", "idps": ["okta"] if kind == 0 else None, "when": when,
            "grant": [{"role": f"arn:aws:iam::111122223333:role/R{i}", "tags": {"team": "{claims.department}"}}]}


def ruleset(n: int) -> RuleSet:
    rules = [rule(i) for i in range(n)]
    rules += [{"id": "hit-a", "when": {"groups": {"contains": "developers"}},
               "grant": [{"role": "arn:aws:iam::111122223333:role/Dev", "session_name": "{email}"}]},
              {"id": "deny-x", "effect": "deny", "when": {"groups": {"contains": "contractors"}}}]
    return RuleSet.model_validate({"version": 1, "rules": rules})


def per_call_ms(fn: Any, budget: float = 2.0, max_calls: int = 20000) -> float:
    fn()
    best = float("inf")
    deadline = time.perf_counter() + budget
    calls = 0
    while time.perf_counter() < deadline and calls < max_calls:
        start = time.perf_counter()
        for _ in range(20):
            fn()
        best = min(best, (time.perf_counter() - start) / 20)
        calls += 20
    return best * 1000


def main() -> int:
    person = identity(groups=("developers", "team-3"), claims={"department": ("dept-1",)})
    print(f"{'rules':>6}{'evaluate ms':>14}{'baseline ms':>14}{'ratio':>8}{'ms/rule (us)':>15}")
    results = {}
    for n in SIZES:
        rs = ruleset(n)
        compiled_of(rs)
        keys = [f"team-{i}" for i in range(n)]
        groups = set(person.groups)
        ours = per_call_ms(lambda rs=rs: evaluate(rs, person))
        base = per_call_ms(lambda keys=keys, groups=groups: [k in groups for k in keys])
        results[n] = ours
        print(f"{n:>6}{ours:>14.4f}{base:>14.4f}{ours / base:>8.1f}{ours / n * 1000:>15.2f}")
    growth = results[1000] / results[100]
    print(f"growth 100 -> 1000 rules: x{growth:.1f} (linear would be x10)")
    print(f"1000 rules: {results[1000]:.3f} ms (target < {TARGET_MS_1000} ms): "
          f"{'met' if results[1000] < TARGET_MS_1000 else 'NOT met'}")
    return 0
