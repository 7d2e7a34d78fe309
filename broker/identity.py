"""The normalized identity every connector produces and the rules consume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Protocol = Literal["oidc", "saml", "token"]


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
