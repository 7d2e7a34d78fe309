"""A scripted `sts-broker login` for the flow tests: a real loopback listener (http.server on 127.0.0.1)
receiving the code, a scripted browser signing in through the dev OIDC IdP and consenting, real HTTP to the
broker throughout."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from broker.devstack import browser
from broker.devstack.servers import http_server

CLIENT_ID = "sts-broker-cli"


@dataclass
class Loopback:
    """What the CLI's listener received: each request's query."""

    url: str
    received: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def loopback_listener() -> Iterator[Loopback]:
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            received.append({k: v[0] for k, v in query.items()})
            body = b"You can close this tab."
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    with http_server(Handler) as url:
        yield Loopback(f"{url}/callback", received)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def challenge(self) -> str:
        return s256(self.verifier)


def authorize_query(redirect_uri: str, pkce: Pkce, device_name: str = "laptop", **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri,
        "code_challenge": pkce.challenge, "code_challenge_method": "S256", "state": pkce.state,
        "device_name": device_name, **overrides}
    return urlencode({k: v for k, v in params.items() if v is not None})


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return html.unescape(match.group(1))


def sign_in_from(client: httpx.Client, broker_url: str, page: httpx.Response, user: str) -> httpx.Response:
    """From the sign-in page /oauth2/authorize showed: the dev IdP's link, the login, back to the broker."""
    link = re.search(r'href="(/login/dev\?[^"]+)"', page.text)
    assert link, page.text[:500]
    start = client.get(urljoin(broker_url, html.unescape(link.group(1))))
    assert start.status_code == 303, start.text[:300]
    callback = browser.authorize_at_idp(client, start.headers["location"], user)
    landed = client.get(callback)
    assert landed.status_code == 303, landed.text[:300]
    return client.get(urljoin(broker_url, landed.headers["location"]))


def consent(client: httpx.Client, broker_url: str, page: httpx.Response, decision: str = "allow") -> httpx.Response:
    assert page.status_code == 200, page.text[:300]
    form = {"csrf_token": hidden(page.text, "csrf_token"), "request": hidden(page.text, "request"),
            "decision": decision}
    return client.post(f"{broker_url}/oauth2/authorize", data=form)


def redeem(broker_url: str, code: str, redirect_uri: str, verifier: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": CLIENT_ID, "code_verifier": verifier}
    return httpx.post(f"{broker_url}/oauth2/token", data=form, timeout=20)


def login_code(client: httpx.Client, broker_url: str, listener: Loopback, pkce: Pkce, user: str,
               device_name: str = "laptop") -> str:
    """The whole browser step, ending at the listener: the code it received (state checked)."""
    first = client.get(f"{broker_url}/oauth2/authorize?{authorize_query(listener.url, pkce, device_name)}")
    page = first if "Allow" in first.text else sign_in_from(client, broker_url, first, user)
    answer = consent(client, broker_url, page)
    assert answer.status_code == 303 and answer.headers["location"].startswith(listener.url + "?")
    client.get(answer.headers["location"])  # the browser follows to the CLI's listener
    got = listener.received[-1]
    assert got["state"] == pkce.state
    return got["code"]


def cli_login(client: httpx.Client, broker_url: str, user: str, device_name: str = "laptop") -> dict[str, Any]:
    """A CLI session's token answer, through the whole loopback flow."""
    pkce = Pkce()
    with loopback_listener() as listener:
        code = login_code(client, broker_url, listener, pkce, user, device_name)
        token = redeem(broker_url, code, listener.url, pkce.verifier)
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
