"""A shared state store with every operation timed and its failures counted (broker/telemetry.py), whatever the
store's kind (one Redis node, a cluster, Sentinel): the measuring stays out of the stores themselves."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from broker.store import MemoryStore, StateStore
from broker.telemetry import store_op

T = TypeVar("T")


class MeasuredStore:
    def __init__(self, inner: StateStore) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"Measured({self.inner!r})"

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except Exception as exc:
            store_op(operation, time.perf_counter() - started, exc)
            raise
        store_op(operation, time.perf_counter() - started)
        return result

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._timed("put", self.inner.put(key, value, ttl))

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        return await self._timed("put_new", self.inner.put_new(key, value, ttl))

    async def get(self, key: str) -> str | None:
        return await self._timed("get", self.inner.get(key))

    async def pop(self, key: str) -> str | None:
        return await self._timed("pop", self.inner.pop(key))

    async def delete(self, key: str) -> None:
        await self._timed("delete", self.inner.delete(key))

    async def incr(self, key: str, ttl: float) -> int:
        return await self._timed("incr", self.inner.incr(key, ttl))

    async def incr_all(self, keys: Sequence[str], ttl: float) -> list[int]:
        return await self._timed("incr_all", self.inner.incr_all(keys, ttl))

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        await self._timed("set_add", self.inner.set_add(key, member, ttl))

    async def set_members(self, key: str) -> set[str]:
        return await self._timed("set_members", self.inner.set_members(key))

    async def set_remove(self, key: str, member: str) -> None:
        await self._timed("set_remove", self.inner.set_remove(key, member))

    async def ping(self) -> None:
        await self._timed("ping", self.inner.ping())

    async def close(self) -> None:
        await self.inner.close()


def measured(store: StateStore) -> StateStore:
    """A networked store, measured; the in-process store as it is (nothing to measure but dict lookups, and it
    is the hot path of the benchmarks)."""
    return store if isinstance(store, MemoryStore) else MeasuredStore(store)
