"""The role picker's view of a decision: roles grouped by account, favourites and recently used first, a
text filter, and the session lengths each role allows. Pure: no I/O, no web framework."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.errors import BadRequest
from broker.grants import RoleGrant
from broker.preferences import Prefs

MIN_SECONDS = 900  # STS's shortest session, whatever the path
STEPS = (900, 1800, 3600, 7200, 14400, 28800, 43200)
MAX_QUERY = 200


@dataclass(frozen=True, slots=True)
class PickerRole:
    grant: RoleGrant
    arn: str
    account_id: str
    account_name: str
    role_name: str
    alias: str  # as role_names.alias_of: the account's name (else id) / the role's name
    favourite: bool
    search: str  # what the filter matches, folded: account name and id, role name, alias
    max_seconds: int


@dataclass(frozen=True, slots=True)
class Group:
    kind: str  # favourites | recent | account
    title: str
    account_id: str = ""
    roles: list[PickerRole] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Picker:
    groups: list[Group]
    total: int  # roles granted
    shown: int  # roles matching the filter


def label(seconds: int) -> str:
    hours, minutes = divmod(seconds // 60, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part)


def duration_choices(max_seconds: int) -> list[tuple[int, str]]:
    """The session lengths offered for a role: the usual steps below its maximum, and the maximum."""
    top = max(max_seconds, MIN_SECONDS)
    return [(s, label(s)) for s in STEPS if s < top] + [(top, label(top))]


def checked_duration(text: str, grant: RoleGrant) -> int | None:
    """A session length from a form: None when not given (the grant's own), else whole seconds within the
    grant's bounds. Anything else is refused before anything is issued."""
    if text == "":
        return None
    top = max(int(grant.duration.total_seconds()), MIN_SECONDS)
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and MIN_SECONDS <= int(text) <= top):
        raise BadRequest(f"duration {text[:16]!r} outside {MIN_SECONDS}..{top} for {grant.role_arn}",
                         reason="duration_outside_grant",
                         public=f"Choose a session length from {label(MIN_SECONDS)} to {label(top)} for this "
                                "role. Nothing was issued.")
    return int(text)


def folded_query(q: str) -> list[str]:
    return q[:MAX_QUERY].casefold().split()


def _roles(grants: Sequence[RoleGrant], accounts: Mapping[str, str], prefs: Prefs) -> list[PickerRole]:
    """Each ARN split once (500 rows: the grant's properties would split it again for every use)."""
    favourites = set(prefs.favourites)
    out = []
    for g in grants:
        _, _, _, _, account, resource = g.role_arn.split(":", 5)
        role_name = resource.rsplit("/", 1)[-1]
        name = accounts.get(account, "")
        alias = f"{name or account}/{role_name}"
        search = f"{name} {account} {role_name} {alias}".casefold()
        out.append(PickerRole(g, g.role_arn, account, name, role_name, alias, g.role_arn in favourites, search,
                              int(g.duration.total_seconds())))
    return out


def build(grants: Sequence[RoleGrant], accounts: Mapping[str, str], prefs: Prefs, q: str = "") -> Picker:
    """Favourites (in the order starred), then recently used (most recent first), then every role by account
    (accounts by name, then id; roles by name). Every term of `q` must appear in a role's search text."""
    terms = folded_query(q)
    everyone = _roles(grants, accounts, prefs)
    shown = [r for r in everyone if all(t in r.search for t in terms)]
    by_arn = {r.arn: r for r in shown}
    groups = []
    starred = [by_arn[a] for a in prefs.favourites if a in by_arn]
    if starred:
        groups.append(Group("favourites", "Favourites", roles=starred))
    recent = [by_arn[a] for a in prefs.recent if a in by_arn]
    if recent:
        groups.append(Group("recent", "Recently used", roles=recent))
    accounts_seen: dict[str, Group] = {}
    for role in sorted(shown, key=lambda r: (r.account_name.casefold() or "~", r.account_id, r.role_name.casefold())):
        group = accounts_seen.get(role.account_id)
        if group is None:
            group = accounts_seen[role.account_id] = Group("account", role.account_name, role.account_id)
            groups.append(group)
        group.roles.append(role)
    return Picker(groups, len(everyone), len(shown))


def picker_json(picker: Picker, prefs: Prefs) -> dict[str, Any]:
    """The picker's additions to GET /roles as JSON (the role list itself stays as before)."""
    return {"favourites": list(prefs.favourites), "recent": list(prefs.recent),
            "groups": [{"kind": g.kind, "title": g.title, "account_id": g.account_id,
                        "roles": [r.arn for r in g.roles]} for g in picker.groups]}
