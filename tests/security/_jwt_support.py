"""Shared set-up for tests/security/test_jwt_*.py: one broker on loopback with token IdPs and OIDC IdPs that
all trust a hand-made issuer (tokens signed by PyJWT, or by hand for what PyJWT will not build), a strict
local AWS in its own account, and a socket listener that a hostile token points at and that must never be
contacted. Tests import the fixtures from here (tests/security has no conftest of its own).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette

from broker.config import load_settings
from broker.devstack import browser
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import SECRET_ENV, aws_client, write_config
from broker.token_exchange import GRANT_TYPE, ID_TOKEN_TYPE
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.support.token_issuer import TokenIssuer, public_jwk, running_issuer

ACCOUNT = "555566667777"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SecMinted"
SEC_AUD, MULTI_AUD, ROTATE_AUD = "sec-client", "multi-client", "rotate-client"
OIDC_CLIENT = "hostile-client"
MAX_AGE, UNKNOWN_KID_INTERVAL = 3.0, 1.0  # the `rotate` IdP's JWKS timing (short, for real-time tests)


# ---- a hand-made issuer that can publish several keys and withdraw them -----------------------------------


@dataclass
class RotatingIssuer(TokenIssuer):
    """A TokenIssuer whose JWKS lists `published` (kid -> key); `self.key`/`self.kid` sign by default."""

    published: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    jwks_delay: float = 0.0  # seconds the JWKS endpoint waits before answering (a slow IdP)

    def jwks(self) -> dict[str, Any]:
        if self.jwks_delay:
            time.sleep(self.jwks_delay)
        keys = self.published or {self.kid: self.key}
        return {"keys": [public_jwk(key, kid) for kid, key in keys.items()]}


# ---- tokens built by hand: any header or payload text, signed for real -----------------------------------


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_raw(header: str, payload: str, key: rsa.RSAPrivateKey) -> str:
    """A compact JWS over exactly these header and payload texts (duplicate names, odd types...), RS256-signed
    with `key`, so a refusal is the broker's reading of the JSON, not a bad signature."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


HEADER = '{"alg":"RS256","kid":"KID"}'  # KID: replaced by the issuer's kid where a test signs it


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- a listener that must never be contacted -------------------------------------------------------------


class Listener:
    """A TCP socket on loopback that records every connection made to it (a jku/x5u target)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://{LOOPBACK}:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


# ---- the broker under attack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SecEnv:
    url: str
    app: Starlette
    aws: LocalAws
    idp: TokenIssuer  # the issuer every IdP below trusts, but `rotate`
    rotating: RotatingIssuer  # the `rotate` token IdP's own issuer (keys come and go)
    listener: Listener
    audit_path: Path

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def issued(self) -> int:
        return sum(e["event"] in {"credentials_issued", "console_issued"} for e in self.events())

    def sts_calls(self) -> int:
        return int(context_of_app(self.app).service.token_exchange.cache.issued)


def _idps(issuer: str, rotating: str) -> dict[str, dict[str, Any]]:
    token = {"type": "token", "issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
    return {
        # Tokens up to STS's 20,000 bytes, so a 5,000-deep header reaches the JSON reading.
        "sec": {**token, "id": "sec", "client_ids": [SEC_AUD], "require_email_verified": True,
                "max_token_bytes": 20000},
        # More than RS256 allowed: an ES256 or PS256 header then meets the RSA key itself.
        "secmulti": {**token, "id": "secmulti", "client_ids": [MULTI_AUD], "algorithms": ["RS256", "ES256", "PS256"]},
        "rotate": {"type": "token", "id": "rotate", "issuer": rotating, "jwks_uri": f"{rotating}/jwks",
                   "client_ids": [ROTATE_AUD], "jwks_max_age": f"{int(MAX_AGE)}s",
                   "jwks_unknown_kid_interval": f"{int(UNKNOWN_KID_INTERVAL)}s"},
        # A browser IdP that takes ID tokens up to 64 KB, so a 10,000-deep header reaches the JSON parser.
        "hostile": {"id": "hostile", "type": "oidc", "name": "Hostile IdP", "issuer": issuer,
                    "client_id": OIDC_CLIENT, "client_secret": "hostile-client-secret", "max_token_bytes": 65536},
    }


_RULES = {"version": 1, "rules": [
    {"id": "sec-tokens", "idps": ["sec", "secmulti", "rotate"],
     "grant": [{"role": ROLE, "session_name": "{subject}"}]},
    {"id": "hostile-logins", "idps": ["hostile"], "grant": [{"role": ROLE, "session_name": "{subject}"}]},
]}


def _register_iam(aws: LocalAws, broker_url: str) -> None:
    iam = aws_client(aws, "iam")
    arn = iam.create_open_id_connect_provider(Url=broker_url, ClientIDList=["sts.amazonaws.com"],
                                              ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    host = arn.split(":oidc-provider/", 1)[1]
    iam.create_role(RoleName="SecMinted", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": arn},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
            "Condition": {"StringEquals": {f"{host}:aud": "sts.amazonaws.com"}}}]}))


_SHARED: list[SecEnv] = []  # one broker for every test_jwt_* module (each module imports the fixture)


@contextmanager
def _running_env(workdir: Path) -> Iterator[SecEnv]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    rules = workdir / "jwt-rules.yaml"
    rules.write_text(yaml.safe_dump(_RULES))
    listener = Listener()
    with running_issuer() as idp, running_issuer(RotatingIssuer()) as rotating, \
            run_local_aws(account_id=ACCOUNT) as aws:
        assert isinstance(rotating, RotatingIssuer)
        port = free_port()  # picked last, just before the broker binds it (other suites pick ports too)
        url = f"http://{LOOPBACK}:{port}"
        _register_iam(aws, url)
        overrides = {"rate_limits": {"token_exchange_per_client": 100000, "token_exchange_per_subject": 100000,
                                     "login_starts": 100000}}
        config = write_config(workdir, url, idp.url, aws, rules, _idps(idp.url, rotating.url), overrides)
        settings = load_settings(config)
        app = create_app(settings)
        try:
            with asgi_server(app, port):
                yield SecEnv(url, app, aws, idp, rotating, listener, Path(settings.audit.path))
        finally:
            listener.close()


@pytest.fixture(scope="session")
def sec_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecEnv]:
    """Pytest makes one instance per importing module: the first builds the broker, the others share it."""
    if _SHARED:
        yield _SHARED[0]
        return
    with _running_env(tmp_path_factory.mktemp("jwt-security")) as env:
        _SHARED.append(env)
        try:
            yield env
        finally:
            _SHARED.clear()


@pytest.fixture
def untouched(sec_env: SecEnv) -> Iterator[None]:
    """Around a test of refusals: nothing issued, no STS call, the listener never contacted."""
    issued, calls = sec_env.issued(), sec_env.sts_calls()
    yield
    assert sec_env.issued() == issued and sec_env.sts_calls() == calls, "a refused request issued or called STS"
    assert sec_env.listener.connections == 0, "the broker contacted a URL a token named"


# ---- driving the two entry points ------------------------------------------------------------------------


def sec_claims(idp: TokenIssuer, aud: str = SEC_AUD, **overrides: Any) -> dict[str, Any]:
    return idp.claims(**{"sub": f"u{secrets.token_hex(8)}", "aud": aud, **overrides})


def exchange(env: SecEnv, token: str) -> httpx.Response:
    data = {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN_TYPE}
    return httpx.post(f"{env.url}/oauth2/token", data=data, timeout=30)


def assert_exchange_refused(env: SecEnv, response: httpx.Response, reason: str, status: int = 400,
                            error: str = "invalid_grant") -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"] and body["error_id"], body
    assert "Credentials" not in body and "Traceback" not in response.text
    [event] = [e for e in env.events() if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason, event
    assert event["status"] == status


def start_login(env: SecEnv, client: httpx.Client) -> dict[str, str]:
    """GET /login/hostile; the authorization request's parameters (state, nonce, ...)."""
    authorize = urlsplit(browser.start_login(client, env.url, "hostile"))
    return {k: v[0] for k, v in parse_qs(authorize.query).items()}


def callback(env: SecEnv, client: httpx.Client, params: dict[str, str]) -> httpx.Response:
    """The browser comes back with a code; the broker redeems it at the issuer's real token endpoint."""
    query = urlencode({"code": "sec-code", "state": params["state"]})
    return client.get(f"{env.url}/oidc/hostile/callback?{query}", headers={"Accept": "application/json"})


def login_with(env: SecEnv, client: httpx.Client, make: Any) -> httpx.Response:
    """A whole browser login at `hostile` whose token endpoint answers the ID token make(nonce) returns."""
    params = start_login(env, client)
    env.idp.next_id_token = make(params["nonce"])
    return callback(env, client, params)


def assert_login_refused(env: SecEnv, client: httpx.Client, response: httpx.Response, reason: str,
                         status: int = 401) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["error"] == reason and body["message"] and body["error_id"], body
    assert "Traceback" not in response.text
    [event] = [e for e in env.events() if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status
    assert client.cookies.get("sts_broker_session") is None


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with browser.browser() as c:
        yield c
