"""CLI sessions on a stack of their own: browser sessions of a few seconds and a Redis store (a private
redis-server), so a CLI session is seen ending with the browser session it came from, through real HTTP; and
the sign-in before consent goes through the SAML dev IdP, its RelayState carrying the way back."""

from __future__ import annotations

import html
import os
import re
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.dev_saml_idp import submit
from broker.devstack.redis_server import running_redis
from broker.devstack.stack import SECRET_ENV, DevStack, run_stack
from tests.flows.cli_login import Pkce, authorize_query, bearer, consent, loopback_listener, redeem
from tests.flows.conftest import FLOW_RULES, audit_events

LIFETIME = 8  # seconds: a login and a consent fit (on a loaded machine too), a wait for the end is short
ACCOUNT = "222233334444"  # moto's IAM of this stack apart from the shared flow stack's


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    overrides = {"session": {"secret": "${" + SECRET_ENV + "}", "lifetime": f"{LIFETIME}s"},
                 "rate_limits": {"login_starts": 100000}}
    with running_redis() as redis:
        overrides["store"] = {"url": redis.url}
        with run_stack(tmp_path_factory.mktemp("cli-short"), rules=FLOW_RULES, account_id=ACCOUNT,
                       overrides=overrides) as stack:
            yield stack


def _saml_sign_in(client: httpx.Client, stack: DevStack, page: httpx.Response, user: str) -> httpx.Response:
    """From /oauth2/authorize's sign-in page through the SAML dev IdP (Redirect binding, then the ACS POST)
    back to the consent page."""
    link = re.search(r'href="(/login/devsaml\?[^"]+)"', page.text)
    assert link, page.text[:400]
    start = client.get(urljoin(stack.broker_url, html.unescape(link.group(1))))
    assert start.status_code == 303
    idp_page = client.get(start.headers["location"])
    posted = submit(client, submit(client, idp_page, username=user))
    assert posted.status_code == 303 and posted.headers["location"].startswith("/oauth2/authorize?request=")
    return client.get(urljoin(stack.broker_url, posted.headers["location"]))


def test_a_cli_session_ends_with_the_browser_session_it_came_from(short: DevStack) -> None:
    url, pkce = short.broker_url, Pkce()
    with browser.browser() as client, loopback_listener() as listener:
        first = client.get(f"{url}/oauth2/authorize?{authorize_query(listener.url, pkce)}")
        page = _saml_sign_in(client, short, first, "alice")
        assert "alice@example.com" in page.text
        client.get(consent(client, url, page).headers["location"])
        answer = redeem(url, listener.received[-1]["code"], listener.url, pkce.verifier).json()
    assert 0 < answer["expires_in"] <= LIFETIME
    auth = bearer(answer["access_token"])
    info = httpx.get(f"{url}/cli/session", headers=auth)
    assert info.status_code == 200 and info.json()["idp"] == "devsaml"
    time.sleep(answer["expires_in"] + 1.5)
    ended = httpx.get(f"{url}/cli/session", headers=auth)
    assert ended.status_code == 401 and ended.json()["error"] == "cli_session_invalid"
    refusals = [e for e in audit_events(short) if e["event"] == "request_failed" and e.get("path") == "/cli/session"]
    assert refusals and refusals[-1]["reason"] == "cli_session_invalid"


def test_sessions_listed_and_revoked_through_redis(short: DevStack) -> None:
    url, pkce = short.broker_url, Pkce()
    with browser.browser() as client, loopback_listener() as listener:
        browser.login(client, url, "dev", "bob")
        page = client.get(f"{url}/oauth2/authorize?{authorize_query(listener.url, pkce, 'redis box')}")
        client.get(consent(client, url, page).headers["location"])
        answer = redeem(url, listener.received[-1]["code"], listener.url, pkce.verifier).json()
        listing = client.get(f"{url}/sessions", headers={"Accept": "application/json"}).json()
        assert [s["device_name"] for s in listing["cli_sessions"]] == ["redis box"]
        csrf = browser.roles(client, url)["csrf_token"]
        client.post(f"{url}/sessions/revoke", data={"csrf_token": csrf, "kind": "cli", "id": answer["session_id"]})
        assert client.get(f"{url}/sessions", headers={"Accept": "application/json"}).json()["cli_sessions"] == []
    assert httpx.get(f"{url}/cli/session", headers=bearer(answer["access_token"])).status_code == 401
