"""The pipelining Redis client under the Redis store: replies matched to commands by order under load and
cancellation, connections lost and timed out, the handshake (AUTH, SELECT), TLS, the EVALSHA fallback, and
servers that send garbage. Real redis-servers (private, free ports) and real loopback sockets throughout."""

from __future__ import annotations

import asyncio
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
import redis
import uvloop

from broker import redis_pipe
from broker.devstack.redis_server import RedisServer, running_redis
from broker.devstack.redis_tls import make_tls_files
from broker.devstack.servers import free_port
from broker.errors import StoreUnavailable
from broker.redis_pipe import Endpoint, PipeError, RedisPipe
from broker.store import _INCR_SCRIPT, RedisStore

pytestmark = pytest.mark.anyio

LONG = 60.0
PASSWORD = "pw-8c1f7a2e"


@pytest.fixture(params=[pytest.param(("asyncio", {}), id="asyncio"),
                        pytest.param(("asyncio", {"loop_factory": uvloop.new_event_loop}), id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"pipe-{uuid.uuid4().hex}:"


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisStore]:
    made = RedisStore(redis_server.url, prefix=prefix)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A second, independent client (redis-py) to look at and act on the server."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def shown(exc: BaseException, store: object) -> str:
    """What a log could show of a failure: its message, repr and traceback, and the store's repr."""
    return "\n".join([str(exc), repr(exc), repr(store), "".join(traceback.format_exception(exc))])


# Many callers, one socket: replies go to the caller that sent the command.


async def test_concurrent_incrs_count_exactly(store: RedisStore) -> None:
    counts = await asyncio.gather(*(store.incr("rate:hot", LONG) for _ in range(2000)))
    assert sorted(counts) == list(range(1, 2001))
    assert await store.incr("rate:hot", LONG) == 2001


async def test_concurrent_gets_each_get_their_own_value(store: RedisStore) -> None:
    await asyncio.gather(*(store.put(f"session:{i}", f"value-{i}", LONG) for i in range(1000)))
    values = await asyncio.gather(*(store.get(f"session:{i}") for i in range(1000)))
    assert values == [f"value-{i}" for i in range(1000)]


async def test_a_burst_needs_few_connections_and_max_connections_caps_them(
        redis_server: RedisServer, prefix: str, raw: redis.Redis) -> None:
    before = len(raw.client_list())
    capped = RedisStore(redis_server.url, prefix=prefix, max_connections=1)
    free = RedisStore(redis_server.url, prefix=prefix)
    try:
        await asyncio.gather(*(capped.incr("rate:a", LONG) for _ in range(3000)))
        assert len(raw.client_list()) - before == 1
        await asyncio.gather(*(free.incr("rate:b", LONG) for _ in range(3000)))
        assert len(raw.client_list()) - before <= 1 + 4  # pipelined: not one connection per caller
    finally:
        await capped.close()
        await free.close()


async def test_a_cancelled_caller_does_not_shift_the_replies(store: RedisStore) -> None:
    await store.put("session:first", "first", LONG)
    await store.put("session:second", "second", LONG)
    cancelled = asyncio.ensure_future(store.get("session:first"))
    await asyncio.sleep(0)  # the GET is written and its reply awaited
    cancelled.cancel()
    assert await store.get("session:second") == "second"
    assert cancelled.cancelled()


async def test_many_cancelled_callers_do_not_shift_the_replies(store: RedisStore) -> None:
    await asyncio.gather(*(store.put(f"session:{i}", f"value-{i}", LONG) for i in range(500)))
    calls = [asyncio.ensure_future(store.get(f"session:{i}")) for i in range(500)]
    await asyncio.sleep(0)
    dropped = {i for i in range(500) if (i * 7) % 5 < 3}  # runs of cancelled and kept calls, interleaved
    for i in dropped:
        calls[i].cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    kept = [i for i in range(500) if i not in dropped]
    assert [calls[i].result() for i in kept] == [f"value-{i}" for i in kept]
    assert await store.get("session:7") == "value-7"


# Connections lost: queued commands fail, the next command connects again.


async def blocked_on_server(raw: redis.Redis, command: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not [c for c in raw.client_list() if c["cmd"] == command]:
        assert asyncio.get_running_loop().time() < deadline, f"no client is running {command}"
        await asyncio.sleep(0.02)


async def test_a_connection_killed_mid_flight_fails_its_commands(redis_server: RedisServer, prefix: str,
                                                                 raw: redis.Redis) -> None:
    pipe = RedisPipe(Endpoint.from_url(redis_server.url), timeout=10.0)
    store = RedisStore(redis_server.url, prefix=prefix)
    try:
        blocked = asyncio.ensure_future(pipe.call("BLPOP", prefix + "never", 0))  # waits on the server
        await blocked_on_server(raw, "blpop")
        queued = asyncio.ensure_future(pipe.call("PING"))  # behind the BLPOP on the same socket
        await store.ping()
        raw.client_kill_filter(_type="normal")  # every client but this one: the pipe's and the store's
        for call in (blocked, queued):
            with pytest.raises(PipeError, match="connection lost"):
                await asyncio.wait_for(call, 5.0)
        assert await pipe.call("PING") == "PONG"  # connected again
        await store.put("session:a", "back", LONG)
        assert await store.get("session:a") == "back"
    finally:
        await pipe.close()
        await store.close()


async def test_a_restarted_server_is_used_again(prefix: str) -> None:
    port = free_port()
    with running_redis(port=port) as server:
        store = RedisStore(server.url, prefix=prefix, timeout=1.0)
        await store.put("session:a", "v", LONG)
    try:
        with pytest.raises(StoreUnavailable, match="GET on session"):
            await store.get("session:a")
        with running_redis(port=port):
            assert await store.get("session:a") is None  # a new server without persistence: empty
            await store.put("session:a", "again", LONG)
            assert await store.get("session:a") == "again"
            assert await store.incr("rate:a", LONG) == 1  # its script cache is empty too: NOSCRIPT fallback
    finally:
        await store.close()


async def test_close_fails_queued_commands(redis_server: RedisServer, raw: redis.Redis) -> None:
    pipe = RedisPipe(Endpoint.from_url(redis_server.url), timeout=10.0)
    blocked = asyncio.ensure_future(pipe.call("BLPOP", f"never-{uuid.uuid4().hex}", 0))
    await blocked_on_server(raw, "blpop")
    await pipe.close()
    with pytest.raises(PipeError, match="closed"):
        await blocked


# Servers that say nothing or send garbage (a fake server on loopback).


Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_redis(handler: Handler) -> AsyncIterator[tuple[str, list[str]]]:
    """Serves handler(n, ...) on the n-th connection; yields the URL and, per connection, how it ended."""
    ends: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = len(ends)
        ends.append("open")
        try:
            await handler(n, reader, writer)
            while await reader.read(65536):  # drain until the client hangs up
                pass
            ends[n] = "dropped by client"
        except (ConnectionError, asyncio.IncompleteReadError):
            ends[n] = "dropped by client"
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0", ends
    finally:
        server.close()
        await server.wait_closed()


async def wait_for_ends(ends: list[str], count: int) -> None:
    for _ in range(200):
        if ends.count("dropped by client") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"connections: {ends}")


def answer_after(first: bytes) -> Handler:
    """Connection 0 gets `first` in answer to its first command; later connections get +PONG per line."""
    async def handler(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if n == 0:
            await reader.readuntil(b"\r\n")
            writer.write(first)
            await writer.drain()
            return
        while await reader.readuntil(b"PING\r\n"):
            writer.write(b"+PONG\r\n")
            await writer.drain()
    return handler


async def test_a_reply_timeout_drops_the_connection_and_the_next_command_reconnects() -> None:
    async with fake_redis(answer_after(b"")) as (url, ends):  # connection 0 never answers
        store = RedisStore(url, timeout=0.3)
        try:
            start = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable, match="no reply within the timeout"):
                await store.ping()
            assert asyncio.get_running_loop().time() - start < 1.0
            await store.ping()  # a new connection, whose replies match again
            await wait_for_ends(ends, 1)
            assert ends[0] == "dropped by client"
        finally:
            await store.close()


@pytest.mark.parametrize(("reply", "reason"), [
    (b"?what\r\n", "malformed reply"),
    (b"$2\r\n\xff\xfe\r\n", "malformed reply"),  # not UTF-8
    (b"+PONG\r\n+PONG\r\n", "malformed reply"),  # an answer to a command never sent
    (b"$9999999\r\n" + b"x" * (redis_pipe.MAX_REPLY_BYTES + 10), "reply too large"),
])
async def test_a_bad_reply_is_store_unavailable_and_drops_the_connection(reply: bytes, reason: str) -> None:
    async with fake_redis(answer_after(reply)) as (url, ends):
        store = RedisStore(url, timeout=2.0)
        try:
            try:
                await store.ping()
            except StoreUnavailable as exc:
                assert reason in str(exc)
            else:  # the unsolicited second PONG: the first is a fine answer, the second breaks the link
                assert reply.count(b"+PONG") == 2
            await wait_for_ends(ends, 1)
            await store.ping()
        finally:
            await store.close()


async def test_a_handshake_never_answered_is_bounded_by_the_timeout() -> None:
    async with fake_redis(answer_after(b"")) as (url, ends):
        store = RedisStore(url.replace("redis://", f"redis://:{PASSWORD}@"), timeout=0.3)
        try:
            start = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable, match=r"timed out|timeout") as caught:
                await store.ping()
            assert asyncio.get_running_loop().time() - start < 1.0
            await wait_for_ends(ends, 1)
        finally:
            await store.close()
    assert PASSWORD not in shown(caught.value, store)


async def test_close_during_the_handshake_fails_the_waiting_callers() -> None:
    async with fake_redis(answer_after(b"")) as (url, ends):  # never answers AUTH
        store = RedisStore(url.replace("redis://", f"redis://:{PASSWORD}@"), timeout=5.0)
        waiting = [asyncio.ensure_future(store.get("session:a")) for _ in range(3)]
        await asyncio.sleep(0.1)
        await store.close()
        for call in waiting:
            with pytest.raises(StoreUnavailable, match="closed while connecting"):
                await asyncio.wait_for(call, 1.0)
        await wait_for_ends(ends, 1)
        assert len(ends) == 1  # one connect shared by the three callers


async def test_commands_in_flight_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_pipe, "MAX_IN_FLIGHT", 50)
    async with fake_redis(answer_after(b"")) as (url, _):
        store = RedisStore(url, timeout=0.5, max_connections=1)
        try:
            results = await asyncio.gather(*(store.get("session:a") for _ in range(51)), return_exceptions=True)
        finally:
            await store.close()
    messages = [str(r) for r in results]
    assert sum("too many commands in flight" in m for m in messages) == 1
    assert sum("no reply within the timeout" in m for m in messages) == 50


# The handshake: AUTH and SELECT before any command.


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[RedisServer]:
    with running_redis("--requirepass", PASSWORD) as server:
        yield server


async def test_auth_with_the_password(locked_redis: RedisServer, prefix: str) -> None:
    for url in (f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0",
                f"redis://default:{PASSWORD}@127.0.0.1:{locked_redis.port}/0",  # AUTH user password
                f"redis://127.0.0.1:{locked_redis.port}/0?password={PASSWORD}"):
        store = RedisStore(url, prefix=prefix)
        try:
            assert await store.incr("rate:a", LONG) >= 1
        finally:
            await store.close()


@pytest.mark.parametrize("credentials", ["", ":wrong-password@", "default:wrong-password@"])
async def test_auth_refused_is_store_unavailable_without_the_password(locked_redis: RedisServer,
                                                                      credentials: str) -> None:
    store = RedisStore(f"redis://{credentials}127.0.0.1:{locked_redis.port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.put("session:a", "value-xyz", LONG)
    finally:
        await store.close()
    assert ("WRONGPASS" if credentials else "NOAUTH") in str(caught.value)
    assert "wrong-password" not in shown(caught.value, store)
    assert "value-xyz" not in str(caught.value) and "value-xyz" not in repr(caught.value)


async def test_select_keeps_databases_apart(redis_server: RedisServer, prefix: str) -> None:
    two = RedisStore(f"redis://127.0.0.1:{redis_server.port}/2", prefix=prefix)
    zero = RedisStore(redis_server.url, prefix=prefix)
    also_two = RedisStore(f"{redis_server.url}/2", prefix=prefix)  # redis-py reads "/0/2" as db 2
    in_db_2 = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/2", decode_responses=True)
    try:
        await two.put("session:a", "in two", LONG)
        assert await zero.get("session:a") is None
        assert await also_two.get("session:a") == "in two"
        assert in_db_2.get(prefix + "session:a") == "in two"
    finally:
        in_db_2.close()
        for store in (two, zero, also_two):
            await store.close()


async def test_unix_socket_with_a_db(redis_server: RedisServer, prefix: str) -> None:
    over_unix = RedisStore(f"{redis_server.unix_url}?db=5", prefix=prefix)
    over_tcp = RedisStore(f"redis://127.0.0.1:{redis_server.port}/5", prefix=prefix)
    try:
        await over_unix.put("session:a", "via unix", LONG)
        assert await over_tcp.get("session:a") == "via unix"
    finally:
        await over_unix.close()
        await over_tcp.close()


def test_url_parameters_it_does_not_know_are_refused_by_name_only() -> None:
    with pytest.raises(ValueError, match="health_check_interval") as caught:
        RedisStore(f"redis://:{PASSWORD}@127.0.0.1:1/0?health_check_interval={PASSWORD}")
    assert PASSWORD not in str(caught.value)


# The counter's script: EVALSHA, and EVAL when Redis has forgotten it.


async def test_incr_survives_a_script_flush(store: RedisStore, raw: redis.Redis) -> None:
    assert await store.incr("rate:a", LONG) == 1
    sha = raw.script_load(_INCR_SCRIPT)  # the store's own script, by the SHA1 it asks for
    raw.script_flush()
    assert raw.script_exists(sha) == [False]
    assert await store.incr("rate:a", LONG) == 2  # EVALSHA said NOSCRIPT; EVAL ran it (and cached it)
    assert raw.script_exists(sha) == [True]
    assert await store.incr("rate:a", LONG) == 3


async def test_an_error_reply_is_store_unavailable(store: RedisStore, raw: redis.Redis, prefix: str) -> None:
    raw.lpush(prefix + "rate:list", "x")  # INCR on a list: WRONGTYPE
    with pytest.raises(StoreUnavailable, match=r"INCR on rate:\* .*WRONGTYPE"):
        await store.incr("rate:list", LONG)
    assert await store.incr("rate:fine", LONG) == 1  # the connection is still in step


# TLS (rediss://): redis-server with a throwaway CA.


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A redis-server with a TLS port whose certificate (for 127.0.0.1) a throwaway CA signed."""
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    tls_port = free_port()
    with running_redis(*tls.server_args(tls_port, client_certs="no")):
        yield tls_port, str(tls.ca)


async def test_tls_with_the_servers_ca(tls_redis: tuple[int, str], prefix: str) -> None:
    port, ca_file = tls_redis
    store = RedisStore(f"rediss://127.0.0.1:{port}/1?ssl_ca_certs={ca_file}", prefix=prefix)
    try:
        await store.put("session:a", "over tls", LONG)
        assert await store.get("session:a") == "over tls"
        assert await store.incr("rate:a", LONG) == 1
    finally:
        await store.close()


async def test_tls_verifies_by_default(tls_redis: tuple[int, str]) -> None:
    port, _ = tls_redis
    store = RedisStore(f"rediss://127.0.0.1:{port}/0")  # the system CAs do not know the test CA
    try:
        with pytest.raises(StoreUnavailable, match="connect failed: SSLCertVerificationError"):
            await store.ping()
    finally:
        await store.close()


async def test_tls_verification_off_only_when_asked(tls_redis: tuple[int, str]) -> None:
    port, _ = tls_redis
    store = RedisStore(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")  # as redis-py allows
    try:
        await store.ping()
    finally:
        await store.close()


async def test_plain_redis_to_a_tls_port_fails_cleanly(tls_redis: tuple[int, str]) -> None:
    port, _ = tls_redis
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()
