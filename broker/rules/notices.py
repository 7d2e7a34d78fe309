"""What a decision could not see, said so a person understands it: the IdP sent something in place of part
of the identity, so rules on that part could not match. Codes go to the audit log; the messages go to the
explanation (`rules explain`, the admin API) and the role picker's JSON. No I/O, no claim values."""

from __future__ import annotations

from collections.abc import Mapping

from broker.identity import GROUPS_OVERAGE

MESSAGES = {
    GROUPS_OVERAGE: (
        "The identity provider sent a group overage link instead of the user's groups: the user is in more "
        "groups than fit in a token (Microsoft Entra ID sends at most 150 in a SAML token, 200 in an ID token). "
        "The broker does not call Microsoft Graph to fetch them, so this login has no groups and rules on "
        "groups could not match. "
        "Fix it in Entra ID: in the application's group claim choose \"Groups assigned to the application\" "
        "(and assign the groups your rules use), or filter the groups the claim emits."),
}


def notices_of(claims: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Codes for what the claims say is missing (cheap: one lookup on every decision)."""
    return (GROUPS_OVERAGE,) if claims.get(GROUPS_OVERAGE) and not claims.get("groups") else ()


def notice_json(codes: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"code": code, "message": MESSAGES[code]} for code in codes]
