"""Findings 3, 6 and 7 (issue 11) through real HTTP: POST /oauth2/token with ID tokens PyJWT signs, the broker on
uvicorn, the strict local AWS judging what reaches STS. Two people whose emails differ by a Unicode look-alike
get different session names, source identities, tags and policy paths; role claims outside the allow pattern
(another path segment, a Cyrillic letter, a trailing newline) are refused before any STS call; a kid or a
resource with a trailing newline is refused."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
import yaml

from broker.config import load_settings
from broker.devstack.local_aws import run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import SECRET_ENV, aws_client, write_config
from broker.issuers.sts_http import HttpStsClient
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.support.token_issuer import running_issuer
from tests.token_exchange.conftest import ExchangeEnv, assert_refused, exchange, mobile_claims, token_idps

ACCOUNT = "646464646464"  # this module's own account in moto's process-wide state
NAMED, HOME = f"arn:aws:iam::{ACCOUNT}:role/RulesNamed", f"arn:aws:iam::{ACCOUNT}:role/RulesHome"
ADFS_DEV, ADFS_DEEP = f"arn:aws:iam::{ACCOUNT}:role/ADFS-Dev", f"arn:aws:iam::{ACCOUNT}:role/ADFS-x/Admin"
KAREN, KELVIN_KAREN = "karen@example.com", "\u212aaren@example.com"
RULES: dict[str, Any] = {"version": 1, "rules": [
    {"id": "named", "idps": ["mobile"], "when": {"claims.aws_roles": {"absent": True}}, "grant": [
        {"role": NAMED, "session_name": "{email|lower}", "source_identity": "{email|lower}",
         "tags": {"who": "{email|lower}"}},
        {"role": HOME, "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::home/{email|lower}/*"}]}}]},
    {"id": "from-claim", "idps": ["mobile"], "grant": [{"roles_from": {
        "claim": "aws_roles", "allow": ["arn:aws:iam::*:role/ADFS-*"], "accounts": [ACCOUNT]}}]},
]}


def _register_iam(env_aws: Any, broker_url: str) -> None:
    iam = aws_client(env_aws, "iam")
    provider = iam.create_open_id_connect_provider(Url=broker_url, ClientIDList=["sts.amazonaws.com"],
                                                   ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    host = provider.split(":oidc-provider/", 1)[1]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider},
        "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"],
        "Condition": {"StringEquals": {f"{host}:aud": "sts.amazonaws.com"}}}]})
    # ADFS-x/Admin exists and trusts the broker: if the broker let the claim through, STS would issue.
    for path, name in (("/", "RulesNamed"), ("/", "RulesHome"), ("/", "ADFS-Dev"), ("/ADFS-x/", "Admin")):
        iam.create_role(Path=path, RoleName=name, AssumeRolePolicyDocument=trust)


@pytest.fixture(scope="module")
def rules_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeEnv]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    workdir = tmp_path_factory.mktemp("rules-exchange")
    rules = workdir / "security-rules.yaml"
    rules.write_text(yaml.safe_dump(RULES, allow_unicode=True))
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with running_issuer() as idp, run_local_aws(account_id=ACCOUNT) as aws, ExitStack() as stack:
        _register_iam(aws, url)
        overrides = {"rate_limits": {"token_exchange_per_client": 100000, "token_exchange_per_subject": 100000},
                     "token_exchange": {"sts_transport": "event_loop"}}
        config = write_config(workdir, url, idp.url, aws, rules, {"mobile": token_idps(idp.url)["mobile"]}, overrides)
        settings = load_settings(config)
        app = create_app(settings)
        stack.enter_context(asgi_server(app, port))
        yield ExchangeEnv(url, app, aws, idp, settings, Path(settings.audit.path))


@pytest.fixture
def sent(rules_env: ExchangeEnv) -> Iterator[list[dict[str, str]]]:
    """The AssumeRoleWithWebIdentity parameters as the connection pool writes them to the wire."""
    sts, calls = context_of_app(rules_env.app).service.token_exchange.sts, []
    assert isinstance(sts, HttpStsClient)
    wire = sts._call

    async def recording(request: bytes) -> Any:
        calls.append(dict(parse_qsl(request.split(b"\r\n\r\n", 1)[1].decode())))
        return await wire(request)

    sts._call = recording  # type: ignore[method-assign,assignment]
    yield calls
    sts._call = wire  # type: ignore[method-assign]


def _issued(env: ExchangeEnv, email: str, **extra: Any) -> dict[str, Any]:
    response = exchange(env.url, env.idp.sign(mobile_claims(env.idp, email=email)), **extra)
    assert response.status_code == 200, response.text[:400]
    body: dict[str, Any] = response.json()
    return body


def _caller(env: ExchangeEnv, body: dict[str, Any]) -> str:
    c = body["Credentials"]
    sts = aws_client(env.aws, "sts", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                     aws_session_token=c["SessionToken"])
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def test_a_look_alike_email_never_shares_a_session_with_the_real_one(rules_env: ExchangeEnv,
                                                                     sent: list[dict[str, str]]) -> None:
    karen, kelvin = _issued(rules_env, KAREN, resource=NAMED), _issued(rules_env, KELVIN_KAREN, resource=NAMED)
    assert _caller(rules_env, karen) == f"arn:aws:sts::{ACCOUNT}:assumed-role/RulesNamed/{KAREN}"
    assert _caller(rules_env, kelvin) == f"arn:aws:sts::{ACCOUNT}:assumed-role/RulesNamed/=E2=84=AAaren@example.com"
    first, second = sent
    assert (first["RoleSessionName"], second["RoleSessionName"]) == (KAREN, "=E2=84=AAaren@example.com")
    tokens = [jwt.decode(c["WebIdentityToken"], options={"verify_signature": False}) for c in sent]
    assert [t["https://aws.amazon.com/source_identity"] for t in tokens] == [KAREN, "=E2=84=AAaren@example.com"]
    assert [t["https://aws.amazon.com/tags"]["principal_tags"]["who"] for t in tokens] == \
        [[KAREN], ["=E2=84=AAaren@example.com"]]


def test_a_look_alike_email_never_reaches_a_session_policy(rules_env: ExchangeEnv, sent: list[dict[str, str]]) -> None:
    _issued(rules_env, KAREN, resource=HOME)
    [call] = sent
    assert json.loads(call["Policy"])["Statement"][0]["Resource"] == f"arn:aws:s3:::home/{KAREN}/*"
    # The look-alike is not plain, so the policy grant is refused: the role is not theirs, nothing reaches STS.
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, email=KELVIN_KAREN))
    issued = rules_env.issued()
    assert_refused(rules_env, exchange(rules_env.url, token, resource=HOME), 400, "invalid_target", "role_not_granted")
    assert len(sent) == 1 and rules_env.issued() == issued


def test_role_claims_take_the_allowed_role(rules_env: ExchangeEnv) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, aws_roles=[ADFS_DEV]))
    body = exchange(rules_env.url, token).json()
    assert _caller(rules_env, body).startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/ADFS-Dev/")


@pytest.mark.parametrize("role", [ADFS_DEEP, ADFS_DEV.replace("Dev", "D\u0435v"), ADFS_DEV + "\n",
                                  ADFS_DEV.replace(ACCOUNT, ACCOUNT[:-1] + "\u0664")])
def test_role_claims_outside_the_allow_pattern_are_refused_before_sts(rules_env: ExchangeEnv, role: str,
                                                                      sent: list[dict[str, str]]) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, aws_roles=[role]))
    issued = rules_env.issued()
    assert_refused(rules_env, exchange(rules_env.url, token), 400, "invalid_target", "role_not_granted")
    assert_refused(rules_env, exchange(rules_env.url, token, resource=ADFS_DEEP), 400, "invalid_target",
                   "role_not_granted")
    assert sent == [] and rules_env.issued() == issued


def test_a_resource_with_a_trailing_newline_is_refused(rules_env: ExchangeEnv, sent: list[dict[str, str]]) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, email=KAREN))
    assert_refused(rules_env, exchange(rules_env.url, token, resource=NAMED + "\n"), 400, "invalid_target",
                   "resource_invalid")
    assert sent == []


def test_a_kid_with_a_trailing_newline_is_refused(rules_env: ExchangeEnv, sent: list[dict[str, str]]) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, email=KAREN), kid=rules_env.idp.kid + "\n")
    jwks_fetches = rules_env.idp.jwks_requests
    assert_refused(rules_env, exchange(rules_env.url, token, resource=NAMED), 400, "invalid_grant", "kid_invalid")
    assert sent == [] and rules_env.idp.jwks_requests == jwks_fetches  # judged on its shape, no key look-up
    httpx.get(f"{rules_env.url}/healthz", timeout=5).raise_for_status()


@pytest.mark.parametrize("claims", [
    {"sub": "\u212a" * 200}, {"sub": "s" * 3000}, {"email": "a\x00@example.com"}, {"email": "=" * 300},
    {"email": " "}, {"sub": "u", "email": "\u0301\u0301"}, {"email": "\U0001f600@example.com"},
])
def test_hostile_claim_values_are_issued_valid_or_refused_never_a_500(rules_env: ExchangeEnv,
                                                                      claims: dict[str, Any]) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, **claims))
    response = exchange(rules_env.url, token, resource=NAMED)
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 200:
        assert _caller(rules_env, response.json()).startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/RulesNamed/")


# A lone surrogate ("\ud800" in the token's JSON) is not Unicode text: every encoder after the parser (the
# subject's rate-limit key, the broker's minted token) would fail on it, so the token is refused where its JSON
# is parsed (broker/safe_json.py), before any key look-up.
@pytest.mark.parametrize("claims", [{"sub": "\ud800x"}, {"email": "\ud800@example.com"}, {"name": "x\udfff"}])
def test_lone_surrogates_in_claims_are_refused_not_a_500(rules_env: ExchangeEnv, sent: list[dict[str, str]],
                                                         claims: dict[str, Any]) -> None:
    token = rules_env.idp.sign(mobile_claims(rules_env.idp, **claims))
    assert_refused(rules_env, exchange(rules_env.url, token, resource=NAMED), 400, "invalid_grant",
                   "token_malformed")
    assert sent == []
