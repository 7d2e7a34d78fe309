"""What the rules decide: the roles an identity may use, each with everything STS needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Via = Literal["saml", "web_identity", "assume_role"]


@dataclass(frozen=True, slots=True)
class RoleGrant:
    role_arn: str
    via: Via
    provider_arn: str | None
    session_name: str  # already valid for STS: [\w+=,.@-]{2,64}
    source_identity: str | None
    duration: timedelta
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tags: tuple[str, ...] = ()
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    rule_id: str = ""
    passthrough: bool = False  # forward the IdP's own token (Identity.evidence) instead of minting one

    @property
    def account_id(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def role_name(self) -> str:
        return self.role_arn.split(":", 5)[5].rsplit("/", 1)[-1]
