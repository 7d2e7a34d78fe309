"""Evaluate a rule set against an identity: a pure function, no I/O.

Every matching allow rule contributes its grants; a matching deny rule removes the roles it names (ARN
patterns) or all; duplicates collapse to the grant of the lowest rule id. The result never depends on
rule order: grants are sorted by role ARN. Each rule's outcome is traced for explanations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from broker.grants import HUB_VIAS, RoleGrant
from broker.identity import Identity
from broker.rules.arns import arn_deny_match
from broker.rules.conditions import Failure, Node, guard
from broker.rules.grants_build import GrantError, GrantPlan, build
from broker.rules.notices import notices_of
from broker.rules.schema import RoleDecl, Rule, RuleSet

Claims = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule_id: str
    effect: str
    outcome: str  # matched | idp_not_in_scope | mfa_required | condition_failed
    failure: Failure | None = None
    granted: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    grants: tuple[RoleGrant, ...]
    traces: tuple[RuleTrace, ...]
    notices: tuple[str, ...] = ()  # codes from rules.notices: what the IdP sent instead of part of the identity

    @property
    def matched(self) -> tuple[str, ...]:
        return tuple(sorted(t.rule_id for t in self.traces if t.outcome == "matched"))

    @property
    def denied_by(self) -> tuple[str, ...]:
        return tuple(sorted(t.rule_id for t in self.traces if t.outcome == "matched" and t.effect == "deny"))

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(sorted(f"{t.rule_id}: {p}" for t in self.traces for p in t.problems))

    def grant_for(self, role_arn: str) -> RoleGrant | None:
        return next((g for g in self.grants if g.role_arn == role_arn), None)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: str
    deny: bool
    idps: frozenset[str] | None
    require_mfa: bool
    condition: Node | None
    plans: tuple[GrantPlan, ...]
    deny_patterns: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    roles: Mapping[str, RoleDecl]
    # claim -> value -> positions of rules that can only match when the claim holds that value
    index: Mapping[str, Mapping[str, tuple[int, ...]]]
    unguarded: tuple[int, ...]  # positions of rules that must always be tried

    def candidates(self, claims: Claims) -> list[int]:
        found = set(self.unguarded)
        for claim, by_value in self.index.items():
            for value in claims.get(claim, ()):
                found.update(by_value.get(value, ()))
        return sorted(found)


def _compile_rule(rule: Rule, ruleset: RuleSet) -> CompiledRule:
    return CompiledRule(
        rule.id, rule.effect == "deny", frozenset(rule.idps) if rule.idps is not None else None, rule.require_mfa,
        rule.condition, tuple(GrantPlan.build(rule.id, spec, ruleset.defaults) for spec in rule.grant),
        tuple(rule.roles) if rule.roles is not None else None,
    )


def compile_rules(ruleset: RuleSet) -> CompiledRules:
    rules = tuple(_compile_rule(r, ruleset) for r in ruleset.rules)
    index: dict[str, dict[str, list[int]]] = {}
    unguarded = []
    for position, rule in enumerate(rules):
        test = guard(rule.condition)
        if test is None or test.index_values is None:
            unguarded.append(position)
            continue
        for value in test.index_values:
            index.setdefault(test.claim, {}).setdefault(value, []).append(position)
    frozen = {claim: {v: tuple(ps) for v, ps in by_value.items()} for claim, by_value in index.items()}
    return CompiledRules(rules, dict(ruleset.roles), frozen, tuple(unguarded))


def claim_map(identity: Identity) -> dict[str, tuple[str, ...]]:
    """Every claim by name, with the normalized fields under their own names (they win over raw claims)."""
    claims = dict(identity.claims)
    builtin = {
        "email": (identity.email,) if identity.email is not None else None,
        "email_verified": None if identity.email_verified is None else (str(identity.email_verified).lower(),),
        "groups": identity.groups or None,
        "subject": (identity.subject,), "sub": (identity.subject,),
        "idp": (identity.idp,), "issuer": (identity.issuer,), "mfa": (str(identity.mfa).lower(),),
    }
    for name, values in builtin.items():
        if values is None:
            claims.pop(name, None)
        else:
            claims[name] = values
    return claims


def _judge(rule: CompiledRule, identity: Identity, claims: Claims, now: datetime) -> RuleTrace:
    effect = "deny" if rule.deny else "allow"
    if rule.idps is not None and identity.idp not in rule.idps:
        return RuleTrace(rule.rule_id, effect, "idp_not_in_scope")
    if rule.require_mfa and not identity.mfa:
        return RuleTrace(rule.rule_id, effect, "mfa_required")
    failure = rule.condition.check(claims, now) if rule.condition is not None else None
    if failure is not None:
        return RuleTrace(rule.rule_id, effect, "condition_failed", failure)
    return RuleTrace(rule.rule_id, effect, "matched")


def _may_match(rule: CompiledRule, identity: Identity, claims: Claims, now: datetime) -> bool:
    """The fast path of _judge: no trace, no failure objects."""
    if rule.idps is not None and identity.idp not in rule.idps:
        return False
    if rule.require_mfa and not identity.mfa:
        return False
    return rule.condition is None or rule.condition.holds(claims, now)


def _grants(rule: CompiledRule, trace: RuleTrace, identity: Identity, claims: Claims,
            roles: Mapping[str, RoleDecl]) -> tuple[RuleTrace, list[RoleGrant]]:
    grants, problems = [], []
    for plan in rule.plans:
        try:
            grants += build(plan, claims, identity.mfa, roles)
        except GrantError as exc:
            problems.append(f"{plan.role or (plan.roles_from and plan.roles_from.claim)}: {exc}")
    traced = RuleTrace(trace.rule_id, trace.effect, trace.outcome, granted=tuple(g.role_arn for g in grants),
                       problems=tuple(problems))
    return traced, grants


def evaluate(rules: RuleSet | CompiledRules, identity: Identity, now: datetime | None = None,
             *, explain: bool = False) -> Decision:
    """With explain, every rule is judged and traced; without, only the rules the index says could match
    (the others cannot), and only matched rules are traced."""
    compiled = rules if isinstance(rules, CompiledRules) else compiled_of(rules)
    now = now or datetime.now(UTC)
    claims = claim_map(identity)
    traces: dict[str, RuleTrace] = {}
    chosen: dict[str, RoleGrant] = {}
    denies: list[CompiledRule] = []
    positions = range(len(compiled.rules)) if explain else compiled.candidates(claims)
    for rule in (compiled.rules[p] for p in positions):
        if not explain and not _may_match(rule, identity, claims, now):
            continue
        trace = _judge(rule, identity, claims, now)
        if trace.outcome == "matched" and rule.deny:
            denies.append(rule)
        elif trace.outcome == "matched":
            trace, grants = _grants(rule, trace, identity, claims, compiled.roles)
            for grant in grants:
                current = chosen.get(grant.role_arn)
                if current is None or grant.rule_id < current.rule_id:
                    chosen[grant.role_arn] = grant
        traces[rule.rule_id] = trace
    for rule in denies:
        removed = [arn for arn in chosen if rule.deny_patterns is None
                   or any(arn_deny_match(arn, p) for p in rule.deny_patterns)]
        for arn in removed:
            del chosen[arn]
        traces[rule.rule_id] = RuleTrace(rule.rule_id, "deny", "matched", removed=tuple(sorted(removed)))
    return Decision(tuple(_with_hub(chosen[k], chosen) for k in sorted(chosen)), tuple(traces.values()),
                    notices_of(claims))


def _with_hub(grant: RoleGrant, chosen: Mapping[str, RoleGrant]) -> RoleGrant:
    """A chained grant with this identity's grant of its hub (after the deny rules: a denied hub takes its
    chains with it). Without one it stays listed and is refused at issue time, saying which hub it needs."""
    if grant.chain_from is None:
        return grant
    hub = chosen.get(grant.chain_from)
    return replace(grant, hub=hub if hub is not None and hub.via in HUB_VIAS else None)


def compiled_of(ruleset: RuleSet) -> CompiledRules:
    """Compile once per rule set (rule sets are immutable), so regexes and templates are built at load."""
    compiled = ruleset.compiled_cache(compile_rules)
    assert isinstance(compiled, CompiledRules)
    return compiled
