"""The Redis store on a real local cluster (three primaries, made by `redis-cli --cluster create`): key slots
as Redis computes them, a slot moved under the store (MOVED), a slot half migrated (ASK, TRYAGAIN), a failover
to a replica, and multi-key counters whose keys fall in different slots. The store conformance suite runs on
a cluster too (tests/test_store.py, the `cluster` parameter)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import hiredis
import pytest
import redis

from broker.devstack.redis_topologies import (
    RedisCluster,
    finish_migration,
    running_cluster,
    slot_owner,
    start_migration,
)
from broker.errors import StoreUnavailable
from broker.redis_cluster import MAX_ATTEMPTS, RETRY_PAUSE, key_slot, slot_groups
from broker.store import RedisStore

pytestmark = pytest.mark.anyio

LONG = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with running_cluster() as made:
        yield made


@pytest.fixture
def prefix() -> str:
    return f"cl-{uuid.uuid4().hex}:"


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:12]  # a hash tag of its own per test: the slot it moves is no other test's


@pytest.fixture
async def store(cluster: RedisCluster, prefix: str) -> AsyncIterator[RedisStore]:
    made = RedisStore(cluster.url, prefix=prefix)
    try:
        yield made
    finally:
        await made.close()


def rejected(port: int, command: str) -> int:
    """Commands the node refused (MOVED, ASK, TRYAGAIN count here): proof of where a command went."""
    with redis.Redis(port=port, decode_responses=True) as node:
        stats = node.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("rejected_calls", 0))


def other_primary(cluster: RedisCluster, port: int) -> int:
    primaries = {slot_owner(cluster, slot) for slot in (0, 8000, 16383)}
    return next(p for p in sorted(primaries) if p != port)


@pytest.mark.parametrize("key", ["", "a", "session:abc", "{user1000}.following", "{user1000}.followers",
                                 "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}{", "a{b}", "é{ü}x"])
def test_key_slot_is_the_clusters(cluster: RedisCluster, key: str) -> None:
    with cluster.client(cluster.ports[0]) as node:
        assert key_slot(key) == node.execute_command("CLUSTER", "KEYSLOT", key)


def test_keys_with_one_hash_tag_group_together() -> None:
    assert slot_groups(["rate:{t}:a", "x", "rate:{t}:b"]) == [[0, 2], [1]]
    assert key_slot("rate:{t}:a") == key_slot("{t}") == key_slot("t")


async def test_counters_in_different_slots_count_in_one_call(store: RedisStore, prefix: str) -> None:
    keys = [f"rate:k{i}" for i in range(12)]
    assert len(slot_groups([prefix + k for k in keys])) > 3  # spread over slots (and nodes)
    assert await store.incr_all(keys, LONG) == [1] * 12
    assert await store.incr_all([*keys[:3], keys[0]], LONG) == [2, 2, 2, 3]


async def test_a_moved_slot_is_followed_and_remembered(cluster: RedisCluster, store: RedisStore, prefix: str,
                                                       tag: str) -> None:
    key = f"session:{{{tag}}}:a"
    await store.put(key, "v", LONG)  # the store now has the slot map
    slot = key_slot(prefix + key)
    source = slot_owner(cluster, slot)
    target = other_primary(cluster, source)
    start_migration(source, target, slot, [])
    finish_migration(cluster, source, target, slot)
    before = rejected(source, "get")
    assert await store.get(key) == "v"
    assert rejected(source, "get") == before + 1  # one MOVED, followed
    assert await store.get(key) == "v"
    assert await store.incr(f"rate:{{{tag}}}", LONG) == 1
    assert rejected(source, "get") == before + 1  # then straight to the new owner
    assert slot_owner(cluster, slot) == target


async def test_a_slot_being_migrated_is_asked_key_by_key(cluster: RedisCluster, store: RedisStore, prefix: str,
                                                         tag: str) -> None:
    moved, stays, new = (f"session:{{{tag}}}:{name}" for name in ("moved", "stays", "new"))
    await store.put(moved, "there", LONG)
    await store.put(stays, "here", LONG)
    slot = key_slot(prefix + moved)
    source = slot_owner(cluster, slot)
    target = other_primary(cluster, source)
    start_migration(source, target, slot, [prefix + moved])
    try:
        before = rejected(source, "get")
        assert await store.get(moved) == "there"  # ASK: ASKING + GET on the target
        assert await store.get(stays) == "here"  # still on the source
        assert await store.get(moved) == "there"
        assert rejected(source, "get") == before + 2  # the slot was not remapped by an ASK
        await store.put(new, "created", LONG)  # a new key goes where the slot is going
        with redis.Redis(port=target) as node:
            assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 2
    finally:
        finish_migration(cluster, source, target, slot)
    assert [await store.get(k) for k in (moved, stays, new)] == ["there", "here", "created"]


async def test_a_multi_key_script_over_a_split_slot_is_retried(cluster: RedisCluster, store: RedisStore, prefix: str,
                                                               tag: str) -> None:
    keys = [f"rate:{{{tag}}}:client", f"rate:{{{tag}}}:subject"]
    assert await store.incr_all(keys, LONG) == [1, 1]
    slot = key_slot(prefix + keys[0])
    source = slot_owner(cluster, slot)
    target = other_primary(cluster, source)
    start_migration(source, target, slot, [prefix + keys[0]])  # one key here, one there: TRYAGAIN
    before = rejected(source, "evalsha")

    async def finish_later() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(finish_migration, cluster, source, target, slot)

    counts, _ = await asyncio.gather(store.incr_all(keys, LONG), finish_later())
    assert counts == [2, 2]  # each counted once: TRYAGAIN means the script did not run
    assert rejected(source, "evalsha") >= before + 2  # TRYAGAIN at least once, then MOVED


async def test_a_cluster_nobody_answers_is_store_unavailable() -> None:
    store = RedisStore("redis+cluster://127.0.0.1:1,127.0.0.1:2", timeout=0.5)
    try:
        where = "at redis+cluster://127.0.0.1:1,127.0.0.1:2: connect failed"
        with pytest.raises(StoreUnavailable, match=re.escape(where)):
            await store.get("session:a")
    finally:
        await store.close()


@pytest.fixture(scope="module")
def replicated() -> Iterator[RedisCluster]:
    with running_cluster(3, 1) as made:
        yield made


def replica_of(cluster: RedisCluster, primary: int) -> int:
    with cluster.client(primary) as node:
        return int(node.execute_command("ROLE")[2][0][1])


async def until(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not within the bound"
        await asyncio.sleep(0.1)


async def test_a_failover_to_a_replica_is_followed(replicated: RedisCluster) -> None:
    store = RedisStore(replicated.url, prefix="fo:")
    try:
        await store.put("session:a", "before", LONG)
        slot = key_slot("fo:session:a")
        old = slot_owner(replicated, slot)
        replica = replica_of(replicated, old)
        with replicated.client(replica) as node:
            node.execute_command("CLUSTER", "FAILOVER")  # a manual failover: no write lost

        async def demoted() -> bool:  # until the old primary knows it is a replica now
            with replicated.client(old) as node:
                return bool(node.execute_command("ROLE")[0] == "slave")

        await until(demoted)
        assert await store.get("session:a") == "before"  # the old primary says MOVED now
        await store.put("session:a", "after", LONG)
        with replicated.client(replica) as node:
            assert node.get("fo:session:a") == "after"
    finally:
        await store.close()


async def test_a_crashed_primary_fails_fast_then_its_promoted_replica_serves(replicated: RedisCluster) -> None:
    store = RedisStore(replicated.url, prefix="crash:", timeout=0.5)
    try:
        await store.put("session:a", "kept", LONG)
        slot = key_slot("crash:session:a")
        old = slot_owner(replicated, slot)
        replica = replica_of(replicated, old)
        with replicated.client(old) as node:
            assert node.execute_command("WAIT", 1, 2000) == 1
            with contextlib.suppress(redis.ConnectionError):
                node.execute_command("SHUTDOWN", "NOSAVE")
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"connection lost|connect failed"):
            await store.get("session:a")  # a clear failure, at once, while the cluster decides
        assert time.monotonic() - start < 1.0

        async def served() -> bool:
            try:
                return await store.get("session:a") == "kept"
            except StoreUnavailable:
                return False

        await until(served)  # the cluster promotes the replica (node timeout 2 s); the map follows
        assert slot_owner(replicated, slot) == replica
        assert await store.incr("rate:after", LONG) == 1
    finally:
        await store.close()


async def test_a_node_without_the_script_counts_each_key_once(cluster: RedisCluster, store: RedisStore,
                                                              prefix: str) -> None:
    keys = [f"rate:n{i}" for i in range(9)]  # over every primary
    assert await store.incr_all(keys, LONG) == [1] * 9
    flushed = slot_owner(cluster, key_slot(prefix + keys[0]))
    with cluster.client(flushed) as node:
        node.execute_command("SCRIPT", "FLUSH")  # that node answers NOSCRIPT; the others run the script
    assert await store.incr_all(keys, LONG) == [2] * 9
    assert {slot_owner(cluster, key_slot(prefix + k)) for k in keys} == set(cluster.ports)


@asynccontextmanager
async def fake_node(answers: list[bytes]) -> AsyncIterator[tuple[str, list[str]]]:
    """One cluster node serving every slot, answering GETs from `answers` in turn (the last one repeated):
    a cluster that is down or mid-resharding, on demand. Yields its URL and the GETs it saw."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader(encoding="utf-8")
        port = writer.get_extra_info("sockname")[1]
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if command[0] == "CLUSTER":
                    node = f"*3\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$2\r\nid\r\n".encode()
                    writer.write(b"*1\r\n*3\r\n:0\r\n:16383\r\n" + node)
                else:
                    seen.append(command[0])
                    writer.write(answers[min(len(seen), len(answers)) - 1])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"redis+cluster://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_clusterdown_and_tryagain_are_retried_with_pauses() -> None:
    answers = [b"-CLUSTERDOWN The cluster is down\r\n", b"-TRYAGAIN Multiple keys request during rehashing\r\n",
               b"$2\r\nok\r\n"]
    async with fake_node(answers) as (url, seen):
        store = RedisStore(url)
        try:
            start = time.monotonic()
            assert await store.get("session:a") == "ok"
            assert seen == ["GET"] * 3
            assert time.monotonic() - start >= RETRY_PAUSE * 3  # 50 ms, then 100 ms
        finally:
            await store.close()


async def test_a_cluster_that_stays_down_fails_within_the_bound() -> None:
    async with fake_node([b"-CLUSTERDOWN The cluster is down\r\n"]) as (url, seen):
        store = RedisStore(url)
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match=f"in {MAX_ATTEMPTS} tries .last refusal: CLUSTERDOWN"):
                await store.get("session:a")
            assert len(seen) == MAX_ATTEMPTS
            assert time.monotonic() - start < RETRY_PAUSE * 2 ** MAX_ATTEMPTS + 0.5
        finally:
            await store.close()
