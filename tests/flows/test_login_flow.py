"""Whole logins over real HTTP: scripted browser -> broker (uvicorn) -> oidc-provider-mock -> strict local AWS."""

from __future__ import annotations

import configparser
import logging
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from broker.devstack import browser
from broker.devstack.stack import DevStack, aws_client
from tests.flows.conftest import UNTRUSTED_ROLE, audit_events

ADMIN = "arn:aws:iam::123456789012:role/DemoAdmin"
DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"
SAML_ONLY = "arn:aws:iam::123456789012:role/SamlOnly"


@contextmanager
def logged_in(stack: DevStack, user: str) -> Iterator[httpx.Client]:
    with browser.browser() as client:
        landed = browser.login(client, stack.broker_url, "dev", user)
        assert landed.status_code == 303 and landed.headers["location"] == "/roles"
        yield client


def test_alice_gets_working_credentials_and_console(stack: DevStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with logged_in(stack, "alice") as client:
        view = browser.roles(client, stack.broker_url)
        assert [r["role_arn"] for r in view["roles"]] == [ADMIN, DEV, SAML_ONLY, UNTRUSTED_ROLE]
        assert view["identity"]["email"] == "alice@example.com"
        response = browser.post_role(client, stack.broker_url, "credentials", ADMIN, view["csrf_token"])
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        creds = response.json()
        sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
        arn = sts.get_caller_identity()["Arn"]
        assert arn == "arn:aws:sts::123456789012:assumed-role/DemoAdmin/alice@example.com"
        lifetime = datetime.fromisoformat(creds["Expiration"]) - datetime.now(datetime.fromisoformat(
            creds["Expiration"]).tzinfo)
        assert 3000 < lifetime.total_seconds() <= 3600  # the rule's 1h, not moto's default
        console = browser.post_role(client, stack.broker_url, "console", ADMIN, view["csrf_token"])
        assert console.status_code == 303
        target = console.headers["location"]
        assert target.startswith(f"{stack.aws.federation_url}?Action=login&")
        query = parse_qs(urlsplit(target).query)
        assert query["Issuer"] == [stack.broker_url] and query["Destination"] == ["https://console.aws.amazon.com/"]
        page = client.get(target)
        assert page.status_code == 200 and "assumed-role/DemoAdmin/alice@example.com" in unescape(page.text)
    secrets = [creds["SecretAccessKey"], creds["SessionToken"], query["SigninToken"][0]]
    logged = caplog.text + stack.audit_path.read_text()
    assert not [s for s in secrets if s in logged]
    events = [e["event"] for e in audit_events(stack) if e.get("subject") == "alice"]
    for expected in ("login_succeeded", "decision", "credentials_issued", "console_issued"):
        assert expected in events


def test_credential_formats(stack: DevStack) -> None:
    with logged_in(stack, "bob") as client:
        view = browser.roles(client, stack.broker_url)
        assert [r["role_arn"] for r in view["roles"]] == [DEV]
        csrf = view["csrf_token"]
        process = browser.post_role(client, stack.broker_url, "credentials", DEV, csrf, format="credential_process")
        body = process.json()
        assert body["Version"] == 1 and isinstance(body["Version"], int)
        assert datetime.fromisoformat(body["Expiration"]).tzinfo is not None
        env = browser.post_role(client, stack.broker_url, "credentials", DEV, csrf, format="env").text
        exports = dict(shlex.split(line)[1].split("=", 1) for line in env.splitlines())
        assert set(exports) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                "AWS_CREDENTIAL_EXPIRATION"}
        ini = configparser.ConfigParser()
        ini.read_string(browser.post_role(client, stack.broker_url, "credentials", DEV, csrf, format="ini").text)
        assert ini["DemoDeveloper"]["aws_session_token"]
        sts = aws_client(stack.aws, "sts", aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
                         aws_session_token=exports["AWS_SESSION_TOKEN"])
        assert sts.get_caller_identity()["Arn"].endswith(":assumed-role/DemoDeveloper/bob@example.com")


def test_carol_is_denied_everything(stack: DevStack) -> None:
    with logged_in(stack, "carol") as client:
        view = browser.roles(client, stack.broker_url)
        assert view["roles"] == []
        page = client.get(f"{stack.broker_url}/roles")
        assert "access policy does not allow your account to use AWS roles" in page.text
        assert "no-contractors" not in page.text  # the words, never the rule
    [decision] = [e for e in audit_events(stack) if e["event"] == "decision" and e["subject"] == "carol"][-1:]
    assert decision["denied_by"] == ["no-contractors"] and decision["roles"] == []


def test_minted_token_verifies_independently(stack: DevStack) -> None:
    """The broker's discovery and JWKS let a verifier that shares no code with it (PyJWT) check its tokens."""
    with httpx.Client() as http:
        config = http.get(f"{stack.broker_url}/.well-known/openid-configuration").json()
        assert config["issuer"] == stack.broker_url
        jwks = jwt.PyJWKClient(config["jwks_uri"])
    from broker.config import load_idps  # the app's own pieces build one token to check
    from broker.issuers.signing import KeyRing
    from broker.issuers.web_identity import WebIdentityIssuer
    from broker.rules.evaluate import evaluate
    from broker.rules_source import load_rules
    from tests.factories import identity

    rules = load_rules(stack.settings.rules)
    assert load_idps(stack.settings.idp_configs)
    person = identity(idp="dev", groups=("platform-admins",), claims={"department": ("platform",)})
    grant = evaluate(rules, person).grant_for(ADMIN)
    assert grant is not None
    issuer = WebIdentityIssuer(KeyRing.load(stack.settings.keys), None,  # type: ignore[arg-type]
                               issuer=stack.broker_url, audience="sts.amazonaws.com",
                               lifetime=stack.settings.issuer.token_lifetime)
    token = issuer.mint(person, grant)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="sts.amazonaws.com",
                        issuer=stack.broker_url)
    assert claims["sub"] == "dev:00u1"
    assert claims["https://aws.amazon.com/tags"]["principal_tags"] == {"team": ["platform"]}


def test_logout_revokes_the_session(stack: DevStack) -> None:
    with logged_in(stack, "bob") as client:
        view = browser.roles(client, stack.broker_url)
        cookie = client.cookies.get("sts_broker_session")
        assert client.post(f"{stack.broker_url}/logout", data={"csrf_token": view["csrf_token"]}).status_code == 303
        assert client.get(f"{stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401
    with httpx.Client() as replay:  # the old cookie, replayed from elsewhere, is dead server-side
        replay.cookies.set("sts_broker_session", cookie or "")
        assert replay.get(f"{stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401


def test_session_rotates_at_login(stack: DevStack) -> None:
    with logged_in(stack, "bob") as client:
        first = client.cookies.get("sts_broker_session")
        browser.login(client, stack.broker_url, "dev", "alice")
        second = client.cookies.get("sts_broker_session")
        assert first and second and first != second
        assert browser.roles(client, stack.broker_url)["identity"]["subject"] == "alice"
    with httpx.Client() as old:
        old.cookies.set("sts_broker_session", first or "")
        assert old.get(f"{stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401


def test_health_and_issuer_documents(stack: DevStack) -> None:
    with httpx.Client(base_url=stack.broker_url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["ready"] is True
        keys = http.get("/.well-known/jwks.json").json()["keys"]
        assert keys and all("d" not in k and "p" not in k for k in keys)  # public parts only
        index = http.get("/")
        assert "Development IdP" in index.text and index.headers["x-frame-options"] == "DENY"


def test_metrics_count_events_by_reason_without_people(stack: DevStack) -> None:
    sample = 'sts_broker_events_total{event="request_failed",reason="unknown_idp"} '

    def unknown_idp_count(text: str) -> float:
        return sum(float(line.removeprefix(sample)) for line in text.splitlines() if line.startswith(sample))

    with httpx.Client(base_url=stack.broker_url) as http:
        before = unknown_idp_count(http.get("/metrics").text)
        for _ in range(2):
            http.get("/login/nope", headers={"Accept": "application/json"})
        text = http.get("/metrics").text
    assert unknown_idp_count(text) == before + 2
    assert 'sts_broker_request_seconds_count{method="GET",route="/login/{idp}",status="404"}' in text
    assert "alice" not in text and "@example.com" not in text


def test_signin_region_setting_reaches_minted_saml_assertions(stack: DevStack) -> None:
    import asyncio
    import base64

    from broker.audit import AuditLog
    from broker.service import BrokerService
    from tests.factories import identity

    aws = stack.settings.aws.model_copy(update={"signin_region": "eu-west-1"})
    service = BrokerService.build(stack.settings.model_copy(update={"aws": aws}), AuditLog(str(stack.audit_path)))
    try:
        alice = identity(idp="dev", email_verified=True, groups=("platform-admins",))
        grant = service.decide(alice).grant_for(SAML_ONLY)
        assert grant is not None and grant.via == "saml"
        xml = base64.b64decode(service.saml_issuer.mint(alice, grant)).decode()
        assert 'Recipient="https://eu-west-1.signin.aws.amazon.com/saml"' in xml
    finally:
        asyncio.run(service.close())
