"""One conformance suite for every StateStore: the memory store and Redis must behave the same, because a
deployment moves from one to the other by changing a URL. Redis runs as a private redis-server."""

from __future__ import annotations

import asyncio
import socket
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio

from broker.devstack.redis_server import RedisServer, running_redis
from broker.devstack.redis_topologies import RedisCluster, SentinelSetup, running_cluster, running_sentinel
from broker.devstack.servers import free_port
from broker.errors import StoreUnavailable
from broker.store import MemoryStore, RedisStore, StateStore, open_store

pytestmark = pytest.mark.anyio

TTL = 0.2  # short enough to wait out, long enough to read the value back before it expires
LONG = 60.0
PASSWORD = "s3cretpw"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelSetup]:
    with running_sentinel() as setup:
        yield setup


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"  # tests share one server: a prefix each keeps them apart


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
async def store(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[StateStore]:
    # Servers are looked up lazily so `-k memory` runs without a redis-server.
    if request.param == "memory":
        made: StateStore = MemoryStore()
    elif request.param == "cluster":  # three primaries: a test's keys spread over them
        made = RedisStore(request.getfixturevalue("redis_cluster").url, prefix=prefix)
    elif request.param == "sentinel":
        made = RedisStore(request.getfixturevalue("redis_sentinel").url, prefix=prefix)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=prefix)
    try:
        yield made
    finally:
        await made.close()


async def wait_out(ttl: float) -> None:
    await asyncio.sleep(ttl + 0.1)


# Conformance: every implementation.


async def test_put_then_get(store: StateStore) -> None:
    await store.put("session:a", '{"sub": "alice"}', LONG)
    assert await store.get("session:a") == '{"sub": "alice"}'
    assert await store.get("session:missing") is None


async def test_put_overwrites(store: StateStore) -> None:
    await store.put("session:a", "one", LONG)
    await store.put("session:a", "two", LONG)
    assert await store.get("session:a") == "two"


async def test_keys_are_independent(store: StateStore) -> None:
    await store.put("a", "1", LONG)
    await store.put("b", "2", LONG)
    await store.delete("a")
    assert (await store.get("a"), await store.get("b")) == (None, "2")


async def test_put_expires_after_ttl(store: StateStore) -> None:
    await store.put("session:a", "v", TTL)
    assert await store.get("session:a") == "v"
    await wait_out(TTL)
    assert await store.get("session:a") is None


async def test_put_new_only_while_absent(store: StateStore) -> None:
    assert await store.put_new("replay:x", "first", TTL) is True
    assert await store.put_new("replay:x", "second", TTL) is False
    assert await store.get("replay:x") == "first"
    await wait_out(TTL)
    assert await store.put_new("replay:x", "third", TTL) is True
    assert await store.get("replay:x") == "third"


async def test_put_new_has_one_winner_under_concurrency(store: StateStore) -> None:
    results = await asyncio.gather(*(store.put_new("replay:x", str(i), LONG) for i in range(50)))
    assert results.count(True) == 1


async def test_pop_returns_value_once(store: StateStore) -> None:
    await store.put("login:s", "pending", LONG)
    assert await store.pop("login:s") == "pending"
    assert await store.pop("login:s") is None
    assert await store.get("login:s") is None


async def test_pop_of_expired_or_missing_is_none(store: StateStore) -> None:
    await store.put("login:s", "pending", TTL)
    await wait_out(TTL)
    assert await store.pop("login:s") is None
    assert await store.pop("login:never") is None


async def test_pop_has_one_winner_under_concurrency(store: StateStore) -> None:
    await asyncio.gather(*(store.get("warm-up") for _ in range(50)))  # open connections first: real overlap
    for n in range(5):
        await store.put(f"login:{n}", "pending", LONG)
        results = await asyncio.gather(*(store.pop(f"login:{n}") for _ in range(50)))
        assert [r for r in results if r is not None] == ["pending"]


async def test_delete(store: StateStore) -> None:
    await store.put("session:a", "v", LONG)
    await store.delete("session:a")
    assert await store.get("session:a") is None
    await store.delete("session:a")  # deleting what is gone is not an error


async def test_incr_counts_up(store: StateStore) -> None:
    assert [await store.incr("rate:ip", LONG) for _ in range(3)] == [1, 2, 3]
    assert await store.incr("rate:other", LONG) == 1


async def test_a_counter_reads_back_as_text_and_a_text_number_counts_on(store: StateStore) -> None:
    # The token exchange reads a subject's count with get(): the same text from every store.
    await store.incr_all(["rate:read", "rate:read"], LONG)
    assert await store.get("rate:read") == "2"
    assert await store.pop("rate:read") == "2"
    await store.put("rate:text", "41", LONG)
    assert await store.incr("rate:text", LONG) == 42
    assert await store.get("rate:text") == "42"


async def test_incr_window_is_fixed_not_extended(store: StateStore) -> None:
    window = 0.4
    start = time.monotonic()
    assert await store.incr("rate:ip", window) == 1
    await asyncio.sleep(0.2)
    assert await store.incr("rate:ip", window) == 2  # had this restarted the window, it would end at 0.6 s
    await asyncio.sleep(max(0.0, start + 0.5 - time.monotonic()))
    assert await store.incr("rate:ip", window) == 1


async def test_incr_all_counts_each_key_as_incr_does(store: StateStore) -> None:
    assert await store.incr("rate:a", LONG) == 1
    assert await store.incr_all(["rate:a", "rate:b"], LONG) == [2, 1]
    assert await store.incr_all(["rate:b", "rate:a"], LONG) == [2, 3]  # in the order asked
    assert await store.incr("rate:b", LONG) == 3


async def test_incr_all_windows_are_fixed_per_key(store: StateStore) -> None:
    window = 0.4
    start = time.monotonic()
    assert await store.incr_all(["rate:old"], window) == [1]
    await asyncio.sleep(0.25)
    assert await store.incr_all(["rate:old", "rate:new"], window) == [2, 1]  # rate:new's window starts now
    await asyncio.sleep(max(0.0, start + 0.5 - time.monotonic()))
    assert await store.incr_all(["rate:old", "rate:new"], window) == [1, 2]


async def test_incr_all_is_atomic_per_key_under_concurrency(store: StateStore) -> None:
    await asyncio.gather(*(store.incr_all(["rate:x", "rate:y"], LONG) for _ in range(200)))
    assert await store.incr_all(["rate:x", "rate:y"], LONG) == [201, 201]


async def test_set_add_members_remove(store: StateStore) -> None:
    assert await store.set_members("index:a") == set()
    await store.set_add("index:a", "s1", LONG)
    await store.set_add("index:a", "s2", LONG)
    await store.set_add("index:a", "s1", LONG)  # a set: adding twice keeps one
    await store.set_add("index:b", "other", LONG)
    assert await store.set_members("index:a") == {"s1", "s2"}
    await store.set_remove("index:a", "s1")
    await store.set_remove("index:a", "never-added")
    assert await store.set_members("index:a") == {"s2"}
    assert await store.set_members("index:b") == {"other"}


async def test_set_expires_after_its_longest_ttl(store: StateStore) -> None:
    await store.set_add("index:t", "long", TTL * 3)
    await store.set_add("index:t", "short", TTL)  # a shorter ttl never shortens the set's life
    await wait_out(TTL)
    assert await store.set_members("index:t") == {"long", "short"}
    await wait_out(TTL * 2)
    assert await store.set_members("index:t") == set()


async def test_set_add_extends_the_expiry(store: StateStore) -> None:
    await store.set_add("index:e", "first", TTL)
    await store.set_add("index:e", "second", TTL * 3)
    await wait_out(TTL)
    assert await store.set_members("index:e") == {"first", "second"}


async def test_set_add_has_no_lost_update_under_concurrency(store: StateStore) -> None:
    await asyncio.gather(*(store.set_add("index:c", f"m{i}", LONG) for i in range(50)))
    assert await store.set_members("index:c") == {f"m{i}" for i in range(50)}


async def test_ping(store: StateStore) -> None:
    await store.ping()


# Redis only: several connections (as several replicas have), TTLs on the server, failure.


async def test_redis_pop_has_one_winner_across_connections(redis_server: RedisServer, prefix: str) -> None:
    first, second = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    try:
        await asyncio.gather(*(s.get("warm-up") for _ in range(25) for s in (first, second)))
        await first.put("login:s", "pending", LONG)
        results = await asyncio.gather(*(s.pop("login:s") for _ in range(25) for s in (first, second)))
        assert [r for r in results if r is not None] == ["pending"]
        claims = await asyncio.gather(*(s.put_new("replay:x", "v", LONG) for _ in range(25) for s in (first, second)))
        assert claims.count(True) == 1
    finally:
        await first.close()
        await second.close()


async def test_redis_serves_more_concurrent_calls_than_connections(redis_server: RedisServer, prefix: str) -> None:
    """A burst bigger than the pool waits for connections instead of failing (redis-py's default pool
    raised MaxConnectionsError past 100 in flight: 503s under load)."""
    store = RedisStore(redis_server.url, prefix=prefix, max_connections=4)
    try:
        counts = await asyncio.gather(*(store.incr("rate:burst", LONG) for _ in range(300)))
        assert sorted(counts) == list(range(1, 301))
    finally:
        await store.close()


async def test_redis_sets_ttl_in_ms_once_per_counter(redis_server: RedisServer, prefix: str) -> None:
    store = RedisStore(redis_server.url, prefix=prefix)
    raw = redis.asyncio.from_url(redis_server.url)
    try:
        await store.put("session:a", "v", 0.75)
        assert 0 < await raw.pttl(prefix + "session:a") <= 750
        await store.incr("rate:ip", 10)
        await asyncio.sleep(0.2)
        await store.incr("rate:ip", 10)
        assert 0 < await raw.pttl(prefix + "rate:ip") <= 9_800
        await store.incr_all(["rate:ip", "rate:subject"], 10)  # one round trip, the same rule per key
        assert 0 < await raw.pttl(prefix + "rate:ip") <= 9_800
        assert 9_800 < await raw.pttl(prefix + "rate:subject") <= 10_000
    finally:
        await store.close()
        await raw.aclose()


async def test_redis_prefixes_keep_deployments_apart(redis_server: RedisServer, prefix: str) -> None:
    ours, theirs = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix + "b:")
    try:
        await ours.put("session:a", "ours", LONG)
        assert await theirs.get("session:a") is None
    finally:
        await ours.close()
        await theirs.close()


OPERATIONS: dict[str, Callable[[StateStore], Awaitable[object]]] = {
    "get": lambda s: s.get("login:abc"),
    "put": lambda s: s.put("login:abc", "value-xyz", LONG),
    "put_new": lambda s: s.put_new("login:abc", "value-xyz", LONG),
    "pop": lambda s: s.pop("login:abc"),
    "delete": lambda s: s.delete("login:abc"),
    "incr": lambda s: s.incr("rate:abc", LONG),
    "ping": lambda s: s.ping(),
}


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_redis_down_is_store_unavailable_without_secrets(operation: str) -> None:
    store = RedisStore(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0?password={PASSWORD}")
    start = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await OPERATIONS[operation](store)
    finally:
        await store.close()
    assert time.monotonic() - start < 3.0  # within the 2 s socket timeout, no retry storm
    shown = [str(caught.value), repr(caught.value), caught.value.detail, repr(store),
             "".join(traceback.format_exception(caught.value))]
    assert not [text for text in shown if PASSWORD in text]
    assert "value-xyz" not in str(caught.value) and "abc" not in str(caught.value)


async def test_redis_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, then says nothing
        store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.3)
        start = time.monotonic()
        try:
            with pytest.raises(StoreUnavailable):
                await store.get("session:a")
        finally:
            await store.close()
        assert time.monotonic() - start < 2.0


# open_store and the memory store's own bound.


async def test_open_store_memory() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "rediss://cache.example:6380/1", "unix:///run/r.sock"])
async def test_open_store_redis_schemes(url: str) -> None:
    store = open_store(url)  # connects lazily, so nothing needs to listen here
    assert isinstance(store, RedisStore)
    await store.close()


async def test_open_store_over_unix_socket(redis_server: RedisServer, prefix: str) -> None:
    store = open_store(redis_server.unix_url, prefix=prefix)
    try:
        await store.put("session:a", "v", LONG)
        assert await store.get("session:a") == "v"
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["", "localhost:6379", "memcached://h:11211", f"postgres://u:{PASSWORD}@db/0"])
async def test_open_store_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="scheme") as caught:
        open_store(url)
    assert PASSWORD not in str(caught.value)


async def test_memory_store_sweeps_expired_keys() -> None:
    store = MemoryStore()
    for i in range(10_000):
        await store.put(f"replay:{i}", "v", 0.05)
    assert len(store) > 1_000
    await asyncio.sleep(0.1)
    for _ in range(10_000):  # never reads the expired keys: only the sweep can drop them
        await store.put("session:live", "v", LONG)
    assert len(store) == 1


async def test_memory_store_stays_bounded_under_churn() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    peak = 0
    for i in range(50_000):
        now[0] += 1.0
        await store.put(f"replay:{i}", "v", 1.5)  # at most two keys are ever live
        peak = max(peak, len(store))
    assert peak <= MemoryStore.SWEEP_EVERY + 2
