"""The Redis store's cost per command: the pipelining RedisStore against the redis-py client it replaced, in
the same run, on the same private redis-server, under uvloop (as `sts-broker serve` runs).

    python -m bench.store_redis            (make bench runs it; redis-server must be installed)

For GET and for the counter's script (EVALSHA), CONCURRENCY coroutines each run their share of COMMANDS
against one store. Figures: this process's CPU microseconds per command (the redis-server is another
process, so its work is not counted) and commands per second of wall time; best of ROUNDS interleaved
rounds. Failed commands are counted, not hidden. Loopback only; every wait bounded in count and time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio
import uvloop
from redis.exceptions import RedisError

from broker.devstack.redis_server import running_redis
from broker.errors import StoreUnavailable
from broker.store import RedisStore, _ms, _without_secrets

# The counter script as the replaced store ran it (one key).
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

CONCURRENCY = 200
COMMANDS = 20_000  # per round, per operation and store
ROUNDS = 3
MAX_SECONDS = 60.0
KEYS = 1000


class BaselineStore:
    """The store as it was before the pipelining client (redis-py 8.1 asyncio, blocking pool), kept here
    verbatim in what it does so the comparison stays honest."""

    def __init__(self, url: str, *, prefix: str = "sts-broker:", timeout: float = 2.0,
                 max_connections: int = 64) -> None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, decode_responses=True)
        self._redis = redis.asyncio.Redis.from_pool(pool)
        self._prefix = prefix
        self._incr = self._redis.register_script(_INCR_SCRIPT)
        self._where = _without_secrets(url)

    async def _do(self, op: str, key: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except RedisError as exc:
            kind = key.split(":", 1)[0]
            raise StoreUnavailable(f"redis {op} on {kind}:* at {self._where}: {type(exc).__name__}") from None

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._do("SET", key, self._redis.set(self._prefix + key, value, px=_ms(ttl)))

    async def get(self, key: str) -> str | None:
        value: str | None = await self._do("GET", key, self._redis.get(self._prefix + key))
        return value

    async def incr(self, key: str, ttl: float) -> int:
        count = await self._do("INCR", key, self._incr(keys=[self._prefix + key], args=[_ms(ttl)]))
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


class Store(Protocol):
    async def put(self, key: str, value: str, ttl: float) -> None: ...
    async def get(self, key: str) -> str | None: ...
    async def incr(self, key: str, ttl: float) -> int: ...
    async def close(self) -> None: ...


@dataclass
class Figures:
    cpu_us: float = float("inf")  # per command, best round
    per_second: float = 0.0
    errors: int = 0

    def add(self, cpu: float, wall: float, errors: int) -> None:
        self.cpu_us = min(self.cpu_us, cpu / COMMANDS * 1e6)
        self.per_second = max(self.per_second, COMMANDS / wall)
        self.errors += errors


async def _round(op: Callable[[int], Awaitable[object]]) -> tuple[float, float, int]:
    share = COMMANDS // CONCURRENCY
    errors = 0

    async def worker(w: int) -> None:
        nonlocal errors
        for i in range(share):
            try:
                await op(w * share + i)
            except StoreUnavailable:
                errors += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return time.process_time() - cpu, time.perf_counter() - wall, errors


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


async def warm_and_measure(stores: dict[str, S], ops_of: Callable[[S], dict[str, Callable[[int], Awaitable[object]]]],
                           results: dict[str, dict[str, Figures]]) -> None:
    """Each store warmed (connections open, scripts cached), then ROUNDS rounds (within MAX_SECONDS) of every
    store's ops in turn, so a busy neighbour hurts each alike; figures into results[op][store]; every store
    closed after."""
    try:
        for store in stores.values():
            for op in ops_of(store).values():
                await asyncio.gather(*(op(i) for i in range(CONCURRENCY)))
        deadline = time.monotonic() + MAX_SECONDS
        for _ in range(ROUNDS):
            for name, store in stores.items():
                for op_name, op in ops_of(store).items():
                    results[op_name][name].add(*await _round(op))
            if time.monotonic() > deadline:
                break
    finally:
        for store in stores.values():
            await store.close()


def _ops(store: Store) -> dict[str, Callable[[int], Awaitable[object]]]:
    return {"GET": lambda i: store.get(f"session:{i % KEYS}"),
            "INCR": lambda i: store.incr(f"rate:{i % KEYS}", 3600.0)}


async def measure(url: str) -> dict[str, dict[str, Figures]]:
    stores: dict[str, Store] = {"pipelined": RedisStore(url, prefix="bench:"),
                                "redis-py": BaselineStore(url, prefix="bench:")}
    results = {op: {name: Figures() for name in stores} for op in ("GET", "INCR")}
    first = stores["pipelined"]
    await asyncio.gather(*(first.put(f"session:{i}", "v" * 200, 3600.0) for i in range(KEYS)))
    await warm_and_measure(stores, _ops, results)
    return results


def main() -> int:
    with running_redis() as redis_server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(measure(redis_server.url))
    print(f"Redis store, {CONCURRENCY} concurrent coroutines, uvloop; CPU us per command (lower is better)")
    print(f"{'op':<6}{'pipelined us':>14}{'redis-py us':>13}{'cpu ratio':>11}{'pipelined/s':>13}"
          f"{'redis-py/s':>12}{'errors':>14}")
    for op, by_store in results.items():
        ours, base = by_store["pipelined"], by_store["redis-py"]
        print(f"{op:<6}{ours.cpu_us:>14.1f}{base.cpu_us:>13.1f}{base.cpu_us / ours.cpu_us:>10.1f}x"
              f"{ours.per_second:>13.0f}{base.per_second:>12.0f}{ours.errors:>7}/{base.errors:<6}")
    return 1 if any(by_store["pipelined"].errors for by_store in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
