"""Log hygiene: every flow through a real `sts-broker serve` whose every logger (root and each library's:
botocore, httpx, authlib, uvicorn ...) is set to DEBUG after start; then each secret the run produced,
in its obvious encodings, is searched for in everything the process wrote and in the audit log."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import httpx
import pytest

from broker.devstack import browser, sts_front
from broker.devstack.dev_saml_idp import browser_login
from broker.devstack.stack import SECRET_ENV
from broker.logs import quiet_chatty_loggers
from broker.settings import Settings
from tests.flows.test_forwarded import serving
from tests.security._web_support import (
    HANDMADE_SECRET,
    JSON,
    TOKEN_AUD,
    Stack,
    exchange,
    handmade_login,
    make_stack,
    role,
    saml_answer,
)

# `sts-broker serve`, and once the app is built every logger in the process at DEBUG: what a deployment's
# logging configuration or a debugging operator could do after start.
DEBUG_SERVE = """
import logging, sys
import broker.web.app as app
from broker.cli import main
settle = app.settle_heap
def settle_then_debug():
    settle()
    logging.getLogger().setLevel(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("botocore.endpoint").debug("debug logging is on")
app.settle_heap = settle_then_debug
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def debug_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    workdir = tmp_path_factory.mktemp("logs-stack")
    output = workdir / "serve-output.log"

    def serve(config: Path, settings: Settings, port: int) -> AbstractContextManager[object]:
        return serving(config, port=port, output=output, command=("-c", DEBUG_SERVE))

    with ExitStack() as exits:
        # boto3 for the exchange's STS calls too: botocore logs whole request and response bodies at DEBUG.
        stack = make_stack(exits, workdir, "210987654322", serve_broker=serve,
                           overrides={"token_exchange": {"sts_transport": "boto3"}})
        yield stack, output


def encodings(secret: str) -> set[str]:
    """The value and what it looks like URL-encoded, base64-encoded, JSON-escaped; a middle slice of a long
    one (a truncated log line)."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
             base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    if len(secret) >= 48:
        middle = len(secret) // 2
        forms.add(secret[middle - 16:middle + 16])
    return {f for f in forms if len(f) >= 12}


class Secrets:
    def __init__(self) -> None:
        self.found: dict[str, set[str]] = {}

    def add(self, kind: str, value: str | None) -> None:
        assert value, f"the run produced no {kind}"
        self.found.setdefault(kind, set()).add(value)

    def leaks(self, text: str) -> list[str]:
        return sorted({kind for kind, values in self.found.items() for value in values
                       for form in encodings(value) if form in text})


def _credentials(seen: Secrets, body: str) -> None:
    for name in ("SecretAccessKey", "SessionToken", "aws_secret_access_key", "aws_session_token",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        for match in re.findall(rf'{name}"?\s*[:=]\s*"?([A-Za-z0-9/+=]{{16,}})', body):
            seen.add("aws secret", match)


def oidc_flows(stack: Stack, seen: Secrets) -> None:
    """Browser login at the dev IdP (code, state, cookies), every credential format, the console."""
    with browser.browser() as client:
        callback = browser.authorize_at_idp(client, browser.start_login(client, stack.url, "dev"), "alice")
        query = parse_qs(urlsplit(callback).query)
        seen.add("authorization code", query["code"][0])
        seen.add("state", query["state"][0])
        assert client.get(callback).status_code == 303
        seen.add("session cookie", client.cookies.get("sts_broker_session"))
        csrf = browser.roles(client, stack.url)["csrf_token"]
        seen.add("csrf token", csrf)
        for arn in (role(stack.account, "DemoAdmin"), role(stack.account, "SamlOnly")):  # minted JWT, assertion
            for fmt in ("json", "credential_process", "env", "ini"):
                issued = browser.post_role(client, stack.url, "credentials", arn, csrf, format=fmt)
                assert issued.status_code == 200, issued.text[:300]
                _credentials(seen, issued.text)
        console = client.post(f"{stack.url}/roles/console", data={"role": role(stack.account, "DemoAdmin"),
                                                                  "csrf_token": csrf})
        assert console.status_code == 303
        seen.add("sign-in token", parse_qs(urlsplit(console.headers["location"]).query)["SigninToken"][0])
        # Refusals carry secrets too: a replayed callback, a forged CSRF token.
        assert client.get(callback).status_code >= 400
        assert client.post(f"{stack.url}/roles/credentials", data={"role": "x", "csrf_token": "forged"}
                           ).status_code == 403
    with browser.browser() as client:
        response, handmade = handmade_login(stack, client)
        assert response.status_code == 303
        for kind, value in handmade.items():
            seen.add(kind, value)
        seen.add("session cookie", client.cookies.get("sts_broker_session"))


def saml_flows(stack: Stack, seen: Secrets) -> None:
    with browser.browser() as client:
        client.base_url = httpx.URL(stack.url)
        acs, fields = saml_answer(stack, client, "alice")
        seen.add("SAMLResponse", fields["SAMLResponse"])
        decoded = base64.b64decode(fields["SAMLResponse"]).decode()
        for value in re.findall(r"SignatureValue>([^<]+)<", decoded):
            seen.add("SAML signature", value.strip())
        refused = client.post(acs, data={**fields, "RelayState": "//evil.example"}, headers=JSON)
        assert refused.status_code == 400
        assert client.post(acs, data=fields).status_code == 303
        seen.add("session cookie", client.cookies.get("sts_broker_session"))
        assert client.post(acs, data=fields).status_code >= 400  # a replay, refused
    with browser.browser() as client:
        assert browser_login(client, stack.url, "devsaml", "alice").status_code == 303


def exchange_flows(stack: Stack, seen: Secrets) -> None:
    token = stack.handmade.token(aud=TOKEN_AUD, sub="tok-user")
    seen.add("id token", token)
    answer = exchange(stack, token)
    assert answer.status_code == 200, answer.text[:300]
    _credentials(seen, answer.text)
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    seen.add("id token", forged)
    assert exchange(stack, forged).status_code == 400
    wrong_aud = stack.handmade.token(aud="someone-else")
    seen.add("id token", wrong_aud)
    assert exchange(stack, wrong_aud).status_code == 400


def test_no_secret_reaches_any_log(debug_stack: tuple[Stack, Path], monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    stack, output = debug_stack
    caplog.set_level(logging.DEBUG)
    seen = Secrets()
    minted: list[dict[str, str]] = []
    original = sts_front.query_params

    def spy(request: Any, body: bytes) -> dict[str, str]:
        params = original(request, body)
        minted.append(params)
        return params

    monkeypatch.setattr(sts_front, "query_params", spy)  # what reached the local AWS: the minted tokens
    oidc_flows(stack, seen)
    saml_flows(stack, seen)
    exchange_flows(stack, seen)
    for params in minted:
        for name in ("WebIdentityToken", "SAMLAssertion"):
            if name in params:
                seen.add(f"minted {name}", params[name])
    assert {"minted WebIdentityToken", "minted SAMLAssertion", "aws secret", "id token"} <= set(seen.found)
    seen.add("client secret", HANDMADE_SECRET)
    seen.add("client secret", os.environ["DEV_IDP_CLIENT_SECRET"])
    seen.add("session secret", os.environ[SECRET_ENV])
    logged = output.read_text(errors="replace")
    assert "debug logging is on" not in logged  # the floor holds even with botocore at DEBUG
    assert "DEBUG" in logged or "INFO" in logged  # the process did log (uvicorn, the broker)
    audit = stack.dev.audit_path.read_text()
    assert len(audit.splitlines()) > 20
    for name, text in (("serve output", logged), ("audit log", audit)):
        assert not seen.leaks(text), f"{name} holds: {seen.leaks(text)}"
    # This process runs the peers (IdPs, local AWS) and the test's browser; the browser's own HTTP client
    # (httpx, httpcore at DEBUG: its URLs and Set-Cookie headers) is the only logger here that may see them.
    leaking = {r.name for r in caplog.records if seen.leaks(r.getMessage())}
    assert leaking <= {"httpx", "httpcore.http11"}


class _Kept(logging.Handler):
    """A handler that keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_floor_holds_for_loggers_and_handlers_added_later(caplog: pytest.LogCaptureFixture) -> None:
    """After quiet_chatty_loggers, DEBUG on everything lets no library DEBUG/INFO record through: neither
    from an existing library logger nor from one created afterwards (the root handlers' filter)."""
    root = logging.getLogger()
    handler = _Kept()
    records = handler.records
    root.addHandler(handler)
    secret = secrets.token_urlsafe(32)
    try:
        quiet_chatty_loggers()
        for name in ["", *logging.root.manager.loggerDict]:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger("botocore.endpoint").debug("body %s", secret)
        logging.getLogger("httpx").info("url %s", secret)
        logging.getLogger("authlib.brand_new_module").debug("token %s", secret)  # created after the floor
        logging.getLogger("broker.access").info("GET /healthz 200")
        logging.getLogger("botocore.endpoint").warning("a warning passes")
    finally:
        root.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert not [m for m in messages if secret in m]
    assert "GET /healthz 200" in messages and "a warning passes" in messages
