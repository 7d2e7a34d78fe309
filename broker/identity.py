"""The normalized identity every connector produces and the rules consume."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Protocol = Literal["oidc", "saml", "token"]
# A claim a connector sets when the IdP sent a link to the user's groups in place of the groups (Entra ID's
# group overage): the decision explains it (broker.rules.notices).
GROUPS_OVERAGE = "groups_overage"
MAX_CLAIM_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Evidence:
    """The original token or assertion, kept for pass-through to STS. Never printed or logged."""

    kind: Literal["id_token", "saml_response"]
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Identity:
    idp: str
    protocol: Protocol
    issuer: str
    subject: str
    email: str | None
    email_verified: bool | None
    groups: tuple[str, ...]
    mfa: bool
    claims: Mapping[str, tuple[str, ...]]
    authenticated_at: datetime
    evidence: Evidence | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """People are told apart by (issuer, subject), never by email alone."""
        return f"{self.issuer}|{self.subject}"


def claim_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, str | int | float):
        return (str(value),)
    if isinstance(value, list):
        return tuple(s for item in value if not isinstance(item, list | dict) for s in claim_strings(item))
    if isinstance(value, dict):
        return (json.dumps(value, sort_keys=True),)
    return ()


def normalize_claims(claims: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every claim as a tuple of strings; nested objects are also reachable by path ('address.country')."""
    out: dict[str, tuple[str, ...]] = {}
    _flatten(claims, "", out, depth=0)
    return out


def _flatten(claims: dict[str, Any], prefix: str, out: dict[str, tuple[str, ...]], depth: int) -> None:
    for name, value in claims.items():
        path = f"{prefix}{name}"
        out[path] = claim_strings(value)
        if isinstance(value, dict) and depth < MAX_CLAIM_DEPTH:
            _flatten(value, f"{path}.", out, depth + 1)
