"""Rate limits per client address and per subject (429 + Retry-After, costing no STS or JWKS call), limits
and the credential cache shared by replicas through Redis, and faults that close: JWKS down, STS down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta

import httpx
import pytest
import redis
from pydantic import SecretStr
from starlette.applications import Starlette

from broker.audit import AuditLog
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.support.token_issuer import new_key
from tests.token_exchange.conftest import (
    UNTRUSTED,
    ExchangeEnv,
    assert_refused,
    exchange,
    extra_broker,
    mobile_claims,
    mobile_token,
)


def limits(env: ExchangeEnv, *, client: int = 1000, subject: int = 1000) -> dict[str, object]:
    return {"rate_limits": env.settings.rate_limits.model_copy(update={
        "token_exchange_per_client": client, "token_exchange_per_subject": subject, "window": timedelta(seconds=60)})}


def test_per_client_address(env: ExchangeEnv) -> None:
    with extra_broker(env, **limits(env, client=3)) as (url, app):
        for _ in range(3):
            assert exchange(url, mobile_token(env.idp)).status_code == 200
        cache = context_of_app(app).service.token_exchange.cache
        calls, jwks, issued = cache.issued, env.idp.jwks_requests, env.issued()
        response = exchange(url, mobile_token(env.idp))
        assert_refused(env, response, 429, "temporarily_unavailable", "rate_limited")
        assert response.headers["retry-after"] == "60"
        cache = context_of_app(app).service.token_exchange.cache
        assert (cache.issued, env.idp.jwks_requests, env.issued()) == (calls, jwks, issued)


def test_a_token_exchanged_again_still_counts_its_client(env: ExchangeEnv) -> None:
    # The same token again is the fast path (verified before): client and subject counted in one round trip.
    with extra_broker(env, **limits(env, client=3)) as (url, app):
        token = mobile_token(env.idp)
        for _ in range(3):
            assert exchange(url, token).status_code == 200
        issued = context_of_app(app).service.token_exchange.cache.issued
        assert_refused(env, exchange(url, token), 429, "temporarily_unavailable", "rate_limited")
        assert context_of_app(app).service.token_exchange.cache.issued == issued


def test_a_token_exchanged_again_still_counts_its_subject(env: ExchangeEnv) -> None:
    with extra_broker(env, **limits(env, subject=2)) as (url, _):
        token = mobile_token(env.idp)
        assert [exchange(url, token).status_code for _ in range(2)] == [200, 200]
        assert_refused(env, exchange(url, token), 429, "temporarily_unavailable", "rate_limited")


def test_malformed_requests_count_against_the_client(env: ExchangeEnv) -> None:
    # Refused before the exchange, still counted: a flood of garbage meets the limit like anything else.
    with extra_broker(env, **limits(env, client=3)) as (url, _):
        for _ in range(3):
            response = httpx.post(f"{url}/oauth2/token", content=b"grant_type", timeout=20,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert_refused(env, response, 400, "invalid_request", "form_malformed")
        response = httpx.post(f"{url}/oauth2/token", content=b"grant_type", timeout=20,
                              headers={"Content-Type": "text/plain"})
        assert_refused(env, response, 429, "temporarily_unavailable", "rate_limited")
        assert_refused(env, exchange(url, mobile_token(env.idp)), 429, "temporarily_unavailable", "rate_limited")


def test_per_subject_refuses_before_jwks_and_sts(env: ExchangeEnv) -> None:
    with extra_broker(env, **limits(env, subject=2)) as (url, app):
        claims = mobile_claims(env.idp)
        for n in range(2):
            assert exchange(url, env.idp.sign({**claims, "iat": claims["iat"] - n})).status_code == 200
        calls, jwks = context_of_app(app).service.token_exchange.cache.issued, env.idp.jwks_requests
        # A fresh token of that subject, under a kid nobody knows: a JWKS refresh would be due, but the
        # subject is over its limit, so nothing is fetched, verified or called.
        fresh = env.idp.sign({**claims, "iat": claims["iat"] - 5}, kid="rotated-key-id")
        response = exchange(url, fresh)
        assert_refused(env, response, 429, "temporarily_unavailable", "rate_limited")
        assert int(response.headers["retry-after"]) > 0
        assert (context_of_app(app).service.token_exchange.cache.issued, env.idp.jwks_requests) == (calls, jwks)
        # Another person is not affected.
        assert exchange(url, mobile_token(env.idp)).status_code == 200


def test_forgeries_do_not_spend_a_victims_budget(env: ExchangeEnv) -> None:
    with extra_broker(env, **limits(env, subject=2)) as (url, _):
        victim = mobile_claims(env.idp)
        for _ in range(5):
            forged = env.idp.sign(victim, key=new_key())
            assert_refused(env, exchange(url, forged), 400, "invalid_grant", "signature_invalid")
        assert exchange(url, env.idp.sign(victim)).status_code == 200


@pytest.fixture
def replicas(env: ExchangeEnv) -> Iterator[tuple[str, str, Starlette, Starlette]]:
    with running_redis() as server, ExitStack() as servers:
        store = env.settings.store.model_copy(update={"url": SecretStr(f"{server.url}/5")})
        settings = env.settings.model_copy(update={"store": store, **limits(env, client=4)})
        apps = [create_app(settings, audit=AuditLog(str(env.audit_path))) for _ in range(2)]
        ports = [free_port(), free_port()]
        for app, port in zip(apps, ports, strict=True):
            servers.enter_context(asgi_server(app, port))
        yield f"http://{LOOPBACK}:{ports[0]}", f"http://{LOOPBACK}:{ports[1]}", apps[0], apps[1]


Replicas = tuple[str, str, Starlette, Starlette]


def test_replicas_share_limits_and_credentials(env: ExchangeEnv, replicas: Replicas) -> None:
    a, b, app_a, app_b = replicas
    token = mobile_token(env.idp)
    first = exchange(a, token).json()
    second = exchange(b, token).json()  # the other replica finds the credentials in the shared store
    assert second["Credentials"] == first["Credentials"]
    cache_a, cache_b = (context_of_app(x).service.token_exchange.cache for x in (app_a, app_b))
    assert (cache_a.issued, cache_b.issued) == (1, 0)
    assert exchange(a, mobile_token(env.idp)).status_code == 200
    assert exchange(b, mobile_token(env.idp)).status_code == 200
    assert_refused(env, exchange(a, mobile_token(env.idp)), 429, "temporarily_unavailable", "rate_limited")
    assert_refused(env, exchange(b, mobile_token(env.idp)), 429, "temporarily_unavailable", "rate_limited")


def test_replicas_count_a_token_exchanged_again_in_one_round_trip(env: ExchangeEnv, replicas: Replicas) -> None:
    a, b, _, _ = replicas
    token = mobile_token(env.idp)
    assert [exchange(url, token).status_code for url in (a, a, b, a)] == [200] * 4  # the client's limit: 4
    assert_refused(env, exchange(b, token), 429, "temporarily_unavailable", "rate_limited")
    assert_refused(env, exchange(a, token), 429, "temporarily_unavailable", "rate_limited")


def test_credentials_in_the_store_are_sealed(env: ExchangeEnv, replicas: Replicas) -> None:
    a, _, app_a, _ = replicas
    body = exchange(a, mobile_token(env.idp)).json()
    store_url = context_of_app(app_a).service.settings.store.url.get_secret_value()
    client = redis.Redis.from_url(store_url, decode_responses=True)
    try:
        sealed = [v for v in client.mget(client.keys("sts-broker:creds:*")) if v]
    finally:
        client.close()
    assert sealed and all(body["Credentials"]["SecretAccessKey"] not in v for v in sealed)
    assert all(body["Credentials"]["AccessKeyId"] not in v for v in sealed)


def test_jwks_down_closes_and_backs_off(env: ExchangeEnv) -> None:
    with extra_broker(env) as (url, _):
        env.idp.jwks_status = 503
        try:
            before, issued = env.idp.jwks_requests, env.issued()
            for n in range(10):
                assert_refused(env, exchange(url, mobile_token(env.idp)), 502, "temporarily_unavailable",
                               "idp_http_error" if n == 0 else "jwks_backoff")
            assert env.idp.jwks_requests - before == 1 and env.issued() == issued
        finally:
            env.idp.jwks_status = 200


def test_sts_down_closes(env: ExchangeEnv) -> None:
    aws = env.settings.aws.model_copy(update={"sts_endpoint_url": f"http://{LOOPBACK}:{free_port()}",
                                              "connect_timeout": timedelta(seconds=1)})
    with extra_broker(env, aws=aws) as (url, _):
        issued = env.issued()
        response = exchange(url, mobile_token(env.idp))
        assert_refused(env, response, 503, "temporarily_unavailable", "sts_unreachable")
        assert env.issued() == issued


def test_sts_refusal_is_invalid_target(env: ExchangeEnv) -> None:
    """The rules grant a role whose trust policy trusts another provider: AWS says AccessDenied."""
    issued = env.issued()
    response = exchange(env.url, mobile_token(env.idp, plan="untrusted"), resource=UNTRUSTED)
    assert_refused(env, response, 400, "invalid_target", "sts_access_denied")
    assert env.issued() == issued
