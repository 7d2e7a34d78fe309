"""Shared pieces of the web and log-hygiene attack suites (tests/security/test_web_*.py, test_logs_*.py).

A whole stack on loopback (strict local AWS, oidc-provider-mock, the pysaml2 IdP, a hand-made OIDC issuer
for both a browser IdP and a `type: token` IdP), built once per test session however many of these files
run: its IAM lives in an account of its own, so it never meets the flow tests' stack in moto's
process-wide state. `make_stack` also runs the broker as a real `sts-broker serve` process.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.stack import (
    SAML_PROVIDER_NAME,
    DevStack,
    aws_client,
    run_stack,
    saml_trust_policy,
    serve_in_thread,
    trust_policy,
)
from tests.support.token_issuer import TokenIssuer, running_issuer

FLOW_RULES = Path(__file__).resolve().parents[1] / "flows" / "rules.yaml"
FLOW_ACCOUNT = "123456789012"
JSON = {"Accept": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HANDMADE_SECRET = "handmade-client-secret-" + secrets.token_urlsafe(12)
TOKEN_AUD = "web-app"


def rules_for(account: str) -> str:
    """The flow tests' rules in another account, plus a rule for the `tokapp` token IdP."""
    text = FLOW_RULES.read_text().replace(FLOW_ACCOUNT, account)
    return text + (f"  - id: token-app\n    idps: [tokapp]\n    grant:\n"
                   f"      - role: arn:aws:iam::{account}:role/TokenApp\n        session_name: \"{{subject}}\"\n")


def role(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


class Stack:
    """A DevStack plus the hand-made issuer and the account its roles live in."""

    def __init__(self, dev: DevStack, handmade: TokenIssuer, account: str) -> None:
        self.dev, self.handmade, self.account = dev, handmade, account
        self.url = dev.broker_url

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.dev.audit_path.read_text().splitlines()]

    def issued(self) -> int:
        return sum(e["event"] in ("credentials_issued", "console_issued") for e in self.events())


def make_stack(exits: ExitStack, workdir: Path, account: str, serve_broker: Any = serve_in_thread,
               overrides: dict[str, Any] | None = None) -> Stack:
    handmade = exits.enter_context(running_issuer())
    rules = workdir / "rules-src.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    rules.write_text(rules_for(account))
    extra: dict[str, dict[str, Any]] = {
        "handmade": {"id": "handmade", "type": "oidc", "name": "Hand-made IdP", "issuer": handmade.url,
                     "client_id": "client-1", "client_secret": HANDMADE_SECRET},
        "tokapp": {"id": "tokapp", "type": "token", "issuer": handmade.url, "jwks_uri": f"{handmade.url}/jwks",
                   "client_ids": [TOKEN_AUD]},
    }
    dev = exits.enter_context(run_stack(workdir / "stack", rules=rules, extra_idps=extra, account_id=account,
                                        overrides={"rate_limits": {"login_starts": 100000}, **(overrides or {})},
                                        serve_broker=serve_broker))
    iam = aws_client(dev.aws, "iam")
    provider = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    host = provider.split(":oidc-provider/", 1)[1]
    iam.create_role(RoleName="TokenApp", AssumeRolePolicyDocument=trust_policy(provider, host, "tokapp:*"))
    iam.create_role(RoleName="SamlOnly", AssumeRolePolicyDocument=saml_trust_policy(
        f"arn:aws:iam::{account}:saml-provider/{SAML_PROVIDER_NAME}"))
    return Stack(dev, handmade, account)


_SHARED: dict[str, Stack] = {}


@pytest.fixture
def web_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Stack:
    """One stack for every file of the web suite (a module-level cache, closed when the session ends)."""
    if "web" not in _SHARED:
        exits = ExitStack()
        request.config.add_cleanup(exits.close)
        _SHARED["web"] = make_stack(exits, tmp_path_factory.mktemp("web-stack"), "210987654321")
    return _SHARED["web"]


@contextmanager
def logged_in(stack: Stack, user: str = "bob") -> Iterator[tuple[httpx.Client, str]]:
    """A browser signed in at the dev IdP, and its CSRF token."""
    with browser.browser() as client:
        landed = browser.login(client, stack.url, "dev", user)
        assert landed.status_code == 303, landed.text[:200]
        yield client, browser.roles(client, stack.url)["csrf_token"]


def handmade_login(stack: Stack, client: httpx.Client, sub: str = "hm-user") -> tuple[httpx.Response, dict[str, str]]:
    """A browser login at the hand-made IdP; returns the callback's answer and every secret of the login:
    the ID token, the code, the state, the PKCE verifier and the client secret as sent."""
    authorize = urlsplit(browser.start_login(client, stack.url, "handmade"))
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    idp = stack.handmade
    idp.next_id_token = idp.sign(idp.claims(nonce=params["nonce"], sub=sub, aud="client-1"))
    code = "code-" + secrets.token_urlsafe(24)
    response = client.get(f"{stack.url}/oidc/handmade/callback?{urlencode({'code': code, 'state': params['state']})}")
    sent = idp.token_requests[-1]
    return response, {"id_token": idp.next_id_token, "code": code, "state": params["state"],
                      "nonce": params["nonce"], "code_verifier": sent["code_verifier"],
                      "client_basic_auth": sent["authorization"].removeprefix("Basic ")}


def exchange(stack: Stack, token: str) -> httpx.Response:
    return httpx.post(f"{stack.url}/oauth2/token", headers=FORM, timeout=20, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"})


def all_loggers_debug() -> None:
    """What a deployment might do after start: every logger, the root and each library's, at DEBUG."""
    import logging

    logging.getLogger().setLevel(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)


def page_and_headers(response: httpx.Response) -> str:
    """Everything a browser gets from one response: status line, headers (cookies included) and body."""
    head = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    return f"{response.status_code}\n{head}\n\n{response.text}"


def iter_hosts() -> Iterator[str]:
    yield from ("evil.example", "evil.example:8443", "broker.example.com.evil.example")


def saml_answer(stack: Stack, client: httpx.Client, user: str = "alice") -> tuple[str, dict[str, str]]:
    """A genuine SAML login up to the ACS post: GET /login/devsaml, sign in at the pysaml2 IdP; returns the
    ACS URL and the fields the IdP's auto-submitting form would post (not posted yet)."""
    start = client.get(f"{stack.url}/login/devsaml")
    assert start.status_code == 303, start.text[:200]
    form_page = client.get(start.headers["location"])
    fields = dict(re.findall(r'name="(SAMLRequest|RelayState)" value="([^"]*)"', form_page.text))
    answer = client.post(urljoin(start.headers["location"], "/sso/login"),
                         data={"username": user, **{k: html.unescape(v) for k, v in fields.items()}})
    match = re.search(r'action="([^"]+)"', answer.text)
    assert match is not None, answer.text[:200]
    posted = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', answer.text))
    return html.unescape(match.group(1)), {k: html.unescape(v) for k, v in posted.items()}


def assert_refused(stack: Stack, response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The broker's refusal: status, JSON body with the reason, and the audit event of that error id."""
    assert response.status_code == status, response.text[:300]
    body: dict[str, Any] = response.json()
    assert body["error"] == reason and body["message"] and body["error_id"], body
    [event] = [e for e in stack.events() if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status
    return event
