"""Finding 4: an IdP's keys are trusted for a bounded, configured time. A withdrawn key is refused within
`jwks_max_age`; a new key is accepted within `jwks_unknown_kid_interval`; a flood of made-up kids costs at
most one fetch per interval; the refresh happens in the background before the set expires, and no request
waits on it. The cache is driven with an injected clock against a real JWKS server on loopback; the
end-to-end tests run in real time through POST /oauth2/token with a short max age (3 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from broker.connectors.id_token import Expectations, verify_id_token
from broker.connectors.jwks import JwksCache
from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.errors import TokenInvalid, UpstreamUnavailable
from broker.web.errors import http_status
from tests.security import _jwt_support
from tests.security._jwt_support import (
    MAX_AGE,
    ROTATE_AUD,
    UNKNOWN_KID_INTERVAL,
    RotatingIssuer,
    SecEnv,
    assert_exchange_refused,
    exchange,
)
from tests.support.token_issuer import new_key, running_issuer

# The shared fixture, found by pytest under this name (tests/security has no conftest of its own).
sec_env = _jwt_support.sec_env


AGE, INTERVAL = 300.0, 5.0  # the defaults: jwks_max_age 5m, jwks_unknown_kid_interval 5s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[RotatingIssuer]:
    issuer = RotatingIssuer(cache_control="max-age=86400")  # what Google-like IdPs say: no longer honoured
    with running_issuer(issuer):
        issuer.published = {"k1": issuer.key}
        yield issuer


def token(idp: RotatingIssuer, kid: str) -> str:
    key = idp.published.get(kid) or new_key()
    return idp.sign(idp.claims(), key=key, kid=kid)


async def accepted(cache: JwksCache, idp: RotatingIssuer, raw: str) -> bool:
    """Whether the token verifies; a refusal must be the signature's (the key is not in the set held)."""
    expect = Expectations(issuers=(idp.url,), audiences=("client-1",), algorithms=("RS256",), leeway=30,
                          max_bytes=16384)
    try:
        await verify_id_token(raw, cache, expect)
    except TokenInvalid as exc:
        assert exc.reason == "signature_invalid", exc.reason
        return False
    return True


def run(body: Any) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient() as http:
            return await body(http)
    return asyncio.run(main())


def cache_for(http: httpx.AsyncClient, idp: RotatingIssuer, clock: Clock) -> JwksCache:
    return JwksCache(http, f"{idp.url}/jwks", timeout=5, max_age=AGE, unknown_kid_interval=INTERVAL, clock=clock)


async def settle(cache: JwksCache, fetches: int) -> None:
    """Wait (real time, bounded) for a background fetch to land."""
    for _ in range(100):
        if cache.fetches >= fetches:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the background refresh did not land")


def test_withdrawn_key_refused_at_max_age(idp: RotatingIssuer) -> None:
    clock = Clock()
    start = clock.now
    old = token(idp, "k1")

    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, clock)
        assert await accepted(cache, idp, old)
        idp.published = {"k2": new_key()}  # k1 withdrawn just after the fetch began
        clock.now = start + AGE / 2 - 0.001  # before the refresh point: still the held set, no fetch
        assert await accepted(cache, idp, old) and cache.fetches == 1
        clock.now = start + AGE  # the set's life is over (counted from the fetch's start): refetched first
        assert not await accepted(cache, idp, old)
        assert not await accepted(cache, idp, token(idp, "k1"))
        assert cache.fetches == 2
    run(body)


def test_background_refresh_before_expiry_never_blocks(idp: RotatingIssuer) -> None:
    clock = Clock()
    start = clock.now
    old = token(idp, "k1")

    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, clock)
        assert await accepted(cache, idp, old)
        idp.published = {"k2": new_key()}
        idp.jwks_delay = 1.0  # a slow IdP: a request waiting on the refresh would take a second
        clock.now = start + AGE / 2
        began = time.perf_counter()
        # Past half the life: the first use starts the refresh, it and those after go on with the held set.
        results = [await accepted(cache, idp, old) for _ in range(5)]
        assert time.perf_counter() - began < 0.5 and results == [True] * 5
        assert cache.fetches == 1 and 0 < cache.trusted_for() <= AGE / 2
        await settle(cache, 2)
        assert not await accepted(cache, idp, old)  # the refreshed set lacks k1, long before the old one expired
        assert cache.trusted_for() == pytest.approx(AGE, abs=0.01)  # counted from the refresh's start
    try:
        run(body)
    finally:
        idp.jwks_delay = 0.0


def test_new_key_accepted_within_the_interval(idp: RotatingIssuer) -> None:
    clock = Clock()
    start = clock.now

    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, clock)
        assert await accepted(cache, idp, token(idp, "k1"))
        idp.published["k2"] = new_key()  # published just after the first fetch began
        clock.now = start + 1
        fresh = token(idp, "k2")
        assert not await accepted(cache, idp, fresh)  # the interval since the last fetch has not passed
        assert cache.fetches == 1
        clock.now = start + INTERVAL
        assert await accepted(cache, idp, fresh)
        assert cache.fetches == 2
    run(body)


def test_flood_of_made_up_kids_costs_one_fetch_per_interval(idp: RotatingIssuer) -> None:
    clock = Clock()
    start = clock.now

    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, clock)
        assert await accepted(cache, idp, token(idp, "k1"))
        requests = idp.jwks_requests
        clock.now = start + INTERVAL
        # 100 at once: they share the one fetch the first of them starts.
        flood = [token(idp, f"made-up-{n}") for n in range(100)]
        assert not any(await asyncio.gather(*[accepted(cache, idp, t) for t in flood]))
        assert idp.jwks_requests - requests == 1
        # Then four a second for a minute (of the injected clock): one fetch per interval at most.
        for step in range(240):
            clock.now = start + INTERVAL + step / 4
            assert not await accepted(cache, idp, flood[step % 100])
        assert idp.jwks_requests - requests <= 1 + 60 / INTERVAL + 1
    run(body)


def test_cold_start_is_one_fetch_for_all(idp: RotatingIssuer) -> None:
    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, Clock())
        results = await asyncio.gather(*[accepted(cache, idp, token(idp, "k1")) for _ in range(30)])
        assert all(results) and idp.jwks_requests == 1
    run(body)


def test_idp_down_past_max_age_fails_closed(idp: RotatingIssuer) -> None:
    clock = Clock()
    start = clock.now
    good = token(idp, "k1")

    async def body(http: httpx.AsyncClient) -> None:
        cache = cache_for(http, idp, clock)
        assert await accepted(cache, idp, good)
        idp.jwks_status = 503
        clock.now = start + AGE / 2
        assert await accepted(cache, idp, good)  # the background refresh fails; the held set still serves
        await asyncio.sleep(0.3)
        clock.now = start + AGE - 0.001
        assert await accepted(cache, idp, good)  # up to the max age, not beyond (no grace)
        await asyncio.sleep(0.3)
        clock.now = start + AGE + INTERVAL
        with pytest.raises(UpstreamUnavailable) as err:
            await accepted(cache, idp, good)
        assert err.value.reason == "idp_http_error" and http_status(err.value) == 502
        clock.now += 1
        with pytest.raises(UpstreamUnavailable) as err:
            await accepted(cache, idp, good)
        assert err.value.reason == "jwks_backoff"  # one fetch per backoff while the IdP is down
        idp.jwks_status = 200
        clock.now += 5
        assert await accepted(cache, idp, good)
    try:
        run(body)
    finally:
        idp.jwks_status = 200


# ---- end to end, in real time, through POST /oauth2/token -------------------------------------------------


def rotate_token(env: SecEnv, kid: str, key: Any = None) -> str:
    idp = env.rotating
    key = key or idp.published.get(kid) or new_key()
    return idp.sign(idp.claims(aud=ROTATE_AUD, sub=f"rot-{time.monotonic_ns()}"), key=key, kid=kid)


def timed_exchange(env: SecEnv, token: str) -> tuple[float, httpx.Response]:
    """The moment the request began (the broker runs in this process: the same monotonic clock) and its answer."""
    return time.monotonic(), exchange(env, token)


def publish(env: SecEnv, kid: str) -> None:
    """Publish a key and wait (bounded) until the broker accepts it: the interval since its last fetch may
    not have passed yet."""
    env.rotating.published = {kid: new_key()}
    deadline = time.monotonic() + UNKNOWN_KID_INTERVAL + MAX_AGE
    while exchange(env, rotate_token(env, kid)).status_code != 200:
        assert time.monotonic() < deadline, "a published key was never accepted"
        time.sleep(0.1)


def test_withdrawn_key_refused_within_max_age_end_to_end(sec_env: SecEnv) -> None:
    """Every request that began after withdrawal + jwks_max_age is refused, the remembered token included."""
    publish(sec_env, "r1")
    remembered = rotate_token(sec_env, "r1")
    assert exchange(sec_env, remembered).status_code == 200
    key = sec_env.rotating.published["r1"]
    withdrawn_at = time.monotonic()
    sec_env.rotating.published = {"r2": new_key()}
    while time.monotonic() - withdrawn_at < MAX_AGE + 1:
        fresh = rotate_token(sec_env, "r1", key)
        for began, answer in (timed_exchange(sec_env, remembered), timed_exchange(sec_env, fresh)):
            if answer.status_code == 200:
                assert began < withdrawn_at + MAX_AGE, "a withdrawn key was trusted past jwks_max_age"
            else:
                assert_exchange_refused(sec_env, answer, "signature_invalid")
        time.sleep(0.1)
    assert exchange(sec_env, remembered).status_code == 400


def test_new_key_accepted_within_the_interval_end_to_end(sec_env: SecEnv) -> None:
    """Every request that began jwks_unknown_kid_interval after the key was published is accepted."""
    publish(sec_env, "n1")
    new = new_key()
    sec_env.rotating.published["n2"] = new
    published_at = time.monotonic()
    while time.monotonic() - published_at < UNKNOWN_KID_INTERVAL + 1:
        began, answer = timed_exchange(sec_env, rotate_token(sec_env, "n2", new))
        if answer.status_code != 200:
            assert_exchange_refused(sec_env, answer, "signature_invalid")
            assert began < published_at + UNKNOWN_KID_INTERVAL + 0.1, "a new key was refused past the interval"
        time.sleep(0.05)


def test_kid_flood_end_to_end(sec_env: SecEnv) -> None:
    publish(sec_env, "f1")
    other = new_key()
    tokens = [rotate_token(sec_env, f"fake-{n}", other) for n in range(60)]
    before, began = sec_env.rotating.jwks_requests, time.monotonic()

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(*[client.post(f"{sec_env.url}/oauth2/token", data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": t,
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}) for t in tokens]))

    answers = asyncio.run(flood())
    elapsed = time.monotonic() - began
    assert all(a.status_code == 400 and a.json()["error"] == "invalid_grant" for a in answers)
    assert sec_env.rotating.jwks_requests - before <= 1 + elapsed / UNKNOWN_KID_INTERVAL


# ---- the configuration keys -------------------------------------------------------------------------------


def test_jwks_timing_keys_defaults_and_bounds() -> None:
    token = {"id": "t", "type": "token", "issuer": "https://idp.example", "client_ids": ["c"]}
    oidc = {"id": "o", "type": "oidc", "name": "O", "issuer": "https://idp.example", "client_id": "c"}
    for model, base in ((TokenIdpConfig, token), (OidcIdpConfig, oidc)):
        config = model.model_validate(base)
        assert config.jwks_max_age == timedelta(minutes=5)
        assert config.jwks_unknown_kid_interval == timedelta(seconds=5)
        assert model.model_validate({**base, "jwks_max_age": "30s", "jwks_unknown_kid_interval": "2s"})
        for bad in ({"jwks_max_age": "0s"}, {"jwks_max_age": "25h"}, {"jwks_unknown_kid_interval": "0s"},
                    {"jwks_unknown_kid_interval": "10m"},
                    {"jwks_max_age": "10s", "jwks_unknown_kid_interval": "20s"}):
            with pytest.raises(ValidationError, match="jwks_"):
                model.model_validate({**base, **bad})
