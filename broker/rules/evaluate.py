"""Evaluate a rule set against an identity: a pure function, no I/O.

Every matching allow rule contributes its grants; a matching deny rule removes the roles it names (or
all); duplicates collapse. The result does not depend on rule order: grants are sorted by role ARN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.grants import RoleGrant
from broker.identity import Identity
from broker.rules.sanitize import UnusableName, sts_name
from broker.rules.schema import TEMPLATE_FIELD, Condition, GrantSpec, Rule, RuleSet, Scalar


@dataclass(frozen=True, slots=True)
class Decision:
    grants: tuple[RoleGrant, ...]
    matched: tuple[str, ...]  # ids of rules whose conditions held
    denied_by: tuple[str, ...]  # ids of deny rules that matched
    problems: tuple[str, ...]  # "rule-id: reason" for grants dropped (missing claim, unusable name)

    def grant_for(self, role_arn: str) -> RoleGrant | None:
        return next((g for g in self.grants if g.role_arn == role_arn), None)


class MissingClaim(ValueError):
    pass


def claim_values(identity: Identity, name: str) -> tuple[str, ...] | None:
    """The values of a claim as strings, or None when the identity does not carry it."""
    builtin: dict[str, tuple[str, ...] | None] = {
        "email": (identity.email,) if identity.email is not None else None,
        "email_verified": None if identity.email_verified is None else (_text(identity.email_verified),),
        "groups": identity.groups,
        "subject": (identity.subject,),
        "sub": (identity.subject,),
        "idp": (identity.idp,),
        "issuer": (identity.issuer,),
        "mfa": (_text(identity.mfa),),
    }
    if name in builtin:
        return builtin[name]
    return identity.claims.get(name)


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition_holds(cond: Condition, values: tuple[str, ...] | None) -> bool:
    if values is None:
        return False
    checks: list[bool] = []
    if cond.equals is not None:
        checks.append(any(v == _text(cond.equals) for v in values))
    if cond.in_ is not None:
        allowed = {_text(a) for a in cond.in_}
        checks.append(any(v in allowed for v in values))
    if cond.contains is not None:
        checks.append(_text(cond.contains) in values)
    return all(checks)


def rule_matches(rule: Rule, identity: Identity) -> bool:
    if rule.idps is not None and identity.idp not in rule.idps:
        return False
    if rule.require_mfa and not identity.mfa:
        return False
    return all(condition_holds(c, claim_values(identity, n)) for n, c in rule.when.items())


def render(template: str, identity: Identity) -> str:
    def field(name: str) -> str:
        key = name.removeprefix("claims.") if name.startswith("claims.") else name
        values = claim_values(identity, key)
        if not values:
            raise MissingClaim(f"claim {key!r} is missing")
        return values[0]
    return TEMPLATE_FIELD.sub(lambda m: field(m.group(1)), template)


def build_grant(rule: Rule, spec: GrantSpec, identity: Identity) -> RoleGrant:
    return RoleGrant(
        role_arn=spec.role,
        via=spec.via,
        provider_arn=None,
        session_name=sts_name(render(spec.session_name, identity)),
        source_identity=None,
        duration=spec.duration,
        tags={k: render(v, identity) for k, v in spec.tags.items()},
        rule_id=rule.id,
        passthrough=spec.token == "passthrough",
    )


def _allowed(rules: Iterable[Rule], identity: Identity, problems: list[str]) -> dict[str, RoleGrant]:
    grants: dict[str, RoleGrant] = {}
    for rule in rules:
        for spec in rule.grant:
            try:
                grant = build_grant(rule, spec, identity)
            except (MissingClaim, UnusableName) as exc:
                problems.append(f"{rule.id}: {spec.role}: {exc}")
                continue
            # Same role from two rules: keep one deterministically (lowest rule id), never both.
            current = grants.get(grant.role_arn)
            if current is None or grant.rule_id < current.rule_id:
                grants[grant.role_arn] = grant
    return grants


def evaluate(ruleset: RuleSet, identity: Identity) -> Decision:
    matched = [r for r in ruleset.rules if rule_matches(r, identity)]
    allows = [r for r in matched if r.effect == "allow"]
    denies = [r for r in matched if r.effect == "deny"]
    problems: list[str] = []
    grants = _allowed(allows, identity, problems)
    for deny in denies:
        removed = set(grants) if deny.roles is None else set(deny.roles)
        for arn in removed:
            grants.pop(arn, None)
    return Decision(
        grants=tuple(grants[k] for k in sorted(grants)),
        matched=tuple(sorted(r.id for r in matched)),
        denied_by=tuple(sorted(r.id for r in denies)),
        problems=tuple(sorted(problems)),
    )
