"""broker/preferences.py on both stores: two replicas (two store clients) see the same stars and recents,
both lists stay bounded, and a star for a role not granted is refused before anything is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from broker.devstack.redis_server import RedisServer, running_redis
from broker.errors import BadRequest, NotAuthorized
from broker.preferences import MAX_FAVOURITES, MAX_RECENT, Preferences, Prefs, preference_key
from broker.store import MemoryStore, RedisStore, StateStore
from tests.factories import identity

pytestmark = pytest.mark.anyio
ROLES = [f"arn:aws:iam::310000000001:role/R{i}" for i in range(MAX_FAVOURITES + 2)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two store clients over one state: a memory store shared in-process, or two connections to Redis."""
    if request.param == "memory":
        shared = MemoryStore()
        yield shared, shared
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    first, second = RedisStore(server.url, prefix="prefs-test:"), RedisStore(server.url, prefix="prefs-test:")
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_another_replica_sees_stars_and_recents(replicas: tuple[StateStore, StateStore]) -> None:
    person = identity(subject="replica-person")
    one, two = Preferences(replicas[0]), Preferences(replicas[1])
    await one.star(person, ROLES[0], True, set(ROLES))
    await one.used(person, ROLES[1])
    assert await two.load(person) == Prefs((ROLES[0],), (ROLES[1],))
    assert await two.load(identity(subject="someone-else")) == Prefs()
    await two.star(person, ROLES[0], False, set(ROLES))
    assert (await one.load(person)).favourites == ()


async def test_a_role_not_granted_is_never_stored(replicas: tuple[StateStore, StateStore]) -> None:
    person = identity(subject="forger")
    prefs = Preferences(replicas[0])
    with pytest.raises(NotAuthorized) as refused:
        await prefs.star(person, ROLES[5], True, {ROLES[0]})
    assert refused.value.reason == "favourite_not_granted"
    assert await replicas[1].get(preference_key(person)) is None


async def test_both_lists_are_bounded(replicas: tuple[StateStore, StateStore]) -> None:
    person = identity(subject="busy-person")
    prefs = Preferences(replicas[0])
    for role in ROLES[:MAX_FAVOURITES]:
        await prefs.star(person, role, True, set(ROLES))
    with pytest.raises(BadRequest) as full:
        await prefs.star(person, ROLES[MAX_FAVOURITES], True, set(ROLES))
    assert full.value.reason == "favourites_full"
    # A starred role no longer granted gives its place up.
    await prefs.star(person, ROLES[MAX_FAVOURITES], True, set(ROLES[1:]))
    assert (await prefs.load(person)).favourites[-1] == ROLES[MAX_FAVOURITES]
    for role in ROLES[:MAX_RECENT + 3]:
        await prefs.used(person, role)
    assert (await prefs.load(person)).recent == tuple(reversed(ROLES[3:MAX_RECENT + 3]))
    await prefs.used(person, ROLES[4])
    assert (await prefs.load(person)).recent[:2] == (ROLES[4], ROLES[MAX_RECENT + 2])


async def test_a_damaged_value_reads_as_no_preferences(replicas: tuple[StateStore, StateStore]) -> None:
    person = identity(subject="damaged")
    prefs = Preferences(replicas[0])
    await prefs.star(person, ROLES[0], True, set(ROLES))
    key = preference_key(person)
    for junk in ("not json", "[1, 2]", '{"f": "a string", "r": [3, "' + "x" * 3000 + '"]}'):
        await replicas[1].put(key, junk, 60)
        assert await prefs.load(person) == Prefs()

