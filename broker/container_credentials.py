"""Container credentials without HTTP: tokens made from a CLI session (POST /cli/container-tokens) and the
credentials each call with one gets (GET /container-credentials, what botocore's ContainerProvider calls).

Every call re-checks everything a fresh request would: the token is live (not revoked), its CLI session is
live (not logged out, revoked or expired), that session is the token's person's, and the current rules still
grant the role to that person. Only then are credentials handed out: from the credential cache while more
than `container_credentials.refresh_before` of their life is left, else freshly issued (one STS call per key
at a time): an SDK that refreshes before expiry always gets keys with time left.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from broker.audit import AuditLog
from broker.cli_sessions import CliSession, CliSessions, person_of
from broker.container_tokens import ContainerToken, ContainerTokens
from broker.errors import NotAuthenticated, NotFound
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuance import Issuance, choose_grant
from broker.issuers.cache import cache_key
from broker.issuers.credentials import Credentials, isoformat
from broker.role_names import resolve_role
from broker.rules.evaluate import Decision

ENDED = "Your broker session has ended: this container token no longer works. Run `sts-broker login` again."


@dataclass(frozen=True, slots=True)
class ContainerIssue:
    token: ContainerToken
    grant: RoleGrant
    credentials: Credentials
    cached: bool


def container_cache_key(identity: Identity, grant: RoleGrant) -> str:
    """Keys of their own: they are refreshed by `refresh_before`, not by the cache's min_remaining."""
    return "creds:container:" + hashlib.sha256(cache_key(identity, grant).encode()).hexdigest()


class ContainerCredentials:
    def __init__(self, tokens: ContainerTokens, sessions: CliSessions, decide: Callable[[Identity], Decision],
                 accounts: Callable[[], Mapping[str, str]], issuance: Issuance, audit: AuditLog,
                 refresh_before: timedelta) -> None:
        self.tokens, self._sessions, self._decide, self._accounts = tokens, sessions, decide, accounts
        self._issuance, self._audit, self.refresh_before = issuance, audit, refresh_before

    def __repr__(self) -> str:
        return f"ContainerCredentials(refresh_before={self.refresh_before})"

    async def create(self, session: CliSession, role: str, client: str) -> tuple[ContainerToken, str]:
        """A token for a role (ARN, alias or unique name) the rules grant the session's person now
        (NotAuthorized otherwise)."""
        ident = session.identity
        decision = self._decide(ident)
        grant = choose_grant(decision, resolve_role(decision, self._accounts(), role))
        record, token = await self.tokens.create(session, grant.role_arn)
        self._audit.event("container_token_issued", idp=ident.idp, subject=ident.subject, container=record.token_id,
                          session_id=session.session_id, role=grant.role_arn, client=client,
                          expires=int(record.expires_at))
        return record, token

    async def credentials(self, token: str, client: str) -> ContainerIssue:
        record = await self.tokens.load(token)
        if record is None:
            raise NotAuthenticated("no live container token", reason="container_token_invalid", public=ENDED)
        session = await self._sessions.by_id(record.session_id)
        if session is None or not hmac.compare_digest(session.person, record.person):
            await self.tokens.revoke(record.token_id, record.person)
            self._audit.event("container_token_revoked", container=record.token_id, session_id=record.session_id,
                              role=record.role_arn, by="session_end", client=client)
            raise NotAuthenticated(f"CLI session of container token {record.token_id} ended",
                                   reason="container_session_ended", public=ENDED)
        ident = session.identity
        grant = choose_grant(self._decide(ident), record.role_arn)  # the rules of now, not of the token's day
        creds, cached = await self._issuance.issue_cached(
            ident, grant, container_cache_key(ident, grant), refresh_before=self.refresh_before,
            container=record.token_id, session_id=session.session_id)
        self._audit.event("container_credentials_issued", idp=ident.idp, subject=ident.subject,
                          container=record.token_id, session_id=session.session_id, role=grant.role_arn,
                          refreshed=not cached, access_key_id=creds.access_key_id,
                          expires=isoformat(creds.expiration), client=client)
        return ContainerIssue(record, grant, creds, cached)

    async def revoke(self, token_id: str, identity: Identity, client: str) -> ContainerToken:
        """The portal: the person's own token only; NotFound for any other id."""
        record = await self.tokens.revoke(token_id, person_of(identity))
        if record is None:
            raise NotFound(f"no live container token {token_id[:64]!r} of this person",
                           reason="container_token_unknown")
        self._audit.event("container_token_revoked", idp=identity.idp, subject=identity.subject,
                          container=record.token_id, session_id=record.session_id, role=record.role_arn,
                          by="portal", client=client)
        return record

    async def session_ended(self, session: CliSession, client: str) -> None:
        """A CLI session was revoked: its tokens go with it (they are refused anyway; this clears the list)."""
        ident = session.identity
        for record in await self.tokens.revoke_session(session.session_id, session.person):
            self._audit.event("container_token_revoked", idp=ident.idp, subject=ident.subject,
                              container=record.token_id, session_id=record.session_id, role=record.role_arn,
                              by="session_end", client=client)
