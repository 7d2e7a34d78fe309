"""What the rules decide: the roles an identity may use, each with everything STS needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Via = Literal["saml", "web_identity", "assume_role", "federation_token"]
HUB_VIAS = frozenset({"web_identity", "saml"})  # where a role chain starts (`from:` names such a grant)


@dataclass(frozen=True, slots=True)
class RoleGrant:
    role_arn: str
    via: Via
    provider_arn: str | None
    session_name: str  # already valid for STS: [\w+=,.@-]{2,64} (federation tokens: {2,32})
    source_identity: str | None
    duration: timedelta
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tags: tuple[str, ...] = ()
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    rule_id: str = ""
    passthrough: bool = False  # forward the IdP's own token (Identity.evidence) instead of minting one
    # via assume_role: AWS's ExternalId for the target's trust policy (not a secret, but kept out of reprs).
    external_id: str | None = field(default=None, repr=False)
    # via assume_role with `from:`: the hub role this one is reached from, and this identity's grant of it
    # (resolved by the rules' evaluation; None when the identity is not granted the hub).
    chain_from: str | None = None
    hub: RoleGrant | None = None

    @property
    def account_id(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def role_name(self) -> str:
        return self.role_arn.split(":", 5)[5].rsplit("/", 1)[-1]

    @property
    def chained(self) -> bool:
        return self.chain_from is not None
