"""State shared by every replica: sessions, login state, single-use values, counters.

Values are strings (JSON where structured). Every key carries a TTL, so nothing grows without bound.
"""

from __future__ import annotations

from typing import Protocol


class StateStore(Protocol):
    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set key to value, replacing any previous value, expiring after ttl seconds."""

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        """Set key only if absent (SET NX). True when this call created it."""

    async def get(self, key: str) -> str | None: ...

    async def pop(self, key: str) -> str | None:
        """Atomically read and delete (GETDEL): of concurrent callers exactly one gets the value."""

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter and return it. The TTL starts when the counter is created (fixed window)."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve."""

    async def close(self) -> None: ...
