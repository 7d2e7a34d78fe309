"""The loopback listener of `sts-broker login` over real HTTP on 127.0.0.1: other paths get a 404 and it
keeps waiting, the redirect gets the "close this tab" page, then it is closed; the code goes to the token
endpoint with the PKCE verifier whose S256 challenge was in the authorization URL."""

from __future__ import annotations

import base64
import hashlib
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.client import login


class TokenEndpoint:
    url = "https://broker.example.com"

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []

    def send(self, method: str, path: str, *, form: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        self.forms.append({"path": path, **(form or {})})
        return 200, {"access_token": "t", "expires_in": 60, "session_id": "s"}


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", ""


def test_listener_answers_the_callback_once_and_sends_the_verifier() -> None:
    seen: dict[str, Any] = {}

    def browser(url: str) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        seen["query"] = query

        def visit() -> None:
            seen["favicon"] = _get(urlsplit(query["redirect_uri"])._replace(path="/favicon.ico").geturl())
            seen["callback"] = _get(f"{query['redirect_uri']}?code=the-code&state={query['state']}")
        seen["visitor"] = threading.Thread(target=visit, daemon=True)
        seen["visitor"].start()
        return True

    broker = TokenEndpoint()
    assert login.loopback(broker, browser) == {"access_token": "t", "expires_in": 60, "session_id": "s"}  # type: ignore[arg-type]
    seen["visitor"].join(timeout=10)  # the listener may return before the visitor has read the page
    query = seen["query"]
    assert query["redirect_uri"].startswith("http://127.0.0.1:") and query["code_challenge_method"] == "S256"
    assert seen["favicon"][0] == 404
    status, content_type, page = seen["callback"]
    assert status == 200 and content_type.startswith("text/html") and "You can close this tab" in page
    [form] = broker.forms
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    assert (form["path"], form["code"], form["redirect_uri"]) == ("/oauth2/token", "the-code", query["redirect_uri"])
    with pytest.raises(urllib.error.URLError):  # closed: nothing listens there any more
        urllib.request.urlopen(query["redirect_uri"], timeout=5)


def test_an_opener_that_fails_means_no_listener_wait() -> None:
    assert login.loopback(TokenEndpoint(), lambda url: False) is None  # type: ignore[arg-type]
