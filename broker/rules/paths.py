"""What each STS path (`via`) allows in a grant, judged when the rules load. Pure: no I/O.

- web_identity, saml: up to 12 h (the role's MaxSessionDuration).
- assume_role: with `from:` a role chain from a hub the same person gets via web_identity or saml. One hop
  only, and at most 1 h (AWS caps a chained session at one hour). The hub's SourceIdentity carries into the
  chain and cannot change; its transitive tags carry too and cannot be set again. Without `from:` the
  broker calls AssumeRole with its own credentials (the standard AWS credential chain). `external_id` is
  for this path only.
- federation_token: GetFederationToken with the broker's own IAM user keys, 15 min to 36 h, a session
  policy required (the credentials can do the intersection of the user's and the passed policy: nothing
  without one), no SourceIdentity and no transitive tags (the call has neither).

Whether the person has the hub grant depends on the identity: that is judged at issue time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from broker.grants import HUB_VIAS

STS_MAX = timedelta(hours=12)
CHAIN_MAX = timedelta(hours=1)
FEDERATION_MAX = timedelta(hours=36)
EXTERNAL_ID = r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$"  # AssumeRole's ExternalId ([\w+=,.@:/-], 2..1224)


@dataclass
class HubFacts:
    """What the rule set's grants of one role say, for `from:` naming it."""

    vias: set[str] = field(default_factory=set)
    transitive_tags: set[str] = field(default_factory=set)
    source_identities: set[str | None] = field(default_factory=set)

    def add(self, fields: Mapping[str, Any]) -> None:
        self.vias.add(fields["via"] or "web_identity")
        self.transitive_tags.update(fields["transitive_tags"] or ())
        self.source_identities.add(fields["source_identity"])


def via_problems(fields: Mapping[str, Any], chain_from: str | None) -> list[str]:
    via, problems = fields["via"] or "web_identity", []
    if chain_from is not None and via != "assume_role":
        problems.append("from: names the hub of a via assume_role grant only")
    if fields["external_id"] is not None and via != "assume_role":
        problems.append("external_id applies to via assume_role only")
    if via == "federation_token":
        if fields["policy"] is None and not fields["policy_arns"]:
            problems.append("via federation_token needs policy or policy_arns: without a session policy the "
                            "credentials can do nothing")
        if fields["source_identity"] is not None:
            problems.append("via federation_token takes no source_identity (GetFederationToken has none)")
        if fields["transitive_tags"]:
            problems.append("via federation_token takes no transitive_tags (GetFederationToken has none)")
    duration = fields["duration"]
    if duration is not None:
        if via == "federation_token" and duration > FEDERATION_MAX:
            problems.append("via federation_token lasts 15m to 36h")
        elif chain_from is not None and duration > CHAIN_MAX:
            problems.append("a chained grant (from:) lasts at most 1h: AWS caps role chaining at one hour")
        elif via != "federation_token" and duration > STS_MAX:
            problems.append("duration must be between 15m and 12h (the AWS STS bounds)")
    return problems


def chain_problems(fields: Mapping[str, Any], chain_from: str, hub: HubFacts | None) -> list[str]:
    if hub is None or not hub.vias:
        return [f"from: {chain_from} is granted by no rule of this file (a chain starts at a web_identity or saml "
                "grant of the same person)"]
    deeper = sorted(hub.vias - HUB_VIAS)
    if deeper:
        return [f"from: {chain_from} is granted via {', '.join(deeper)}: one hop only (a chain starts at a "
                "web_identity or saml grant)"]
    problems = []
    repeated = sorted(set(fields["tags"] or {}) & hub.transitive_tags)
    if repeated:
        problems.append(f"tags {', '.join(repeated)}: transitive tags of the hub session carry into the chain "
                        "and AWS refuses setting them again")
    own = fields["source_identity"]
    if own is not None and hub.source_identities - {None, own}:
        problems.append("source_identity differs from the hub's: the source identity of a role chain is set "
                        "once and cannot change (leave it out, or use the hub's)")
    return problems
