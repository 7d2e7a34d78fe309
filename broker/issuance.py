"""Grant choice and issuance, once for every entry point (browser role picker, console, token exchange):
one issuer per `via`, all on the process's one STS transport; the credential cache; the
`credentials_issued` audit event, and `hub_session_issued` for the first hop of a role chain.

The audit events join CloudTrail: the access key id (CloudTrail's accessKeyId of every call made with the
credentials), the assumed-role (or federated-user) ARN with the session name, the SourceIdentity, and for
AssumeRole and GetFederationToken the access key that signed the call (for a chain: the hub session's, whose
own event names the hub role)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from broker.audit import AuditLog
from broker.errors import NotAuthorized, RoleChoiceNeeded, ViaNotAvailable
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.cache import CredentialCache, cache_key
from broker.issuers.credentials import Credentials, isoformat
from broker.issuers.sts_http import HttpStsClient
from broker.rules.evaluate import Decision

if TYPE_CHECKING:  # boto3's transport, imported only when configured (service.open_sts)
    from broker.issuers.sts_client import StsClient


class Issuer(Protocol):
    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials: ...


def choose_grant(decision: Decision, role_arn: str | None, vias: Collection[str] | None = None) -> RoleGrant:
    """The grant for `role_arn`, or (None) the single grant there is; only grants `via` one of `vias` when
    given (the token exchange issues web identity only). One answer for "no rule matched" and "not this
    role": nothing to enumerate."""
    grants = decision.grants if vias is None else [g for g in decision.grants if g.via in vias]
    if role_arn is not None:
        grant = next((g for g in grants if g.role_arn == role_arn), None)
        if grant is None:
            raise NotAuthorized(f"role {role_arn[:200]!r} not granted (rules matched: {list(decision.matched)})",
                                reason="role_not_granted")
        return grant
    if len(grants) == 1:
        return grants[0]
    if not grants:
        raise NotAuthorized(f"no role granted (rules matched: {list(decision.matched)})", reason="role_not_granted")
    raise RoleChoiceNeeded(f"{len(grants)} roles granted", roles=tuple(g.role_arn for g in grants))


class Issuance:
    def __init__(self, sts: HttpStsClient | StsClient, issuers: Mapping[str, Issuer], cache: CredentialCache,
                 audit: AuditLog) -> None:
        self.sts, self.issuers, self.cache, self.audit = sts, dict(issuers), cache, audit

    def add(self, via: str, issuer: Issuer) -> None:
        """An issuer that needs this issuance itself (assume_role: a chain's hub session comes from here)."""
        self.issuers[via] = issuer

    async def close(self) -> None:
        await self.sts.close()

    def _issuer(self, grant: RoleGrant) -> Issuer:
        issuer = self.issuers.get(grant.via)
        if issuer is None:  # every path the rules language says has an issuer; a partial build has not
            raise ViaNotAvailable(f"grant via {grant.via} for {grant.role_arn}")
        return issuer

    async def issue(self, identity: Identity, grant: RoleGrant, **context: Any) -> Credentials:
        """Fresh credentials (a person's explicit request: never from the cache). `context`: more fields for
        the audit event (the CLI's channel and session id)."""
        creds = await self._issuer(grant).issue(identity, grant)
        self.issued(identity, grant, creds, **context)
        return creds

    async def issue_cached(self, identity: Identity, grant: RoleGrant, key: str, event: str = "credentials_issued",
                           *, refresh_before: timedelta | None = None, **context: Any) -> tuple[Credentials, bool]:
        """From the credential cache under `key` (computed by the caller, see issuers/cache.py), or one STS
        call per key (single flight). `refresh_before`: see CredentialCache.get_or_issue. `context`: more
        fields for the audit event."""
        issuer = self._issuer(grant)
        creds, cached = await self.cache.get_or_issue(key, self._call(issuer, identity, grant),
                                                      refresh_before=refresh_before)
        self.issued(identity, grant, creds, event, cached=cached, **context)
        return creds, cached

    async def hub_session(self, identity: Identity, hub: RoleGrant, target: RoleGrant) -> Credentials:
        """The first hop of a role chain: the hub grant's credentials, cached like any other grant's (the key
        covers the hub's whole scope), audited as `hub_session_issued` for the target role."""
        creds, _ = await self.issue_cached(identity, hub, cache_key(identity, hub), "hub_session_issued",
                                           target_role=target.role_arn)
        return creds

    @staticmethod
    def _call(issuer: Issuer, identity: Identity, grant: RoleGrant) -> Callable[[], Awaitable[Credentials]]:
        return lambda: issuer.issue(identity, grant)

    def issued(self, identity: Identity, grant: RoleGrant, creds: Credentials, event: str = "credentials_issued",
               **context: Any) -> None:
        hub = grant.hub
        self.audit.event(event, idp=identity.idp, subject=identity.subject, role=grant.role_arn,
                         rule=grant.rule_id, via=grant.via, passthrough=grant.passthrough,
                         access_key_id=creds.access_key_id, expires=isoformat(creds.expiration),
                         assumed_role_arn=creds.assumed_role_arn or None, session_name=grant.session_name,
                         source_identity=hub.source_identity if hub and hub.source_identity else grant.source_identity,
                         caller_access_key_id=creds.caller_key_id, hub_role=grant.chain_from, **context)
