"""AssumeRoleWithWebIdentity with a token the broker mints for one grant.

The broker is the OIDC issuer IAM trusts: `iss` is its public URL, `aud` the configured audience, `sub`
"<idp>:<subject>" so a trust policy can tell IdPs apart. Session tags travel in AWS's tags claim.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.credentials import Credentials
from broker.issuers.passthrough import check_id_token

TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"


def web_identity_claims(
    identity: Identity, grant: RoleGrant, *, issuer: str, audience: str, lifetime: timedelta, now: datetime
) -> dict[str, Any]:
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"{identity.idp}:{identity.subject}",
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": secrets.token_urlsafe(16),
    }
    if identity.email is not None:
        claims["email"] = identity.email
    if grant.tags:
        claims[TAGS_CLAIM] = {
            "principal_tags": {k: [v] for k, v in sorted(grant.tags.items())},
            "transitive_tag_keys": list(grant.transitive_tags),
        }
    if grant.source_identity is not None:
        claims[SOURCE_IDENTITY_CLAIM] = grant.source_identity
    return claims


class WebIdentitySts(Protocol):
    """sts_client.StsClient (boto3) or sts_http.HttpStsClient (on the event loop)."""

    async def assume_role_with_web_identity(self, grant: RoleGrant, token: str) -> Credentials: ...


class TokenSigner(Protocol):
    """signing.KeyRing, or live_keys.LiveKeys (the ring a rotation has got to)."""

    def sign(self, claims: dict[str, Any]) -> str: ...
    @property
    def remote(self) -> bool: ...


class WebIdentityIssuer:
    def __init__(self, keys: TokenSigner, sts: WebIdentitySts, *, issuer: str, audience: str, lifetime: timedelta):
        self._keys, self._sts = keys, sts
        self._issuer, self._audience, self._lifetime = issuer, audience, lifetime

    def mint(self, identity: Identity, grant: RoleGrant) -> str:
        claims = web_identity_claims(
            identity, grant, issuer=self._issuer, audience=self._audience,
            lifetime=self._lifetime, now=datetime.now(UTC),
        )
        return self._keys.sign(claims)

    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials:
        if grant.passthrough:
            return await self._sts.assume_role_with_web_identity(grant, _upstream_token(identity))
        # A KMS signature is a network call: off the event loop.
        token = await asyncio.to_thread(self.mint, identity, grant) if self._keys.remote else self.mint(identity, grant)
        return await self._sts.assume_role_with_web_identity(grant, token)


def _upstream_token(identity: Identity) -> str:
    if identity.evidence is None or identity.evidence.kind != "id_token":
        raise StsRefused("pass-through grant without the upstream ID token", reason="passthrough_unavailable",
                         public="This role needs the identity provider's own token, which this sign-in lacks.")
    check_id_token(identity.evidence)  # a browser session outlives the ID token it keeps
    return identity.evidence.value
