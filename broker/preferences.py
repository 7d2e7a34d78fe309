"""A person's picker preferences: the roles they starred and the roles they used last.

Kept in the state store (memory or Redis) so every replica shows the same, one small JSON value per person
under a hash of (IdP, subject): no name or email in a key. Both lists are bounded, and only roles the
current rules grant the person may be starred: the caller passes the granted ARNs, and a role outside them
is refused before anything is written. A role no longer granted simply stops being shown.

Two replicas writing one person's value at once: the last write wins (a lost star, never a foreign one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import orjson

from broker.errors import BadRequest, NotAuthorized
from broker.identity import Identity
from broker.store import StateStore

MAX_FAVOURITES = 100
MAX_RECENT = 5
TTL = 400 * 86400.0  # a year and a bit after the last change: a person who comes back finds their stars
MAX_ARN = 2048  # IAM's limit for a role ARN


@dataclass(frozen=True, slots=True)
class Prefs:
    favourites: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # most recent first


def preference_key(identity: Identity) -> str:
    person = hashlib.sha256(f"{identity.idp}\0{identity.subject}".encode()).hexdigest()[:40]
    return f"prefs:{person}"


def _arns(value: object, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and len(v) <= MAX_ARN)[:limit]


class Preferences:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def load(self, identity: Identity) -> Prefs:
        raw = await self._store.get(preference_key(identity))
        if raw is None:
            return Prefs()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Prefs()
        if not isinstance(data, dict):
            return Prefs()
        return Prefs(_arns(data.get("f"), MAX_FAVOURITES), _arns(data.get("r"), MAX_RECENT))

    async def _save(self, identity: Identity, prefs: Prefs) -> None:
        value = orjson.dumps({"f": list(prefs.favourites), "r": list(prefs.recent)}).decode()
        await self._store.put(preference_key(identity), value, TTL)

    async def star(self, identity: Identity, role_arn: str, on: bool, granted: Collection[str]) -> Prefs:
        """Add or remove a favourite. Adding a role the person is not granted is refused (a forged form):
        nothing is written. Removing is always allowed (a role no longer granted can be tidied away)."""
        prefs = await self.load(identity)
        if on and role_arn not in granted:
            raise NotAuthorized(f"favourite for a role not granted: {role_arn[:200]!r}",
                                reason="favourite_not_granted",
                                public="You can only star roles you are granted. Nothing was saved.")
        if on == (role_arn in prefs.favourites):  # already so
            return prefs
        if on:
            kept = tuple(f for f in prefs.favourites if f in granted)  # make room from roles gone
            if len(kept) >= MAX_FAVOURITES:
                raise BadRequest("too many favourites", reason="favourites_full",
                                 public=f"You can star up to {MAX_FAVOURITES} roles. Remove a star first.")
            favourites = (*kept, role_arn)
        else:
            favourites = tuple(f for f in prefs.favourites if f != role_arn)
        updated = Prefs(favourites, prefs.recent)
        await self._save(identity, updated)
        return updated

    async def used(self, identity: Identity, role_arn: str) -> None:
        """A role was used (console or credentials, after they were issued): it heads the recent list."""
        prefs = await self.load(identity)
        if prefs.recent[:1] == (role_arn,):
            return
        recent = (role_arn, *(r for r in prefs.recent if r != role_arn))[:MAX_RECENT]
        await self._save(identity, Prefs(prefs.favourites, recent))
