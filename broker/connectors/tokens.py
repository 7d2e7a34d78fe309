"""Bearer ID tokens an app already holds (token exchange): the Google preset and any OIDC provider.

Verification is `id_token.verify_id_token` against the provider's JWKS (`jwks.JwksCache`: Cache-Control
lifetime, bounded unknown-kid refresh), with what a token connector adds: several accepted `iss` forms,
an `azp` allow-list, Google Workspace `hd` and `email_verified` requirements.

A token verified once is remembered (by its SHA-256, in this process, until it expires or for at most
VERIFIED_TTL seconds, and never past the trust of the key set that verified it), so an app presenting the
same token again costs no second signature check; a key withdrawn from the JWKS stops being honoured within
the IdP's `jwks_max_age`, for remembered tokens too.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from broker.connectors.claims import identity_from_claims
from broker.connectors.fetch import discover
from broker.connectors.id_token import Expectations, json_segment, verify_id_token
from broker.connectors.jwks import JwksCache, jwks_for
from broker.connectors.token_config import TokenIdpConfig
from broker.errors import TokenInvalid, UpstreamUnavailable
from broker.identity import Evidence, Identity

DISCOVERY_TTL = 3600.0
DISCOVERY_RETRY = 10.0  # after a failed discovery, refuse at once for this long (no fetch per request)
VERIFIED_TTL = 300.0
VERIFIED_MAX = 4096
MAX_TOKEN_BYTES = 20000  # STS's WebIdentityToken limit; per-IdP limits are lower


@dataclass(frozen=True, slots=True)
class Unverified:
    """What a token says about itself before any check: used only to pick a connector and to refuse
    early (per-subject rate limit). Nothing here is trusted or acted on as identity."""

    raw: str = field(repr=False)
    digest: str
    issuer: str | None
    subject: str | None
    audiences: tuple[str, ...]


def _refuse(reason: str, detail: str) -> TokenInvalid:
    return TokenInvalid(detail, reason=reason)


def digest_of(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def peek(raw: str, digest: str | None = None) -> Unverified:
    if len(raw) > MAX_TOKEN_BYTES:
        raise _refuse("token_too_large", f"subject token of {len(raw)} bytes exceeds {MAX_TOKEN_BYTES}")
    payload = json_segment(raw, 1, "payload")
    iss, sub, aud = payload.get("iss"), payload.get("sub"), payload.get("aud")
    audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str)) \
        if isinstance(aud, list) else ()
    return Unverified(raw=raw, digest=digest or digest_of(raw),
                      issuer=iss if isinstance(iss, str) else None, subject=sub if isinstance(sub, str) else None,
                      audiences=audiences)


class VerifiedTokens:
    """Identities of tokens already verified, by token digest; bounded in count and time."""

    def __init__(self, *, max_entries: int = VERIFIED_MAX, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._max, self._clock = max_entries, clock

    def get(self, digest: str) -> Identity | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry[0]

    def put(self, digest: str, identity: Identity, until: float) -> None:
        self._entries[digest] = (identity, min(until, self._clock() + VERIFIED_TTL))
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def _email_verified(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class TokenConnector:
    def __init__(self, config: TokenIdpConfig, http: httpx.AsyncClient, *, verified: VerifiedTokens | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self._http, self._clock = config, http, clock
        self._timeout = config.timeout.total_seconds()
        self._jwks = jwks_for(http, config.jwks_uri, config) if config.jwks_uri else None
        self._discovered_until = 0.0
        self._discovery_failed_at = -1e18
        self.verified = verified if verified is not None else VerifiedTokens(clock=clock)
        self.expectations = Expectations(
            issuers=tuple(config.issuers), audiences=tuple(config.client_ids),
            algorithms=tuple(config.algorithms), leeway=int(config.leeway.total_seconds()),
            max_bytes=config.max_token_bytes, authorized_parties=tuple(config.authorized_parties) or None,
        )

    def issues(self, token: Unverified) -> bool:
        return token.issuer in self.config.issuers

    def accepts(self, token: Unverified) -> bool:
        """Whether this connector is the one to judge the token: its issuer and one of its audiences."""
        return self.issues(token) and any(a in self.config.client_ids for a in token.audiences)

    async def identity(self, token: Unverified) -> Identity:
        known = self.verified.get(token.digest)
        if known is not None:
            return known
        jwks = await self._key_source()
        claims = await verify_id_token(token.raw, jwks, self.expectations)
        self._check_policy(claims)
        identity = identity_from_claims(self.config, claims, protocol="token",
                                        evidence=Evidence("id_token", token.raw), now=datetime.now(UTC))
        # Remembered no longer than the key set that verified it is trusted (no await since the check, so
        # it is the same set): a withdrawn key's tokens are refused within jwks_max_age, remembered or not.
        until = min(float(claims["exp"]) + self.expectations.leeway, self._clock() + jwks.trusted_for())
        self.verified.put(token.digest, identity, until=until)
        return identity

    def _check_policy(self, claims: Mapping[str, Any]) -> None:
        if self.config.hosted_domains and claims.get("hd") not in self.config.hosted_domains:
            raise _refuse("hd_invalid", f"hd {str(claims.get('hd'))[:64]!r} is not an allowed Workspace domain")
        if self.config.require_email_verified and not _email_verified(claims.get(self.config.claims.email_verified)):
            raise _refuse("email_unverified", "the IdP does not say the email address is verified")

    async def ready(self) -> None:
        """Raise UpstreamUnavailable unless a trusted key set is held (fetched if need be)."""
        await (await self._key_source()).key_set(None)

    async def _key_source(self) -> JwksCache:
        if self.config.jwks_uri is not None and self._jwks is not None:
            return self._jwks
        now = time.monotonic()
        if self._jwks is not None and now < self._discovered_until:
            return self._jwks
        if now - self._discovery_failed_at < DISCOVERY_RETRY:
            raise UpstreamUnavailable(f"discovery at {self.config.issuer} failed moments ago",
                                      reason="discovery_backoff")
        try:
            uri = await self._discover()
        except UpstreamUnavailable:
            self._discovery_failed_at = now
            raise
        if self._jwks is None or self._jwks.uri != uri:
            self._jwks = jwks_for(self._http, uri, self.config)
        self._discovered_until = now + DISCOVERY_TTL
        return self._jwks

    async def _discover(self) -> str:
        doc = await discover(self._http, self.config.issuer, seconds=self._timeout)
        return str(doc["jwks_uri"])


class TokenConnectors:
    """Every `type: token` IdP; a token goes to the one whose issuer and audience it names."""

    def __init__(self, configs: Mapping[str, TokenIdpConfig], http: httpx.AsyncClient) -> None:
        # One memory of verified tokens for all: a token seen before skips parsing and selection too.
        self.verified = VerifiedTokens()
        self.by_id = {idp: TokenConnector(cfg, http, verified=self.verified) for idp, cfg in sorted(configs.items())}

    def __bool__(self) -> bool:
        return bool(self.by_id)

    def select(self, token: Unverified) -> TokenConnector:
        """The IdP whose issuer and audience the token names; else the first with its issuer (which then
        refuses the audience, so the audit says why); else none."""
        candidates = [c for c in self.by_id.values() if c.issues(token)]
        for connector in candidates:
            if connector.accepts(token):
                return connector
        if candidates:
            return candidates[0]
        raise _refuse("issuer_unknown", f"no token IdP accepts iss {str(token.issuer)[:100]!r} "
                                        f"with aud {list(token.audiences)[:3]!r}")
