"""State shared by every replica: sessions, login state, single-use values, counters.

Values are strings (JSON where structured). Every key carries a TTL, so nothing grows without bound.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from broker.errors import StoreUnavailable
from broker.redis_pipe import PipeError, ReplyFailure
from broker.redis_urls import NO_OPTIONS, SCHEMES, RedisOptions, open_client, without_secrets


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

    async def incr_all(self, keys: Sequence[str], ttl: float) -> list[int]:
        """incr() of each key, in one round trip to a shared store: the counts, in the order of the keys."""

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        """Add member to the set at key (an index, e.g. a person's CLI sessions). The set lives at least ttl
        seconds from now: its expiry is extended, never shortened, so it outlives every member added."""

    async def set_members(self, key: str) -> set[str]:
        """The members of the set at key (empty when absent or expired)."""

    async def set_remove(self, key: str, member: str) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve."""

    async def close(self) -> None: ...


class MemoryStore:
    """One process's store (the embedded default). Only writes can grow it, so writes drive a sweep of
    expired keys: memory stays bounded by what is live."""

    SWEEP_EVERY = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # Counters stay ints (get() hands out their text, as Redis would): no str/int round trip per count.
        self._data: dict[str, tuple[str | int | frozenset[str], float]] = {}
        self._clock = clock
        self._writes = 0
        self._sweep_at = self.SWEEP_EVERY

    def __repr__(self) -> str:
        return f"MemoryStore(keys={len(self._data)})"

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> str | int | frozenset[str] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        return item[0]

    def _write(self, key: str, value: str | int | frozenset[str], ttl: float) -> None:
        self._data[key] = (value, self._clock() + ttl)
        self._writes += 1
        if self._writes >= self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        for stale in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[stale]
        # Wait for as many writes as there are survivors: a full scan then costs O(1) per write however many
        # keys are live, and at most twice the live keys (plus SWEEP_EVERY) are ever held.
        self._writes = 0
        self._sweep_at = max(self.SWEEP_EVERY, len(self._data))

    # No awaits inside these methods: each runs atomically on the event loop.
    async def put(self, key: str, value: str, ttl: float) -> None:
        self._write(key, value, ttl)

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._write(key, value, ttl)
        return True

    async def get(self, key: str) -> str | None:
        value = self._live(key)
        return None if value is None else str(value)

    async def pop(self, key: str) -> str | None:
        value = self._live(key)
        self._data.pop(key, None)
        return None if value is None else str(value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        return self._incr(key, ttl)

    async def incr_all(self, keys: Sequence[str], ttl: float) -> list[int]:
        return [self._incr(key, ttl) for key in keys]

    def _incr(self, key: str, ttl: float) -> int:
        item = self._data.get(key)
        if item is None or item[1] <= self._clock():  # absent or expired: a new window
            self._write(key, 1, ttl)
            return 1
        if isinstance(item[0], frozenset):  # Redis answers WRONGTYPE: so does this store
            raise StoreUnavailable(f"INCR on a set at {key.split(':', 1)[0]}:*")
        count = int(item[0]) + 1  # a value put() as text counts on from it, as Redis INCR does
        self._data[key] = (count, item[1])  # keep the window's original expiry
        return count

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        now = self._clock()
        item = self._data.get(key)
        members, expires = frozenset[str](), now + ttl
        if item is not None and item[1] > now and isinstance(item[0], frozenset):
            members, expires = item[0], max(item[1], expires)
        self._write(key, members | {member}, expires - now)

    async def set_members(self, key: str) -> set[str]:
        value = self._live(key)
        return set(value) if isinstance(value, frozenset) else set()

    async def set_remove(self, key: str, member: str) -> None:
        item = self._data.get(key)
        if item is not None and isinstance(item[0], frozenset):
            self._data[key] = (item[0] - {member}, item[1])  # an empty set stays until it expires, as harmless

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


# KEYS: counters; ARGV[1] ttl in ms. A TTL is set only by the increment that creates its key, atomically
# with it (a counter without one would never expire).
_INCR_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  counts[i] = n
end
return counts
"""
# KEYS[1]: a set; ARGV[1] the member, ARGV[2] the ttl in ms: SADD, and the expiry moved later, never earlier
# (PTTL is -1 for a key without one, -2 for a new key: both are below any ttl), atomically.
_SET_ADD_SCRIPT = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
_INCR_SHA = hashlib.sha1(_INCR_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


_without_secrets = without_secrets


class RedisStore:
    """Shared by every replica. Single-use values use GETDEL and SET NX, so a replay loses on any replica.

    Commands are pipelined (broker.redis_pipe): concurrent callers share connections instead of each taking
    one from a pool, so one or two connections carry a process's load, and a burst queues on a socket
    rather than waits for a free connection. max_connections caps how many are opened (a new one only when
    every open one has a deep queue of unanswered commands).

    The URL picks one node, a cluster (commands routed by key slot) or Sentinel (broker.redis_urls). A
    command's first key routes it; multi-key scripts go once per slot their keys fall in.
    """

    def __init__(self, url: str, *, prefix: str = "sts-broker:", timeout: float = 2.0,
                 max_connections: int = 64, options: RedisOptions = NO_OPTIONS) -> None:
        self._where = _without_secrets(url)
        try:
            self._client = open_client(url, options, timeout=timeout, max_connections=max_connections)
        except (ValueError, OSError) as exc:  # names parameters or files only; add where, never the URL itself
            raise ValueError(f"{exc} ({self._where})") from None
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"  # never the password

    async def _do(self, op: str, key: str, *args: str | int) -> Any:
        """args: a command whose first argument after the name is the key (SET name ..., GET name)."""
        try:
            return await self._client.call(str(args[1]), *args)
        except PipeError as exc:
            raise self._unavailable(op, key, exc) from None

    def _unavailable(self, op: str, key: str, exc: PipeError) -> StoreUnavailable:
        kind = key.split(":", 1)[0]
        return StoreUnavailable(f"redis {op} on {kind}:* at {self._where}: {exc}")

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._do("SET", key, "SET", self._prefix + key, value, "PX", _ms(ttl))

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        created = await self._do("SET NX", key, "SET", self._prefix + key, value, "PX", _ms(ttl), "NX")
        return created is not None  # OK when set, nil when the key was there

    async def get(self, key: str) -> str | None:
        value: str | None = await self._do("GET", key, "GET", self._prefix + key)
        return value

    async def pop(self, key: str) -> str | None:
        value: str | None = await self._do("GETDEL", key, "GETDEL", self._prefix + key)
        return value

    async def delete(self, key: str) -> None:
        await self._do("DEL", key, "DEL", self._prefix + key)

    async def incr(self, key: str, ttl: float) -> int:
        return (await self.incr_all([key], ttl))[0]

    async def incr_all(self, keys: Sequence[str], ttl: float) -> list[int]:
        names, ms = [self._prefix + key for key in keys], _ms(ttl)
        groups = self._client.slot_groups(names)
        if len(groups) <= 1:
            return await self._incr(names, keys[0] if keys else "", ms)
        # A cluster: one script per slot, all in flight at once. Each count stays atomic; the keys of one
        # call need not be (a client and a subject counter are independent limits).
        parts = await self._incr_per_slot([[names[i] for i in group] for group in groups], keys[0], ms)
        counts = [0] * len(keys)
        for group, part in zip(groups, parts, strict=True):
            for index, count in zip(group, part, strict=True):
                counts[index] = count
        return counts

    async def _incr_per_slot(self, groups: list[list[str]], first: str, ms: int) -> list[list[int]]:
        commands: list[tuple[str, tuple[str | int, ...]]] = [
            (names[0], ("EVALSHA", _INCR_SHA, len(names), *names, ms)) for names in groups]
        replies = await self._client.call_many(commands)
        counts = []
        for names, reply in zip(groups, replies, strict=True):
            if isinstance(reply, ReplyFailure) and reply.code == "NOSCRIPT":  # that script did not run: EVAL it
                counts.append(await self._incr(names, first, ms))
            elif isinstance(reply, BaseException):
                raise self._unavailable("INCR", first, reply if isinstance(reply, PipeError) else PipeError(
                    type(reply).__name__)) from None
            else:
                counts.append([int(count) for count in reply])
        return counts

    async def _incr(self, names: list[str], first: str, ms: int) -> list[int]:
        route = names[0] if names else None
        try:
            counts = await self._client.call(route, "EVALSHA", _INCR_SHA, len(names), *names, ms)
        except ReplyFailure as exc:
            if exc.code != "NOSCRIPT":
                raise self._unavailable("INCR", first, exc) from None
            # Redis restarted or its script cache was flushed. The script did not run, so this is no retry.
            try:
                counts = await self._client.call(route, "EVAL", _INCR_SCRIPT, len(names), *names, ms)
            except PipeError as again:
                raise self._unavailable("INCR", first, again) from None
        except PipeError as exc:
            raise self._unavailable("INCR", first, exc) from None
        return [int(count) for count in counts]

    async def set_add(self, key: str, member: str, ttl: float) -> None:
        # EVAL, not EVALSHA: indexes change at logins and revocations, far from the hot path.
        name = self._prefix + key
        try:
            await self._client.call(name, "EVAL", _SET_ADD_SCRIPT, 1, name, member, _ms(ttl))
        except PipeError as exc:
            raise self._unavailable("SADD", key, exc) from None

    async def set_members(self, key: str) -> set[str]:
        members: list[str] = await self._do("SMEMBERS", key, "SMEMBERS", self._prefix + key)
        return set(members)

    async def set_remove(self, key: str, member: str) -> None:
        await self._do("SREM", key, "SREM", self._prefix + key, member)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except PipeError as exc:
            raise self._unavailable("PING", "ping", exc) from None

    async def close(self) -> None:
        await self._client.close()


def open_store(url: str, *, prefix: str = "sts-broker:", max_connections: int = 64,
               options: RedisOptions = NO_OPTIONS) -> StateStore:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryStore()
    if scheme in SCHEMES:
        return RedisStore(url, prefix=prefix, max_connections=max_connections, options=options)
    raise ValueError(f"store url scheme {scheme!r} is not one of memory, {', '.join(SCHEMES)}")
