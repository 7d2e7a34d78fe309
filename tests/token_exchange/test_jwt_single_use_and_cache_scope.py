"""Finding 7 (token exchange): a `replay: once` token is used up only by a request that reaches STS (every
refusal that needs no STS comes first), atomically; pass-through credentials are cached per what STS is
shown, so one app's credentials are never handed out for another app's token of the same person."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from broker.issuers.sts_http import HttpStsClient
from broker.web.context import context_of_app
from tests.token_exchange.conftest import (
    IOS,
    MINTED,
    ONCE_AUD,
    PASSTHROUGH,
    UNTRUSTED,
    ExchangeEnv,
    assert_refused,
    exchange,
    extra_broker,
    form,
    mobile_claims,
)


def creds_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:400]
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def once_broker(env: ExchangeEnv, tmp_path: Path) -> Iterator[tuple[str, Starlette]]:
    """The suite's rules plus two grants for single-use tokens: a second role (so `resource` is needed) and a
    role whose trust policy AWS refuses."""
    rules = yaml.safe_load(env.settings.rules.read_text())
    rules["rules"].append({"id": "once-pro", "idps": ["oncemobile"], "when": {"claims.plan": {"equals": "pro"}},
                           "grant": [{"role": MINTED, "session_name": "{subject}"}]})
    rules["rules"].append({"id": "once-untrusted", "idps": ["oncemobile"],
                           "when": {"claims.plan": {"equals": "untrusted"}},
                           "grant": [{"role": UNTRUSTED, "token": "passthrough", "session_name": "{subject}"}]})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    with extra_broker(env, rules=path) as broker:
        yield broker


def once_token(env: ExchangeEnv, **claims: Any) -> str:
    return env.idp.sign(mobile_claims(env.idp, aud=ONCE_AUD, azp=None, **claims))


def test_refusals_before_sts_leave_a_single_use_token_unused(env: ExchangeEnv,
                                                              once_broker: tuple[str, Starlette]) -> None:
    url, app = once_broker
    token = once_token(env, plan="pro")
    calls, issued = context_of_app(app).service.token_exchange.cache.issued, env.issued()
    # Two roles and no `resource`: refused, the token not used up.
    body = assert_refused(env, exchange(url, token), 400, "invalid_request", "resource_required")
    assert body["resources"] == sorted([MINTED, PASSTHROUGH])
    # A role not granted to it: refused, not used up either.
    assert_refused(env, exchange(url, token, resource=UNTRUSTED), 400, "invalid_target", "role_not_granted")
    assert context_of_app(app).service.token_exchange.cache.issued == calls and env.issued() == issued
    # The request that reaches STS uses it up; the next one is a replay.
    assert creds_of(exchange(url, token, resource=PASSTHROUGH))["role_arn"] == PASSTHROUGH
    assert_refused(env, exchange(url, token, resource=PASSTHROUGH), 400, "invalid_grant", "token_replayed")


def test_single_use_token_is_used_up_before_sts_even_when_sts_refuses(env: ExchangeEnv,
                                                                     once_broker: tuple[str, Starlette]) -> None:
    url, app = once_broker
    token = once_token(env, plan="untrusted")
    calls = context_of_app(app).service.token_exchange.cache.issued
    assert_refused(env, exchange(url, token, resource=UNTRUSTED), 400, "invalid_target", "sts_access_denied")
    assert context_of_app(app).service.token_exchange.cache.issued == calls + 1
    # STS saw it: it is spent, and a retry does not reach STS again.
    assert_refused(env, exchange(url, token, resource=UNTRUSTED), 400, "invalid_grant", "token_replayed")
    assert context_of_app(app).service.token_exchange.cache.issued == calls + 1


def test_single_use_is_atomic_under_concurrency(env: ExchangeEnv, once_broker: tuple[str, Starlette]) -> None:
    url, _ = once_broker
    token = once_token(env)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(*[client.post(f"{url}/oauth2/token", data=form(token))
                                               for _ in range(8)]))

    answers = asyncio.run(burst())
    assert sorted(a.status_code for a in answers) == [200] + [400] * 7
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}


def test_passthrough_credentials_follow_the_token_sts_sees(env: ExchangeEnv) -> None:
    """Two apps of one person (same iss and sub, another azp): two STS calls, each with its own token. A
    fresh token of the same app (another iat) reuses the first app's credentials."""
    config = env.settings.token_exchange.model_copy(update={"sts_transport": "event_loop"})
    with extra_broker(env, token_exchange=config) as (url, app):
        sent: list[str] = []
        sts = context_of_app(app).service.token_exchange.sts
        assert isinstance(sts, HttpStsClient)
        wire = sts._call

        async def recording_call(request: bytes) -> Any:  # the request bytes the pool writes
            sent.append(dict(parse_qsl(request.split(b"\r\n\r\n", 1)[1].decode()))["WebIdentityToken"])
            return await wire(request)

        sts._call = recording_call  # type: ignore[method-assign,assignment]
        claims = mobile_claims(env.idp)
        android, ios = env.idp.sign(claims), env.idp.sign({**claims, "azp": IOS})
        first = creds_of(exchange(url, android))["Credentials"]
        second = creds_of(exchange(url, ios))["Credentials"]
        assert second["AccessKeyId"] != first["AccessKeyId"] and sent == [android, ios]
        fresh = env.idp.sign({**claims, "iat": claims["iat"] - 5, "exp": claims["exp"] + 5, "jti": "another"})
        assert creds_of(exchange(url, fresh))["Credentials"] == first and len(sent) == 2
        again = creds_of(exchange(url, ios))["Credentials"]
        assert again == second and len(sent) == 2
