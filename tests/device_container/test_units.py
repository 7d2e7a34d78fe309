"""The device-code store and the container cache rule without HTTP: user-code normalization, single use of
an approved device code under concurrent polls (memory and Redis stores), what the store holds (the user code is
a key: 34 bits live 10 minutes, a hash of it would be as guessable), and `refresh_before`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from broker.audit import AuditLog
from broker.cli_sessions import CliSessions
from broker.container_tokens import ContainerTokens
from broker.device_codes import DeviceCodes, normalize_user_code
from broker.devstack.redis_server import running_redis
from broker.errors import DeviceGrantError, UserCodeInvalid
from broker.issuers.cache import CredentialCache
from broker.issuers.credentials import Credentials
from broker.rate_limits import RateLimits
from broker.settings import DeviceAuthorizationConfig, RateLimitConfig
from broker.store import MemoryStore, RedisStore, StateStore
from tests.factories import identity

SECRET = "a-long-enough-session-secret-for-the-tests-0123456789"


@pytest.mark.parametrize(("typed", "stored"), [
    ("BCDF-GHJK", "BCDFGHJK"), ("bcdfghjk", "BCDFGHJK"), (" bcdf ghjk ", "BCDFGHJK"), ("BCDF-GHJ", None),
    ("BCDF-GHJKL", None), ("ABCD-EFGH", None), ("BCDF-GHJ0", None), ("\uff22CDF-GHJK", None), ("", None),
    ("BCDF-GHJ\u212a", None),  # FULLWIDTH B above, KELVIN SIGN here: never read as B or K
])
def test_user_codes_are_read_as_people_type_them(typed: str, stored: str | None) -> None:
    assert normalize_user_code(typed) == stored


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with running_redis() as redis:
        yield RedisStore(redis.url)


def codes(store: StateStore, tmp_audit: str) -> DeviceCodes:
    limits = RateLimits(store, RateLimitConfig())
    return DeviceCodes(store, SECRET, DeviceAuthorizationConfig(), limits, AuditLog(tmp_audit))


def test_an_approved_device_code_is_redeemed_once(store: StateStore, tmp_path: pytest.TempPathFactory) -> None:
    async def run() -> None:
        flow = codes(store, f"{tmp_path}/audit.log")
        start = await flow.start("sts-broker-cli", "box", "192.0.2.7")
        alice = identity(subject="alice")
        decided = await flow.decide(start.user_code, alice, time.time() + 3600, approve=True, client="192.0.2.8")
        assert decided.status == "approved"
        with pytest.raises(UserCodeInvalid):  # decided once
            await flow.decide(start.user_code, identity(subject="bob"), time.time() + 3600, approve=True,
                              client="192.0.2.9")
        results = await asyncio.gather(*[flow.poll(start.device_code, "sts-broker-cli") for _ in range(6)],
                                       return_exceptions=True)
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, DeviceGrantError)]
        assert len(won) == 1 and won[0].identity.subject == "alice" and len(lost) == 5
        assert {e.reason for e in lost} == {"device_code_invalid"}
        await store.close()

    asyncio.run(run())


class RecordingStore(MemoryStore):
    """Keeps every key and value written: what a reader of the store (a Redis replica, a backup) would see."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    async def put(self, key: str, value: str, ttl: float) -> None:
        self.written += [key, value]
        await super().put(key, value, ttl)

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        self.written += [key, value]
        return await super().put_new(key, value, ttl)


def test_the_store_holds_no_device_code_and_no_readable_request(tmp_path: pytest.TempPathFactory) -> None:
    async def run() -> None:
        store = RecordingStore()
        flow = codes(store, f"{tmp_path}/audit.log")
        start = await flow.start("sts-broker-cli", "box", "192.0.2.7")
        await flow.decide(start.user_code, identity(), time.time() + 3600, approve=True, client="192.0.2.8")
        dumped = " ".join(store.written)
        assert len(store.written) >= 6
        assert start.device_code not in dumped
        assert "alice@example.com" not in dumped and "box" not in dumped  # the request is sealed

    asyncio.run(run())


def creds(key: str, minutes: float) -> Credentials:
    return Credentials(key, "secret", "session", datetime.now(UTC) + timedelta(minutes=minutes),
                       "arn:aws:iam::123456789012:role/R", "arn:aws:sts::123456789012:assumed-role/R/x")


@pytest.mark.parametrize(("minutes", "refresh_before", "reused_for"), [
    (15, timedelta(seconds=897), 3.0),  # under the life: exactly that much before expiry
    (60, timedelta(minutes=20), 40 * 60.0),
    (15, timedelta(minutes=20), 7.5 * 60),  # longer than the life: at half of it, never on every call
])
def test_refresh_before(minutes: float, refresh_before: timedelta, reused_for: float) -> None:
    async def run() -> None:
        now = datetime.now(UTC).timestamp()
        cache = CredentialCache(MemoryStore(), SECRET, min_remaining=timedelta(minutes=10), clock=lambda: clock[0])
        keys = iter(["A", "B"])

        async def issue() -> Credentials:
            return creds(next(keys), minutes)

        clock[0] = now
        assert (await cache.get_or_issue("creds:c", issue, refresh_before=refresh_before))[0].access_key_id == "A"
        clock[0] = now + reused_for - 0.5
        assert (await cache.get_or_issue("creds:c", issue, refresh_before=refresh_before))[0].access_key_id == "A"
        clock[0] = now + reused_for + 0.5
        assert (await cache.get_or_issue("creds:c", issue, refresh_before=refresh_before))[0].access_key_id == "B"

    clock = [0.0]
    asyncio.run(run())


def test_container_tokens_in_the_store(store: StateStore) -> None:
    """Create, load, list, revoke by id (the owner only), and a CLI session's end, on memory and Redis."""
    async def run() -> None:
        sessions = CliSessions(store, SECRET, 3600)
        tokens = ContainerTokens(store, SECRET)
        alice, _ = await sessions.create(identity(subject="alice"), "laptop", time.time() + 3600)
        other, _ = await sessions.create(identity(subject="alice"), "desktop", time.time() + 3600)
        bob, _ = await sessions.create(identity(subject="bob"), "", time.time() + 3600)
        first, secret = await tokens.create(alice, "arn:aws:iam::123456789012:role/A")
        second, _ = await tokens.create(other, "arn:aws:iam::123456789012:role/A")
        assert await tokens.load(secret) == first and await tokens.load(secret + "x") is None
        assert [t.token_id for t in await tokens.list_for(alice.person)] == [first.token_id, second.token_id]
        assert await tokens.revoke(first.token_id, bob.person) is None  # not bob's
        assert await tokens.load(secret) == first
        assert [t.token_id for t in await tokens.revoke_session(alice.session_id, alice.person)] == [first.token_id]
        assert await tokens.load(secret) is None
        assert [t.token_id for t in await tokens.list_for(alice.person)] == [second.token_id]
        assert await tokens.list_for(bob.person) == []
        await store.close()

    asyncio.run(run())
