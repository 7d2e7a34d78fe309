"""The Redis store in cluster mode: its cost per command on a local three-primary cluster, against the same
store on one node (the budget: bench.store_redis's figures) and against redis-py's asyncio RedisCluster
doing the same work, in the same run, under uvloop.

    python -m bench.store_redis_cluster        (make bench runs it; redis-server and redis-cli must be installed)

GET, the counter's script on one key (INCR) and on two keys in different slots (INCR2: a client and a subject
counter, as a token exchange counts them), each by CONCURRENCY coroutines; figures as in bench.store_redis
(this process's CPU microseconds per command, commands per second; best of ROUNDS interleaved rounds).
Failed commands are counted, not hidden. Loopback only; every wait bounded in count and time.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from bench.store_redis import _INCR_SCRIPT, CONCURRENCY, KEYS, Figures, warm_and_measure
from broker.devstack.redis_server import running_redis
from broker.devstack.redis_topologies import running_cluster
from broker.errors import StoreUnavailable
from broker.store import _INCR_SCRIPT as _INCR_ALL_SCRIPT
from broker.store import RedisStore, _ms

Op = Callable[[int], Awaitable[object]]


class RedisPyClusterStore:
    """The same work through redis-py's cluster client (its slot routing, MOVED/ASK handling, node pools). Its
    pools refuse (MaxConnectionsError) rather than wait past max_connections: one per caller, as it needs."""

    def __init__(self, url: str, prefix: str) -> None:
        host, port = url.removeprefix("redis+cluster://").split(",")[0].split(":")
        self._redis: RedisCluster = RedisCluster(host=host, port=int(port), decode_responses=True,
                                                 socket_timeout=2.0, max_connections=2 * CONCURRENCY)
        self._prefix = prefix
        self._incr = self._redis.register_script(_INCR_SCRIPT)

    async def _do(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def get(self, key: str) -> str | None:
        value: str | None = await self._do(self._redis.get(self._prefix + key))
        return value

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._do(self._redis.set(self._prefix + key, value, px=_ms(ttl)))

    async def incr(self, key: str, ttl: float) -> int:
        return int(await self._do(self._incr(keys=[self._prefix + key], args=[_ms(ttl)])))

    async def incr_all(self, keys: list[str], ttl: float) -> list[int]:
        # Keys in different slots: one script per key, concurrently (redis-py refuses CROSSSLOT scripts).
        counts = await asyncio.gather(*(self._do(self._redis.eval(_INCR_ALL_SCRIPT, 1, self._prefix + key,
                                                                  _ms(ttl))) for key in keys))
        return [int(c[0]) for c in counts]

    async def close(self) -> None:
        await self._redis.aclose()


def _ops(store: RedisStore | RedisPyClusterStore) -> dict[str, Op]:
    return {"GET": lambda i: store.get(f"session:{i % KEYS}"),
            "INCR": lambda i: store.incr(f"rate:{i % KEYS}", 3600.0),
            "INCR2": lambda i: store.incr_all([f"rate:c{i % KEYS}", f"rate:s{i % KEYS}"], 3600.0)}


async def measure(cluster_url: str, single_url: str) -> dict[str, dict[str, Figures]]:
    stores: dict[str, RedisStore | RedisPyClusterStore] = {
        "one node": RedisStore(single_url, prefix="bench:"), "cluster": RedisStore(cluster_url, prefix="bench:"),
        "redis-py cluster": RedisPyClusterStore(cluster_url, prefix="bench:")}
    results = {op: {name: Figures() for name in stores} for op in ("GET", "INCR", "INCR2")}
    for store in stores.values():  # data in place in each
        await asyncio.gather(*(store.put(f"session:{i}", "v" * 200, 3600.0) for i in range(KEYS)))
    await warm_and_measure(stores, _ops, results)
    return results


def main() -> int:
    with running_cluster() as cluster, running_redis() as single, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(measure(cluster.url, single.url))
    print(f"Redis store in cluster mode (3 primaries), {CONCURRENCY} concurrent coroutines, uvloop; CPU us per "
          "command (lower is better)")
    print(f"{'op':<7}{'one node us':>12}{'cluster us':>12}{'redis-py us':>13}{'cluster/one':>13}"
          f"{'redis-py/cluster':>18}{'cluster/s':>11}{'errors':>10}")
    for op, by in results.items():
        one, ours, base = by["one node"], by["cluster"], by["redis-py cluster"]
        print(f"{op:<7}{one.cpu_us:>12.1f}{ours.cpu_us:>12.1f}{base.cpu_us:>13.1f}{ours.cpu_us / one.cpu_us:>12.2f}x"
              f"{base.cpu_us / ours.cpu_us:>17.1f}x{ours.per_second:>11.0f}{ours.errors:>5}/{base.errors:<4}")
    return 1 if any(by["cluster"].errors for by in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
