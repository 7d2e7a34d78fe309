"""The core of CLI sessions, over the memory store (the store itself is conformance-tested for Redis too):
bound to the person, never past the browser session, the token never stored, revocation by bearer or by the
person's own public id only."""

from __future__ import annotations

import asyncio
import time

import pytest

from broker.cli_sessions import CliSessions, clean_device_name, person_of, token_digest
from broker.errors import BadRequest
from broker.store import MemoryStore
from tests.factories import identity

pytestmark = pytest.mark.anyio
SECRET = "k" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz"
ALICE = identity(subject="alice", email="alice@example.com")
BOB = identity(subject="bob", email="bob@example.com")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sessions(store: MemoryStore, lifetime: float = 3600.0) -> CliSessions:
    return CliSessions(store, SECRET, lifetime)


async def test_create_load_and_the_store_holds_no_token() -> None:
    store = MemoryStore()
    made, token = await sessions(store).create(ALICE, "laptop", time.time() + 7200)
    loaded = await sessions(store).load(token)
    assert loaded is not None and loaded.session_id == made.session_id
    assert loaded.identity == ALICE and loaded.device_name == "laptop"
    assert all(token not in key and token not in str(value) for key, value in store._data.items())
    assert await sessions(store).load(token + "x") is None
    assert await sessions(store).load("") is None


async def test_never_outlives_the_browser_session() -> None:
    store = MemoryStore()
    not_after = time.time() + 1.2
    made, token = await sessions(store, lifetime=3600).create(ALICE, "", not_after)
    assert made.expires_at == not_after
    await asyncio.sleep(1.3)
    assert await sessions(store).load(token) is None
    with pytest.raises(BadRequest):  # a browser session that has (almost) ended makes none
        await sessions(store).create(ALICE, "", time.time() + 0.5)


async def test_lifetime_caps_it_too() -> None:
    made, _ = await sessions(MemoryStore(), lifetime=60).create(ALICE, "", time.time() + 7200)
    assert made.expires_at - made.created_at == pytest.approx(60, abs=1)


async def test_revoke_by_token() -> None:
    store = MemoryStore()
    made, token = await sessions(store).create(ALICE, "", time.time() + 600)
    assert (await sessions(store).revoke_token(token)) == made
    assert await sessions(store).load(token) is None
    assert await sessions(store).revoke_token(token) is None
    assert await sessions(store).list_for(ALICE) == []


async def test_revoke_by_id_only_for_its_own_person() -> None:
    store = MemoryStore()
    made, token = await sessions(store).create(ALICE, "", time.time() + 600)
    assert await sessions(store).revoke(made.session_id, person_of(BOB)) is None
    assert await sessions(store).load(token) is not None  # bob's attempt changed nothing
    assert await sessions(store).revoke("made-up-id", person_of(ALICE)) is None
    assert await sessions(store).revoke(made.session_id, person_of(ALICE)) == made
    assert await sessions(store).load(token) is None


async def test_list_for_a_person_only_live_ones() -> None:
    store = MemoryStore()
    first, _ = await sessions(store).create(ALICE, "one", time.time() + 600)
    short, _ = await sessions(store).create(ALICE, "short", time.time() + 1.2)
    await sessions(store).create(BOB, "bob's", time.time() + 600)
    assert [s.device_name for s in await sessions(store).list_for(ALICE)] == ["one", "short"]
    await asyncio.sleep(1.3)
    assert await sessions(store).list_for(ALICE) == [first]
    assert await store.set_members(f"cli_sessions_of:{person_of(ALICE)}") == {first.session_id}  # pruned
    assert short.session_id not in str(await sessions(store).list_for(BOB))


async def test_a_record_under_another_key_or_secret_is_refused() -> None:
    store = MemoryStore()
    _, token = await sessions(store).create(ALICE, "", time.time() + 600)
    _, other = await sessions(store).create(BOB, "", time.time() + 600)
    # Bob's sealed record moved under Alice's key does not open (bound to its key), nor one of another secret.
    moved = await store.get(f"cli_session:{token_digest(other)}")
    assert moved is not None
    await store.put(f"cli_session:{token_digest(token)}", moved, 600)
    assert await sessions(store).load(token) is None
    assert await CliSessions(store, SECRET[::-1], 3600).load(other) is None


@pytest.mark.parametrize("name", ["x" * 65, "line\nbreak", "tab\there", "bell\x07", "nul\x00"])
def test_device_names_that_are_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        clean_device_name(name)


def test_device_names_that_are_kept() -> None:
    assert clean_device_name("<script>alert(1)</script> é") == "<script>alert(1)</script> é"
    assert clean_device_name(None) == "" and clean_device_name("x" * 64) == "x" * 64
