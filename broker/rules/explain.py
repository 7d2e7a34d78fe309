"""Explanations of a decision: for people (text), and for the audit log (rule ids and reason codes only:
claim values can be personal or secret, so they never go to the audit log)."""

from __future__ import annotations

from typing import Any

from broker.grants import RoleGrant
from broker.rules.evaluate import Decision, RuleTrace
from broker.rules.notices import MESSAGES, notice_json

MAX_SHOWN = 120


def _shown(values: tuple[str, ...] | None) -> str:
    if values is None:
        return "absent"
    text = repr(list(values))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...]"


def trace_line(trace: RuleTrace) -> str:
    head = f"{trace.rule_id} ({trace.effect}): "
    if trace.outcome == "matched" and trace.effect == "deny":
        return head + f"matched; removes {', '.join(trace.removed) or 'nothing granted'}"
    if trace.outcome == "matched":
        body = f"matched; grants {', '.join(trace.granted) or 'nothing'}"
        return head + body + "".join(f"\n    problem: {p}" for p in trace.problems)
    if trace.outcome == "condition_failed" and trace.failure is not None:
        f = trace.failure
        if f.operator in ("any", "not"):
            return head + f"no match: {f.path} ({f.operator}) does not hold"
        return head + f"no match: {f.path} failed; {f.claim} is {_shown(f.actual)}"
    return head + {"idp_not_in_scope": "not for this IdP", "mfa_required": "needs MFA"}.get(
        trace.outcome, trace.outcome)


def as_text(decision: Decision) -> str:
    lines = [f"notice ({code}): {MESSAGES[code]}" for code in decision.notices]
    lines += [trace_line(t) for t in decision.traces]
    lines.append("grants:" if decision.grants else "grants: none (not authorized)")
    for g in decision.grants:
        extra = f" tags={dict(g.tags)}" if g.tags else ""
        if g.chain_from is not None:
            extra += f" from {g.chain_from}" + ("" if g.hub is not None else " (hub not granted: refused)")
        lines.append(f"  {g.role_arn} via {g.via} for {int(g.duration.total_seconds())}s as "
                     f"{g.session_name!r} (rule {g.rule_id}){extra}")
    return "\n".join(lines)


def for_audit(decision: Decision) -> dict[str, list[str] | dict[str, str]]:
    """Rule ids with reason codes and the failing condition's path: no claim values."""
    return {
        "rules": {t.rule_id: t.outcome if t.failure is None else f"{t.outcome}:{t.failure.path}"
                  for t in decision.traces},
        "roles": [g.role_arn for g in decision.grants],
        "denied_by": list(decision.denied_by),
        "problems": [p.split(":", 1)[0] for p in decision.problems],
        "notices": list(decision.notices),
    }


def as_json(decision: Decision) -> dict[str, Any]:
    """The full explanation (with actual values) for admins."""
    return {
        "rules": [{"id": t.rule_id, "effect": t.effect, "outcome": t.outcome,
                   "failure": None if t.failure is None else {
                       "path": t.failure.path, "claim": t.failure.claim, "operator": t.failure.operator,
                       "actual": None if t.failure.actual is None else list(t.failure.actual)},
                   "granted": list(t.granted), "removed": list(t.removed), "problems": list(t.problems)}
                  for t in decision.traces],
        "grants": [grant_json(g) for g in decision.grants],
        "notices": notice_json(decision.notices),
    }


def grant_json(g: RoleGrant) -> dict[str, Any]:
    return {"role": g.role_arn, "via": g.via, "provider": g.provider_arn, "duration": int(g.duration.total_seconds()),
            "session_name": g.session_name, "source_identity": g.source_identity, "tags": dict(g.tags),
            "transitive_tags": list(g.transitive_tags), "policy": g.policy, "policy_arns": list(g.policy_arns),
            "rule": g.rule_id, "token": "passthrough" if g.passthrough else "minted",
            "from": g.chain_from, "hub_granted": None if g.chain_from is None else g.hub is not None}
