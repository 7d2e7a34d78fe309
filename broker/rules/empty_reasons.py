"""Why a person has no role, in their words: the explanation's reason codes mapped to messages that say what
to do, never which rule, claim or value was involved (the admin API and `rules explain` say that)."""

from __future__ import annotations

from broker.rules.evaluate import Decision

# reason code -> message. Codes: a rule's outcome (rules/evaluate.py RuleTrace.outcome), "denied" (a deny
# rule removed what was granted), "grant_problem" (a matching rule's grant could not be built), "no_rule".
MESSAGES = {
    "denied": "Your organisation's access policy does not allow your account to use AWS roles here. "
              "If you need access, ask your platform team.",
    "mfa_required": "Some AWS roles need a sign-in with multi-factor authentication. Sign out, then sign in "
                    "again using your second factor (for example an authenticator app or a security key).",
    "idp_not_in_scope": "Your AWS roles are not available through the sign-in option you used. Sign out and "
                        "try another sign-in option.",
    "grant_problem": "A role meant for you could not be prepared because of a configuration problem. Your "
                     "platform team has been told in the broker's logs; try again later.",
    "condition_failed": "Your account is not in a group or team that has AWS access.",
    "no_rule": "No AWS role has been assigned to your account.",
}
ORDER = ("denied", "mfa_required", "idp_not_in_scope", "grant_problem", "condition_failed", "no_rule")
CLOSING = "If you think you should have access, ask your platform team to check your group memberships."


def reason_codes(decision: Decision) -> tuple[str, ...]:
    """The codes that explain an empty decision (made with explain=True, so every rule is traced), most
    actionable first. Only allow rules count as missed chances: a deny rule that did not match is no reason."""
    found = set()
    if decision.denied_by:
        found.add("denied")
    for trace in decision.traces:
        if trace.effect == "allow" and trace.outcome in MESSAGES:
            found.add(trace.outcome)
        if trace.effect == "allow" and trace.outcome == "matched" and trace.problems:
            found.add("grant_problem")
    if not found:
        found.add("no_rule")
    return tuple(code for code in ORDER if code in found)


def why_none(decision: Decision) -> list[dict[str, str]]:
    """At most two messages: the most actionable reasons, not a list of everything that did not match."""
    return [{"code": code, "message": MESSAGES[code]} for code in reason_codes(decision)[:2]]
