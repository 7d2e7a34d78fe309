"""The loopback login's core (cli_authorize.py) where HTTP cannot reach cheaply: a code's 60 seconds and a
parked request's 10 minutes (a store clock moved on), one winner among concurrent redemptions on both
stores, and the redirect_uri rule on the forms the flow tests do not send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from broker.cli_authorize import CODE_TTL, PARKED_TTL, CliAuthorize, check_request, is_loopback_redirect, s256
from broker.devstack.redis_server import running_redis
from broker.errors import GrantInvalid
from broker.store import MemoryStore, RedisStore, StateStore
from tests.factories import identity

pytestmark = pytest.mark.anyio
SECRET = "s" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz"
VERIFIER = "v" * 20 + "0123456789abcdefghijklmnop"
REDIRECT = "http://127.0.0.1:49152/callback"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def query(**overrides: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": "sts-broker-cli", "redirect_uri": REDIRECT,
            "code_challenge": s256(VERIFIER), "code_challenge_method": "S256", "state": "st", **overrides}


def form(code: str) -> dict[str, str]:
    return {"code": code, "redirect_uri": REDIRECT, "client_id": "sts-broker-cli", "code_verifier": VERIFIER}


async def test_a_code_lives_sixty_seconds() -> None:
    clock = Clock()
    authorize = CliAuthorize(MemoryStore(clock), SECRET)
    fresh = await authorize.issue_code(check_request(query()), identity(), time.time() + 3600)
    stale = await authorize.issue_code(check_request(query()), identity(), time.time() + 3600)
    clock.now += CODE_TTL - 1
    assert (await authorize.redeem(form(fresh))).identity == identity()
    clock.now += 2
    with pytest.raises(GrantInvalid) as info:
        await authorize.redeem(form(stale))
    assert info.value.reason == "code_invalid"


async def test_a_parked_request_lives_ten_minutes_and_is_used_once() -> None:
    clock = Clock()
    authorize = CliAuthorize(MemoryStore(clock), SECRET)
    kept = await authorize.park(check_request(query()))
    used = await authorize.park(check_request(query()))
    await authorize.parked(used, use=True)
    with pytest.raises(GrantInvalid):
        await authorize.parked(used)
    clock.now += PARKED_TTL + 1
    with pytest.raises(GrantInvalid):
        await authorize.parked(kept)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with running_redis() as server:
        made = RedisStore(server.url, prefix="cli-authorize-test:")
        try:
            yield made
        finally:
            await made.close()


async def test_concurrent_redemptions_have_one_winner(store: StateStore) -> None:
    authorize = CliAuthorize(store, SECRET)
    code = await authorize.issue_code(check_request(query()), identity(), time.time() + 3600)
    results = await asyncio.gather(*(authorize.redeem(form(code)) for _ in range(20)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, GrantInvalid) for r in results if isinstance(r, BaseException))


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1/", "http://[::1]:65535/cb", "http://127.0.0.1:8080",
                                 "http://127.0.0.1:8080/a/b-c_d.e~f"])
def test_loopback_redirects_that_pass(uri: str) -> None:
    assert is_loopback_redirect(uri)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:0/", "http://127.0.0.1:65536/", "http://127.0.0.2:80/",
                                 "http://[::2]:80/", "http://[::ffff:127.0.0.1]:80/", "http://127.1:80/",
                                 "http://2130706433:80/", "http://0x7f000001:80/", "http://127.0.0.1:80/%2e%2e",
                                 "http://127.0.0.1:80/\n", "http://127.0.0.1:80/a b", "HTTP://127.0.0.1:80/"])
def test_loopback_look_alikes_that_fail(uri: str) -> None:
    assert not is_loopback_redirect(uri)
