"""Token exchange end to end: real HTTP to uvicorn, tokens signed by PyJWT, the strict local AWS judging
what reaches STS (pass-through: the app's own token; minted: the broker's, with tags and a session policy)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
import yaml

from broker.devstack.stack import aws_client
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.token_exchange import CREDENTIALS_TYPE
from broker.web.context import context_of_app
from tests.token_exchange.conftest import (
    ACCOUNT,
    GOOGLE_ISS,
    MINTED,
    ORIGIN,
    PASSTHROUGH,
    ExchangeEnv,
    assert_refused,
    exchange,
    extra_broker,
    form,
    google_token,
    mobile_claims,
    mobile_token,
)


def creds_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:400]
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def caller_arn(env: ExchangeEnv, body: dict[str, Any]) -> str:
    c = body["Credentials"]
    sts = aws_client(env.aws, "sts", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                     aws_session_token=c["SessionToken"])
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def test_passthrough_single_role(env: ExchangeEnv) -> None:
    claims = mobile_claims(env.idp)
    body = creds_of(exchange(env.url, env.idp.sign(claims)))
    assert body["issued_token_type"] == CREDENTIALS_TYPE and body["token_type"] == "N_A"
    assert body["access_token"] == body["Credentials"]["SessionToken"]
    assert 3000 < body["expires_in"] <= 3600 and body["Credentials"]["Expiration"].endswith("Z")
    assert body["role_arn"] == PASSTHROUGH
    # The strict local AWS accepted the app's own token (registered provider, signature, aud) and issued.
    assert caller_arn(env, body) == f"arn:aws:sts::{ACCOUNT}:assumed-role/MobilePassthrough/{claims['sub']}"
    [event] = [e for e in env.events() if e.get("access_key_id") == body["Credentials"]["AccessKeyId"]]
    assert event["event"] == "credentials_issued" and event["passthrough"] is True and event["cached"] is False
    assert event["idp"] == "mobile" and event["subject"] == claims["sub"] and event["channel"] == "token_exchange"


def test_several_roles_need_a_resource(env: ExchangeEnv) -> None:
    token = mobile_token(env.idp, plan="pro")
    body = assert_refused(env, exchange(env.url, token), 400, "invalid_request", "resource_required")
    assert body["resources"] == sorted([MINTED, PASSTHROUGH])
    assert creds_of(exchange(env.url, token, resource=PASSTHROUGH))["role_arn"] == PASSTHROUGH
    assert creds_of(exchange(env.url, token, resource=MINTED))["role_arn"] == MINTED


@pytest.mark.parametrize("transport", ["event_loop", "boto3"])
def test_minted_carries_tags_and_session_policy_to_sts(env: ExchangeEnv, transport: str) -> None:
    """What reaches STS is recorded at each transport's last step before the wire: the broker's token with
    the user tag, the rendered policy."""
    config = env.settings.token_exchange.model_copy(update={"sts_transport": transport})
    with extra_broker(env, token_exchange=config) as (url, app):
        sent: list[dict[str, str]] = []
        sts = context_of_app(app).service.token_exchange.sts
        if transport == "boto3":
            def recording(request: Any, **_: Any) -> None:  # botocore's last hook before the wire
                body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
                sent.append(dict(parse_qsl(body.decode())))

            assert isinstance(sts, StsClient)
            sts._client.meta.events.register("before-send.sts.AssumeRoleWithWebIdentity", recording)
        else:
            assert isinstance(sts, HttpStsClient)
            wire = sts._call

            async def recording_call(request: bytes) -> Any:  # the request bytes the pool writes
                sent.append(dict(parse_qsl(request.split(b"\r\n\r\n", 1)[1].decode())))
                return await wire(request)

            sts._call = recording_call  # type: ignore[method-assign,assignment]
        claims = mobile_claims(env.idp, plan="pro")
        body = creds_of(exchange(url, env.idp.sign(claims), resource=MINTED))
    assert caller_arn(env, body).endswith(f":assumed-role/MobileMinted/{claims['sub']}")
    [call] = sent
    minted = jwt.decode(call["WebIdentityToken"], options={"verify_signature": False})
    assert minted["iss"] == env.url and minted["sub"] == f"mobile:{claims['sub']}"
    assert minted["https://aws.amazon.com/tags"]["principal_tags"] == {"user": [claims["sub"]]}
    policy = json.loads(call["Policy"])
    assert policy["Statement"][0]["Condition"]["StringLike"]["s3:prefix"] == [f"users/{claims['sub']}/*"]
    assert call["RoleSessionName"] == claims["sub"]


def test_google_preset_accepts_both_issuer_forms(env: ExchangeEnv) -> None:
    for iss in (GOOGLE_ISS, "accounts.google.com"):
        body = creds_of(exchange(env.url, google_token(env.idp, iss=iss)))
        assert body["role_arn"] == MINTED


def test_credentials_reused_while_valid_and_per_scope(env: ExchangeEnv) -> None:
    claims = mobile_claims(env.idp, plan="pro")
    calls = env.sts_calls()
    first = creds_of(exchange(env.url, env.idp.sign(claims), resource=PASSTHROUGH))
    # Another token of the same person (a fresh sign-in): same identity, same scope, same credentials.
    again = creds_of(exchange(env.url, env.idp.sign({**claims, "iat": claims["iat"] - 1}), resource=PASSTHROUGH))
    assert again["Credentials"] == first["Credentials"]
    other_scope = creds_of(exchange(env.url, env.idp.sign(claims), resource=MINTED))
    assert other_scope["Credentials"]["AccessKeyId"] != first["Credentials"]["AccessKeyId"]
    assert env.sts_calls() - calls == 2
    flags = [e["cached"] for e in env.events() if e.get("subject") == claims["sub"] and e["event"] ==
             "credentials_issued"]
    assert flags == [False, True, False]


def test_concurrent_requests_make_one_sts_call(env: ExchangeEnv) -> None:
    token = mobile_token(env.idp)
    calls = env.sts_calls()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(*[client.post(f"{env.url}/oauth2/token", data=form(token))
                                               for _ in range(12)]))

    answers = [creds_of(r) for r in asyncio.run(burst())]
    assert len({a["Credentials"]["AccessKeyId"] for a in answers}) == 1
    assert env.sts_calls() - calls == 1


def test_cache_off_calls_sts_every_time(env: ExchangeEnv) -> None:
    settings = env.settings.token_exchange.model_copy(update={"cache_credentials": False})
    with extra_broker(env, token_exchange=settings) as (url, app):
        token = mobile_token(env.idp)
        keys = {creds_of(exchange(url, token))["Credentials"]["AccessKeyId"] for _ in range(2)}
        assert len(keys) == 2 and context_of_app(app).service.token_exchange.cache.issued == 2


def test_replay_allowed_by_default_once_when_configured(env: ExchangeEnv) -> None:
    token = mobile_token(env.idp)
    assert creds_of(exchange(env.url, token))["Credentials"] == creds_of(exchange(env.url, token))["Credentials"]
    once = env.idp.sign(mobile_claims(env.idp, aud="once-server", azp=None))
    creds_of(exchange(env.url, once))
    issued = env.issued()
    assert_refused(env, exchange(env.url, once), 400, "invalid_grant", "token_replayed")
    assert env.issued() == issued


def test_cors(env: ExchangeEnv) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    ok = httpx.options(f"{env.url}/oauth2/token", headers=preflight)
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert ok.headers["access-control-allow-methods"] == "POST" and "access-control-allow-credentials" not in ok.headers
    evil = httpx.options(f"{env.url}/oauth2/token", headers={**preflight, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    allowed = exchange(env.url, mobile_token(env.idp), headers={"Origin": ORIGIN})
    assert creds_of(allowed) and allowed.headers["access-control-allow-origin"] == ORIGIN
    issued = env.issued()
    refused = exchange(env.url, mobile_token(env.idp), headers={"Origin": "https://evil.example"})
    assert_refused(env, refused, 400, "unauthorized_client", "origin_not_allowed")
    assert "access-control-allow-origin" not in refused.headers and env.issued() == issued


def test_openapi_describes_what_the_endpoint_answers(env: ExchangeEnv) -> None:
    doc = httpx.get(f"{env.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": env.url}]
    operation = doc["paths"]["/oauth2/token"]["post"]
    assert "application/x-www-form-urlencoded" in operation["requestBody"]["content"]
    schemas = doc["components"]["schemas"]
    body = creds_of(exchange(env.url, mobile_token(env.idp)))
    assert set(schemas["TokenExchangeResponse"]["required"]) <= set(body)
    assert set(schemas["TokenExchangeResponse"]["properties"]["Credentials"]["required"]) == set(body["Credentials"])
    refused = exchange(env.url, "not-a-jwt").json()
    assert set(schemas["OAuthError"]["required"]) <= set(refused)
    assert refused["error"] in schemas["OAuthError"]["properties"]["error"]["enum"]


def test_index_lists_browser_logins_only(env: ExchangeEnv) -> None:
    page = httpx.get(f"{env.url}/").text
    assert "/login/dev" in page and "/login/mobile" not in page and "gmobile" not in page
    assert httpx.get(f"{env.url}/login/mobile").status_code == 404


def test_new_rules_apply_at_once(env: ExchangeEnv, tmp_path: Path) -> None:
    """Decisions are remembered per token for a second, but never across a rules reload."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(env.settings.rules.read_text())
    with extra_broker(env, rules=rules) as (url, app):
        token = mobile_token(env.idp, plan="pro")
        assert exchange(url, token).json()["error"] == "invalid_request"  # two roles: choose one
        text = yaml.safe_load(rules.read_text())
        text["rules"] = [r for r in text["rules"] if r["id"] != "mobile-pro"]
        rules.write_text(yaml.safe_dump(text))
        assert context_of_app(app).service.rules_source.reload_if_changed()
        assert creds_of(exchange(url, token))["role_arn"] == PASSTHROUGH
