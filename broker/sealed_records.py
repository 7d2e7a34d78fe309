"""JSON records kept in the state store sealed (broker/sealing.py), each bound to its own key, and the
pointer records that lead from a public id (listed on the portal, used to revoke) to a hashed secret's record.
Used by the CLI sessions and the container tokens."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from broker.sealing import Sealer
from broker.store import StateStore

MAX_PUBLIC_ID = 64
T = TypeVar("T")


class SealedRecords:
    def __init__(self, store: StateStore, secret: str, *, purpose: str) -> None:
        self._store, self._sealer = store, Sealer(secret, purpose=purpose)

    def __repr__(self) -> str:
        return "SealedRecords()"

    async def put(self, key: str, data: Mapping[str, object], ttl: float) -> None:
        await self._store.put(key, self._sealer.seal(json.dumps(data), key), ttl)

    async def get(self, key: str) -> dict[str, object] | None:
        """None when absent, or not sealed by this secret for this key."""
        raw = await self._store.get(key)
        opened = None if raw is None else self._sealer.open(raw, key)
        data = None if opened is None else json.loads(opened)
        return data if isinstance(data, dict) else None

    async def pointer(self, key: str, public_id: str) -> dict[str, str] | None:
        """The {hash, person} a public id's pointer record holds (None for an unknown or oversized id)."""
        if not public_id or len(public_id) > MAX_PUBLIC_ID:
            return None
        data = await self.get(key)
        if data is None or not isinstance(data.get("hash"), str) or not isinstance(data.get("person"), str):
            return None
        return {"hash": str(data["hash"]), "person": str(data["person"])}

    async def live_members(self, index: str, load: Callable[[str], Awaitable[T | None]]) -> list[T]:
        """The records a per-person index set names that still load; ids of ended ones leave the index."""
        found = []
        for public_id in await self._store.set_members(index):
            record = await load(public_id)
            if record is None:
                await self._store.set_remove(index, public_id)
            else:
                found.append(record)
        return found
