"""Credentials reused per (identity, role, scope) while comfortably valid, with a single STS call per key.

- Key: SHA-256 over the identity ((idp, issuer, subject) plus the attributes rules read) and every field
  of the RoleGrant but the rule id (role, via, token kind, session name, source identity, duration, tags,
  transitive tags, session policy, policy ARNs, ExternalId, and for a role chain the hub grant's whole
  scope). Any difference in scope is a different key. For a
  pass-through grant, also a digest of the upstream token's claims (all but the time and instance ones)
  or of the SAML response, which STS is shown: another app's token of the same person (another
  `aud`/`azp`) is another key.
- Where: the state store (so replicas share it), AES-GCM encrypted with a key derived from the session
  secret and bound to the cache key; plus a small in-process copy in front of it.
- Life: an entry is handed out while at least `min_remaining` of its credentials' life is left (capped
  at half that life), and the store entry expires then.
- Single flight: concurrent requests for one key in one process await one STS call. Replicas do not
  coordinate: each may make its own call for a key the shared store does not hold yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from joserfc.util import urlsafe_b64decode

from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.credentials import Credentials
from broker.safe_json import loads_object
from broker.sealing import Sealer
from broker.store import StateStore
from broker.telemetry import cache_lookup

LOCAL_MAX = 10000
_PURPOSE = "sts-broker credential cache v1"  # the HKDF info: the key stays what it was


# Claims of a pass-through token that differ between two tokens of one sign-in scope and that no trust
# policy condition reads.
_INSTANCE_CLAIMS = frozenset({"iat", "exp", "nbf", "auth_time", "jti", "nonce", "at_hash", "c_hash"})
_SCOPE_FIELDS = tuple(f.name for f in dataclasses.fields(RoleGrant) if f.name != "rule_id")


def _plain(value: Any) -> Any:
    """A value whose repr is canonical: mappings as sorted item tuples, durations as seconds."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, RoleGrant):  # a chain's hub grant: its whole scope too
        return tuple(_plain(getattr(value, name)) for name in _SCOPE_FIELDS)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def cache_key(identity: Identity, grant: RoleGrant) -> str:
    """SHA-256 over the repr of plain values (str, int, float, bool, None and tuples of them: canonical and
    unambiguous). Every RoleGrant field but rule_id is in the scope, including any added later."""
    who = (identity.idp, identity.issuer, identity.subject, identity.email, identity.email_verified,
           identity.groups, identity.mfa, _passed_through(identity, grant))
    scope = tuple(_plain(getattr(grant, name)) for name in _SCOPE_FIELDS)
    return "creds:" + hashlib.sha256(repr((who, scope)).encode()).hexdigest()


def _passed_through(identity: Identity, grant: RoleGrant) -> str | None:
    """For a pass-through grant, a digest of what STS is shown, since STS judges that, not the identity: a
    role's trust policy reads the token's aud, azp, amr, sub, tags claim... so credentials one token
    obtained are never handed out for a token with any other claim (another app's aud or azp, other amr),
    even of the same person. Left out: only the claims that say when and which instance (iat, exp, nbf,
    auth_time, jti, nonce, at_hash, c_hash), so an app's fresh ID token for the same scope reuses them.
    A SAML response: its digest whole. Minted grants: None (the broker's token is built from the identity
    and the grant, both in the key already)."""
    if not grant.passthrough or identity.evidence is None:
        return None
    value = identity.evidence.value
    if identity.evidence.kind == "id_token":
        try:
            claims = loads_object(urlsafe_b64decode(value.split(".")[1].encode("ascii")))
        except (ValueError, IndexError):
            claims = None  # not reached for a verified token; the whole token then, still never shared
        if claims is not None:
            kept = {name: v for name, v in claims.items() if name not in _INSTANCE_CLAIMS}
            value = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(value.encode()).hexdigest()


def _to_json(creds: Credentials, until: float) -> str:
    fields = {f.name: getattr(creds, f.name) for f in dataclasses.fields(creds)}
    fields["expiration"] = creds.expiration.isoformat()
    return json.dumps({"credentials": fields, "until": until})


def _from_json(data: str) -> tuple[Credentials, float]:
    document = json.loads(data)
    fields = document["credentials"]
    fields["expiration"] = datetime.fromisoformat(fields["expiration"])
    return Credentials(**fields), float(document["until"])


class CredentialCache:
    def __init__(self, store: StateStore, secret: str, *, min_remaining: timedelta, enabled: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._clock, self.enabled = store, clock, enabled
        self._min_remaining = min_remaining.total_seconds()
        self._sealer = Sealer(secret, purpose=_PURPOSE)
        self._local: OrderedDict[str, tuple[Credentials, float]] = OrderedDict()
        self._flights: dict[str, asyncio.Future[Credentials]] = {}
        self.issued = 0  # STS calls made through the cache (tests and benchmarks read it)

    def __repr__(self) -> str:
        return f"CredentialCache(enabled={self.enabled}, local={len(self._local)})"

    async def get_or_issue(self, key: str, issue: Callable[[], Awaitable[Credentials]], *,
                           refresh_before: timedelta | None = None) -> tuple[Credentials, bool]:
        """The credentials and whether they came from the cache (True) or a call made for this request.
        `refresh_before`: for this key, hand them out only while more than that is left of their life (when it
        is shorter than their life; else until half their life), instead of the cache's `min_remaining`. Every
        caller of one key must pass the same (container credentials use keys of their own)."""
        if not self.enabled:
            self.issued += 1
            return await issue(), False
        flight = self._flights.get(key)
        if flight is None:
            cached = await self._lookup(key)
            if cached is not None:
                cache_lookup(True)
                return cached, True
            flight = self._flights.get(key)  # another request may have started one while we looked
        cache_lookup(False)  # joining another request's call is a miss too: this request waits for STS
        if flight is None:
            flight = asyncio.ensure_future(self._issue_and_keep(key, issue, refresh_before))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # shield: a caller that goes away (client disconnect) does not cancel the call others await.
        return await asyncio.shield(flight), False

    def _landed(self, key: str, flight: asyncio.Future[Credentials]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so an error nobody awaited is not reported as lost

    async def _issue_and_keep(self, key: str, issue: Callable[[], Awaitable[Credentials]],
                              refresh_before: timedelta | None) -> Credentials:
        self.issued += 1
        creds = await issue()
        until = self._reusable_until(creds, refresh_before)
        ttl = until - self._clock()
        if ttl >= 1:
            self._remember(key, creds, until)
            await self._store.put(key, self._seal(key, creds, until), ttl)
        return creds

    def _reusable_until(self, creds: Credentials, refresh_before: timedelta | None = None) -> float:
        expires = creds.expiration.timestamp()
        life = expires - self._clock()
        if refresh_before is not None:
            before = refresh_before.total_seconds()
            return expires - (before if before < life else life / 2)
        return expires - min(self._min_remaining, life / 2)

    def _remember(self, key: str, creds: Credentials, until: float) -> None:
        self._local[key] = (creds, until)
        self._local.move_to_end(key)
        while len(self._local) > LOCAL_MAX:
            self._local.popitem(last=False)

    async def _lookup(self, key: str) -> Credentials | None:
        now = self._clock()
        local = self._local.get(key)
        if local is not None:
            if now < local[1]:
                return local[0]
            del self._local[key]
        sealed = await self._store.get(key)
        if sealed is None:
            return None
        opened = self._open(key, sealed)
        if opened is None or now >= opened[1]:
            return None  # the replica that made the call decided how long they are reusable
        self._remember(key, *opened)
        return opened[0]

    def _seal(self, key: str, creds: Credentials, until: float) -> str:
        return self._sealer.seal(_to_json(creds, until), key)

    def _open(self, key: str, sealed: str) -> tuple[Credentials, float] | None:
        opened = self._sealer.open(sealed, key)
        if opened is None:
            return None  # not ours (another secret, tampered): treat as absent, a new call replaces it
        try:
            return _from_json(opened)
        except (ValueError, KeyError, TypeError):
            return None
