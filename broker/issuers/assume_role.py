"""AssumeRole for one grant: a role chain from the person's hub session (`from:` in the rules), or the broker's
own credentials (AWS's custom identity broker).

A chain: the hub session comes through the issuance and its credential cache (single flight, like any other
grant's credentials), then AssumeRole, signed by the hub session, into the target role. AWS carries the
hub's SourceIdentity (which cannot change) and its transitive session tags into the chain; the target's
session name, tags, policy and ExternalId come from the target grant. A chained session lasts at most 1 h.

Own credentials: AssumeRole signed by the broker's credentials, with the grant's session name, source
identity, tags, session policy and ExternalId. When the broker's own credentials are themselves a role
session (an instance or container role), this is a role chain for AWS too: 1 h at most.
"""

from __future__ import annotations

from typing import Protocol

from broker.errors import NotAuthorized, StsRefused
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.credentials import CallerKeys, Credentials
from broker.rules.paths import CHAIN_MAX


class AssumeRoleSts(Protocol):
    """sts_client.StsClient (boto3) or sts_http.HttpStsClient (on the event loop)."""

    async def assume_role(self, grant: RoleGrant, caller: CallerKeys, *,
                          source_identity: str | None) -> Credentials: ...


class OwnKeys(Protocol):
    """own_credentials.OwnCredentials."""

    async def current(self) -> CallerKeys: ...


class HubSessions(Protocol):
    """issuance.Issuance: a hub grant's credentials, from the credential cache or one STS call."""

    async def hub_session(self, identity: Identity, hub: RoleGrant, target: RoleGrant) -> Credentials: ...


def hub_of(grant: RoleGrant) -> RoleGrant:
    if grant.hub is None:
        hub = (grant.chain_from or "").rsplit("/", 1)[-1]
        raise NotAuthorized(f"{grant.role_arn} chains from {grant.chain_from}, which this identity is not granted",
                            reason="chain_source_not_granted",
                            public=f"This role is reached through the hub role {hub}, which you are not granted.")
    return grant.hub


class AssumeRoleIssuer:
    def __init__(self, sts: AssumeRoleSts, own: OwnKeys, hubs: HubSessions) -> None:
        self._sts, self._own, self._hubs = sts, own, hubs

    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials:
        if grant.chain_from is not None:
            return await self._chained(identity, grant)
        caller = await self._own.current()
        if caller.temporary and grant.duration > CHAIN_MAX:
            raise StsRefused(f"{grant.role_arn} for {grant.duration} with the broker's temporary credentials",
                             reason="chain_duration",
                             public="The broker's own AWS credentials are a role session, so AWS caps this role "
                                    "at 1 hour (role chaining): its grant asks for longer.")
        return await self._sts.assume_role(grant, caller, source_identity=grant.source_identity)

    async def _chained(self, identity: Identity, grant: RoleGrant) -> Credentials:
        hub = hub_of(grant)
        session = await self._hubs.hub_session(identity, hub, grant)
        # A SourceIdentity the hub set carries through by itself (the rules refuse a different one at load).
        source = None if hub.source_identity is not None else grant.source_identity
        return await self._sts.assume_role(grant, CallerKeys.of(session), source_identity=source)
