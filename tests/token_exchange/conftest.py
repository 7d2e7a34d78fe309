"""A broker with `type: token` IdPs on loopback, its own strict local AWS (account 111122223333, so its IAM
never meets the flow tests' account in moto's process-wide state), and a hand-made issuer whose tokens
PyJWT signs. The app object is kept so tests can count STS calls and JWKS fetches from the inside too."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from broker.audit import AuditLog
from broker.config import load_settings
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import SECRET_ENV, aws_client, write_config
from broker.settings import Settings
from broker.token_exchange import GRANT_TYPE, ID_TOKEN_TYPE
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.support.token_issuer import TokenIssuer, running_issuer

ACCOUNT = "111122223333"
RULES = Path(__file__).with_name("rules.yaml")
PASSTHROUGH = f"arn:aws:iam::{ACCOUNT}:role/MobilePassthrough"
MINTED = f"arn:aws:iam::{ACCOUNT}:role/MobileMinted"
UNTRUSTED = f"arn:aws:iam::{ACCOUNT}:role/MobileUntrusted"
MOBILE_AUD, ANDROID, IOS = "mobile-server", "mobile-android", "mobile-ios"
ONCE_AUD = "once-server"
GOOGLE_AUD = "1234-server.apps.googleusercontent.com"
GOOGLE_ANDROID = "1234-android.apps.googleusercontent.com"
GOOGLE_ISS = "https://accounts.google.com"
ORIGIN = "https://app.example.com"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class ExchangeEnv:
    url: str
    app: Starlette
    aws: LocalAws
    idp: TokenIssuer
    settings: Settings
    audit_path: Path

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def issued(self) -> int:
        return sum(e["event"] == "credentials_issued" for e in self.events())

    def sts_calls(self) -> int:
        return int(context_of_app(self.app).service.token_exchange.cache.issued)


def token_idps(issuer: str) -> dict[str, dict[str, Any]]:
    return {
        # Generic OIDC: JWKS found through discovery; azp must be one of the app's client ids.
        "mobile": {"id": "mobile", "type": "token", "name": "Mobile app", "issuer": issuer,
                   "client_ids": [MOBILE_AUD], "authorized_parties": [ANDROID, IOS], "provides": ["plan"]},
        # The Google preset, keys served by the hand-made issuer instead of Google's JWKS URI.
        "gmobile": {"id": "gmobile", "type": "token", "preset": "google", "jwks_uri": f"{issuer}/jwks",
                    "client_ids": [GOOGLE_AUD], "authorized_parties": [GOOGLE_ANDROID],
                    "hosted_domains": ["example.com"], "require_email_verified": True},
        # Single-use tokens.
        "oncemobile": {"id": "oncemobile", "type": "token", "issuer": issuer, "jwks_uri": f"{issuer}/jwks",
                       "client_ids": [ONCE_AUD], "replay": "once"},
    }


def _trust(provider_arn: str, conditions: dict[str, Any], actions: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": actions, "Condition": conditions}]})


def register_iam(aws: LocalAws, broker_url: str, idp_url: str) -> None:
    """IAM trusts the hand-made issuer directly (pass-through) and the broker (minted)."""
    iam = aws_client(aws, "iam")
    idp_arn = iam.create_open_id_connect_provider(Url=idp_url, ClientIDList=[MOBILE_AUD, ONCE_AUD],
                                                  ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    idp_host = idp_arn.split(":oidc-provider/", 1)[1]
    broker_arn = iam.create_open_id_connect_provider(Url=broker_url, ClientIDList=["sts.amazonaws.com"],
                                                     ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    broker_host = broker_arn.split(":oidc-provider/", 1)[1]
    iam.create_role(RoleName="MobilePassthrough", AssumeRolePolicyDocument=_trust(
        idp_arn, {"StringEquals": {f"{idp_host}:aud": [MOBILE_AUD, ONCE_AUD]}}, ["sts:AssumeRoleWithWebIdentity"]))
    iam.create_role(RoleName="MobileMinted", AssumeRolePolicyDocument=_trust(
        broker_arn, {"StringEquals": {f"{broker_host}:aud": "sts.amazonaws.com"},
                     "StringLike": {f"{broker_host}:sub": ["mobile:*", "gmobile:*"]}},
        ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]))
    iam.create_role(RoleName="MobileUntrusted", AssumeRolePolicyDocument=_trust(
        f"arn:aws:iam::{ACCOUNT}:oidc-provider/other.example.com", {}, ["sts:AssumeRoleWithWebIdentity"]))


@pytest.fixture(scope="session")
def app_idp() -> Iterator[TokenIssuer]:
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory, app_idp: TokenIssuer) -> Iterator[ExchangeEnv]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    workdir = tmp_path_factory.mktemp("exchange")
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with run_local_aws(account_id=ACCOUNT) as aws, ExitStack() as stack:
        register_iam(aws, url, app_idp.url)
        overrides = {"rate_limits": {"token_exchange_per_client": 100000, "token_exchange_per_subject": 100000},
                     "token_exchange": {"cors_origins": [ORIGIN]}}
        config = write_config(workdir, url, app_idp.url, aws, RULES, token_idps(app_idp.url), overrides)
        settings = load_settings(config)
        app = create_app(settings)
        stack.enter_context(asgi_server(app, port))
        yield ExchangeEnv(url, app, aws, app_idp, settings, Path(settings.audit.path))


@contextmanager
def extra_broker(env: ExchangeEnv, **updates: Any) -> Iterator[tuple[str, Starlette]]:
    """Another broker on the same config (same public URL and keys, so what it mints is trusted) with some
    settings changed, writing to the same audit log."""
    app = create_app(env.settings.model_copy(update=updates), audit=AuditLog(str(env.audit_path)))
    with asgi_server(app) as port:
        yield f"http://{LOOPBACK}:{port}", app


def new_subject() -> str:
    return f"u{uuid.uuid4().hex[:16]}"


def mobile_claims(idp: TokenIssuer, **overrides: Any) -> dict[str, Any]:
    return idp.claims(**{"sub": new_subject(), "aud": MOBILE_AUD, "azp": ANDROID, **overrides})


def mobile_token(idp: TokenIssuer, **overrides: Any) -> str:
    return idp.sign(mobile_claims(idp, **overrides))


def google_token(idp: TokenIssuer, **overrides: Any) -> str:
    claims = {"iss": GOOGLE_ISS, "sub": str(uuid.uuid4().int)[:21], "aud": GOOGLE_AUD, "azp": GOOGLE_ANDROID,
              "hd": "example.com", "email": "ann@example.com", "email_verified": True, **overrides}
    return idp.sign(idp.claims(**claims))


def form(token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN_TYPE, **extra}


def exchange(url: str, token: str, *, headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    return httpx.post(f"{url}/oauth2/token", data=form(token, **extra), headers=headers, timeout=20)


def assert_refused(env: ExchangeEnv, response: httpx.Response, status: int, error: str, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:400]
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error and body["error_description"] and body["error_id"], body
    assert "AccessKeyId" not in response.text and "Credentials" not in body
    [event] = [e for e in env.events() if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason, event
    assert event["oauth_error"] == error and event["status"] == status
    return body
