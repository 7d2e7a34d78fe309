"""`rules check` beyond the schema: what loads but is probably wrong. Pure: the caller supplies which
claims each configured IdP provides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.rules.schema import GrantSpec, Rule, RuleSet, arn_deny_match, merged
from broker.rules.templates import parse_template

# Always present on an Identity, whatever the IdP.
BUILTIN_FIELDS = {"email", "subject", "idp", "issuer", "groups", "email_verified", "mfa", "sub"}
ISSUED_VIA = {"web_identity", "saml"}  # service.BrokerService.credentials: assume_role is not issued yet


@dataclass(frozen=True, slots=True)
class Finding:
    path: tuple[str, ...]
    message: str


def _covers(deny: Rule, allow: Rule) -> bool:
    """True when `deny` holds whenever `allow` does, judged from their text (a syntactic check)."""
    if deny.idps is not None and (allow.idps is None or not set(allow.idps) <= set(deny.idps)):
        return False
    if deny.require_mfa and not allow.require_mfa:
        return False
    return all(allow.when is not None and allow.when.get(k) == v for k, v in (deny.when or {}).items())


def _removes_all(deny: Rule, allow: Rule) -> bool:
    if deny.roles is None:
        return True
    roles = [g.role for g in allow.grant]
    return all(r is not None and any(arn_deny_match(r, p) for p in deny.roles) for r in roles)


def shadowed(ruleset: RuleSet) -> list[Finding]:
    found = []
    denies = [r for r in ruleset.rules if r.effect == "deny"]
    for i, rule in enumerate(ruleset.rules):
        if rule.effect != "allow":
            continue
        for deny in denies:
            if _covers(deny, rule) and _removes_all(deny, rule):
                found.append(Finding(("rules", str(i)), f"rule {rule.id} is shadowed: deny rule {deny.id} "
                                     "always removes everything it grants"))
    return found


def _template_claims(spec: GrantSpec, ruleset: RuleSet) -> set[str]:
    fields = merged(spec, ruleset.defaults)
    sources = [fields["session_name"], fields["source_identity"], *(fields["tags"] or {}).values()]
    return {c for s in sources if s for c in parse_template(s).claims} - BUILTIN_FIELDS


def unprovided_claims(ruleset: RuleSet, provided: Mapping[str, set[str]]) -> list[Finding]:
    found = []
    for i, rule in enumerate(ruleset.rules):
        idps = rule.idps if rule.idps is not None else list(provided)
        available = set().union(*(provided.get(idp, set()) for idp in idps)) if idps else set()
        for j, spec in enumerate(rule.grant):
            missing = sorted(_template_claims(spec, ruleset) - available)
            if missing:
                found.append(Finding(("rules", str(i), "grant", str(j)),
                                     f"templates name claims no configured IdP for this rule provides: "
                                     f"{', '.join(missing)}"))
    return found


def not_issuable(ruleset: RuleSet) -> list[Finding]:
    found = []
    for i, rule in enumerate(ruleset.rules):
        for j, spec in enumerate(rule.grant):
            via = merged(spec, ruleset.defaults)["via"] or "web_identity"
            if via not in ISSUED_VIA:
                found.append(Finding(("rules", str(i), "grant", str(j), "via"),
                                     f"via {via}: this broker version issues via web_identity and saml only; "
                                     "the grant is refused at issue time"))
    return found


def idle_denies(ruleset: RuleSet) -> list[Finding]:
    explicit = [g.role for r in ruleset.rules for g in r.grant if g.role]
    dynamic = any(g.roles_from for r in ruleset.rules for g in r.grant)
    found = []
    for i, rule in enumerate(ruleset.rules):
        if rule.effect == "deny" and rule.roles is not None and not dynamic and not any(
                arn_deny_match(role, p) for p in rule.roles for role in explicit):
            found.append(Finding(("rules", str(i), "roles"), f"deny rule {rule.id} names no role any rule grants"))
    return found


def saml_passthrough_unreachable(ruleset: RuleSet, saml_without_aws: set[str]) -> list[Finding]:
    """A SAML pass-through grant for a SAML IdP whose config lacks aws_passthrough: its ACS accepts only responses
    addressed to the broker, and AWS refuses those, so the grant is listed and always refused."""
    found = []
    for i, rule in enumerate(ruleset.rules):
        idps = sorted(saml_without_aws if rule.idps is None else set(rule.idps) & saml_without_aws)
        for j, spec in enumerate(rule.grant):
            fields = merged(spec, ruleset.defaults)
            if idps and fields["token"] == "passthrough" and fields["via"] == "saml":  # noqa: S105 (a mode)
                found.append(Finding(("rules", str(i), "grant", str(j), "token"),
                                     f"token: passthrough via saml for {', '.join(idps)}, whose config has no "
                                     "aws_passthrough: its ACS accepts only responses addressed to the broker, "
                                     "which AWS refuses (passthrough_not_for_aws)"))
    return found


def lint(ruleset: RuleSet, provided: Mapping[str, set[str]] | None = None,
         saml_without_aws: set[str] | None = None) -> list[Finding]:
    """`provided`: the claims each configured IdP provides; `saml_without_aws`: the SAML IdPs whose config has
    no aws_passthrough (both from idp_configs; None when not given)."""
    findings = shadowed(ruleset) + not_issuable(ruleset) + idle_denies(ruleset)
    if provided is not None:
        findings += unprovided_claims(ruleset, provided)
    if saml_without_aws is not None:
        findings += saml_passthrough_unreachable(ruleset, saml_without_aws)
    return sorted(findings, key=lambda f: [int(p) if p.isdigit() else 0 for p in f.path])
