"""The roles a decision grants, as the portal and the CLI show them, and a role named the short way.

A person may name a role by its ARN, by its alias `ACCOUNT/ROLE` (the account's name from the rules, else its
id) or by its bare role name when only one granted role has it. A name that fits several is refused, listing
the aliases (they are the person's own grants: nothing to enumerate); an unknown name is "not authorized",
as an ungranted ARN is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.errors import BadRequest, NotAuthorized
from broker.grants import RoleGrant
from broker.rules.evaluate import Decision


def alias_of(grant: RoleGrant, accounts: Mapping[str, str]) -> str:
    return f"{accounts.get(grant.account_id, grant.account_id)}/{grant.role_name}"


def role_entries(decision: Decision, accounts: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /roles and GET /cli/roles: one entry per granted role."""
    return [{
        "role_arn": g.role_arn, "role_name": g.role_name, "account_id": g.account_id,
        "account_name": accounts.get(g.account_id), "alias": alias_of(g, accounts),
        "duration_seconds": int(g.duration.total_seconds()), "rule": g.rule_id,
    } for g in decision.grants]


def resolve_role(decision: Decision, accounts: Mapping[str, str], name: str) -> str:
    """The ARN of the granted role `name` designates (an ARN is returned as is: choose_grant judges it)."""
    if name.startswith("arn:"):
        return name
    for matches in ([g for g in decision.grants if alias_of(g, accounts) == name],
                    [g for g in decision.grants if g.role_name == name]):
        if len(matches) == 1:
            return matches[0].role_arn
        if matches:
            aliases = ", ".join(alias_of(g, accounts) for g in matches)
            raise BadRequest(f"role name {name[:64]!r} fits {len(matches)} granted roles", reason="role_ambiguous",
                             public=f"Several of your roles have this name; name one of: {aliases}.")
    raise NotAuthorized(f"no granted role named {name[:100]!r} (rules matched: {list(decision.matched)})",
                        reason="role_not_granted")
