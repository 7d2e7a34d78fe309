"""Each bad input built for real, checked for status, public message, audit reason, and nothing issued."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from html import unescape
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login
from broker.devstack.stack import DevStack, aws_client
from tests.flows.conftest import UNTRUSTED_ROLE, audit_events
from tests.support.token_issuer import TokenIssuer, new_key

ADMIN = "arn:aws:iam::123456789012:role/DemoAdmin"
DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"
JSON = {"Accept": "application/json"}


def issued_count(stack: DevStack) -> int:
    return sum(e["event"] in {"credentials_issued", "console_issued"} for e in audit_events(stack))


def assert_refused(stack: DevStack, response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["error"] == reason and body["message"] and body["error_id"]
    [event] = [e for e in audit_events(stack) if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with browser.browser() as c:
        c.headers["Accept"] = "application/json"
        yield c


def test_unknown_idp(stack: DevStack, client: httpx.Client) -> None:
    assert_refused(stack, client.get(f"{stack.broker_url}/login/nope"), 404, "unknown_idp")
    assert_refused(stack, client.get(f"{stack.broker_url}/oidc/nope/callback?state=x&code=y"), 404, "unknown_idp")


def test_tampered_state(stack: DevStack, client: httpx.Client) -> None:
    callback = browser.authorize_at_idp(client, browser.start_login(client, stack.broker_url, "dev"), "alice")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-2] + ("AA" if not query["state"].endswith("AA") else "BB")
    response = client.get(f"{stack.broker_url}{parts.path}?{urlencode(query)}")
    assert_refused(stack, response, 400, "state_not_bound")
    assert client.cookies.get("sts_broker_session") is None


def test_replayed_callback(stack: DevStack, client: httpx.Client) -> None:
    callback = browser.authorize_at_idp(client, browser.start_login(client, stack.broker_url, "dev"), "bob")
    binding = client.cookies.get("sts_broker_login") or ""
    assert client.get(callback).status_code == 303
    # The login cookie is gone after use, so a replay from the same browser is not even bound...
    assert_refused(stack, client.get(callback), 400, "state_not_bound")
    # ...and with the binding cookie captured too, the state is already consumed in the store.
    client.cookies.set("sts_broker_login", binding, path=urlsplit(callback).path)
    assert_refused(stack, client.get(callback), 400, "state_unknown")


def test_callback_in_another_browser(stack: DevStack, client: httpx.Client) -> None:
    """An attacker's callback URL (login CSRF) opened in the victim's browser lacks the binding cookie."""
    callback = browser.authorize_at_idp(client, browser.start_login(client, stack.broker_url, "dev"), "carol")
    with browser.browser() as victim:
        victim.headers["Accept"] = "application/json"
        assert_refused(stack, victim.get(callback), 400, "state_not_bound")


def test_code_from_another_login(stack: DevStack) -> None:
    """Browser A completes at the IdP; its code is delivered with browser B's state: B's nonce != A's token."""
    with browser.browser() as a, browser.browser() as b:
        b.headers["Accept"] = "application/json"
        a_callback = browser.authorize_at_idp(a, browser.start_login(a, stack.broker_url, "dev"), "alice")
        b_callback = browser.authorize_at_idp(b, browser.start_login(b, stack.broker_url, "dev"), "bob")
        a_code = parse_qs(urlsplit(a_callback).query)["code"][0]
        b_parts = urlsplit(b_callback)
        b_query = {k: v[0] for k, v in parse_qs(b_parts.query).items()}
        b_query["code"] = a_code
        response = b.get(f"{stack.broker_url}{b_parts.path}?{urlencode(b_query)}")
        assert_refused(stack, response, 401, "nonce_invalid")


def test_idp_denial(stack: DevStack, client: httpx.Client) -> None:
    authorize = browser.start_login(client, stack.broker_url, "dev")
    denied = client.post(authorize, data={"action": "deny"})
    assert_refused(stack, client.get(denied.headers["location"]), 401, "idp_error")


def test_mixup_callback_at_another_idp(stack: DevStack, client: httpx.Client) -> None:
    """A login started at `dev` answered at `handmade`'s callback is refused before any code exchange."""
    callback = browser.authorize_at_idp(client, browser.start_login(client, stack.broker_url, "dev"), "alice")
    parts = urlsplit(callback)
    client.cookies.set("sts_broker_login", client.cookies.get("sts_broker_login") or "",
                       path="/oidc/handmade/callback")
    response = client.get(f"{stack.broker_url}/oidc/handmade/callback?{parts.query}")
    assert_refused(stack, response, 400, "idp_mixup")


# ---- tokens from the hand-made IdP: built with PyJWT, delivered by its real token endpoint ----------------


class BrokerAt(Protocol):
    """All a login needs of the world it runs in: where the broker answers (a DevStack, or another test's)."""

    @property
    def broker_url(self) -> str: ...


def handmade_login(stack: BrokerAt, client: httpx.Client, idp: TokenIssuer, **claims: Any) -> httpx.Response:
    authorize = urlsplit(browser.start_login(client, stack.broker_url, "handmade"))
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    key = claims.pop("key", None)
    idp.next_id_token = idp.sign(idp.claims(nonce=params["nonce"], **claims), key=key)
    query = urlencode({"code": "handmade-code", "state": params["state"]})
    response = client.get(f"{stack.broker_url}/oidc/handmade/callback?{query}")
    verifier = idp.token_requests[-1]["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge_method"] == "S256" and params["code_challenge"] == challenge
    assert idp.token_requests[-1]["authorization"].startswith("Basic ")
    return response


def test_handmade_valid_token_logs_in(stack: DevStack, client: httpx.Client, handmade_idp: TokenIssuer) -> None:
    response = handmade_login(stack, client, handmade_idp, sub="hm-user")
    assert response.status_code == 303
    assert [r["role_arn"] for r in browser.roles(client, stack.broker_url)["roles"]] == [DEV]


@pytest.mark.parametrize(("claims", "reason"), [
    ({"key": "other"}, "signature_invalid"),
    ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, "token_expired"),
    ({"aud": "someone-else"}, "audience_invalid"),
    ({"iss": "https://accounts.google.com"}, "claims_invalid"),
])
def test_bad_tokens_refused(stack: DevStack, client: httpx.Client, handmade_idp: TokenIssuer,
                            claims: dict[str, Any], reason: str) -> None:
    if claims.get("key") == "other":
        claims["key"] = new_key()
    response = handmade_login(stack, client, handmade_idp, **claims)
    assert_refused(stack, response, 401, reason)
    assert client.cookies.get("sts_broker_session") is None


# ---- after login: roles, CSRF, cookies --------------------------------------------------------------------


@pytest.fixture
def bob(stack: DevStack) -> Iterator[tuple[httpx.Client, str]]:
    with browser.browser() as c:
        assert browser.login(c, stack.broker_url, "dev", "bob").status_code == 303
        yield c, browser.roles(c, stack.broker_url)["csrf_token"]


def test_role_not_granted(stack: DevStack, bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    before = issued_count(stack)
    for action in ("credentials", "console"):
        assert_refused(stack, browser.post_role(client, stack.broker_url, action, ADMIN, csrf), 403, "role_not_granted")
    assert issued_count(stack) == before


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_forged_or_missing_csrf(stack: DevStack, bob: tuple[httpx.Client, str], token: str | None) -> None:
    client, _ = bob
    form = {"role": DEV} if token is None else {"role": DEV, "csrf_token": token}
    before = issued_count(stack)
    response = client.post(f"{stack.broker_url}/roles/credentials", data=form, headers=JSON)
    assert_refused(stack, response, 403, "csrf_failed")
    assert issued_count(stack) == before


def test_tampered_cookie(stack: DevStack, bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    cookie = client.cookies.get("sts_broker_session") or ""
    client.cookies.set("sts_broker_session", cookie[:-3] + ("abc" if not cookie.endswith("abc") else "xyz"))
    assert_refused(stack, client.get(f"{stack.broker_url}/roles", headers=JSON), 401, "session_missing_or_invalid")
    response = browser.post_role(client, stack.broker_url, "credentials", DEV, csrf)
    assert_refused(stack, response, 401, "session_missing_or_invalid")
    html = client.get(f"{stack.broker_url}/roles")
    assert html.status_code == 303 and html.headers["location"] == "/"


def test_sts_refuses_untrusted_role(stack: DevStack) -> None:
    with browser.browser() as c:
        browser.login(c, stack.broker_url, "dev", "alice")
        csrf = browser.roles(c, stack.broker_url)["csrf_token"]
        before = issued_count(stack)
        response = browser.post_role(c, stack.broker_url, "credentials", UNTRUSTED_ROLE, csrf)
        assert_refused(stack, response, 403, "sts_access_denied")
        assert "trust policy" in response.json()["message"]
        assert "SecretAccessKey" not in response.text
        assert issued_count(stack) == before


def test_oidc_login_reaches_assume_role_with_saml(stack: DevStack) -> None:
    """A grant via saml: the broker mints and signs an assertion, the strict local AWS verifies it against the
    broker's IAM SAML provider metadata; the credentials and the console both work."""
    role = "arn:aws:iam::123456789012:role/SamlOnly"
    with browser.browser() as c:
        browser.login(c, stack.broker_url, "dev", "alice")
        csrf = browser.roles(c, stack.broker_url)["csrf_token"]
        response = browser.post_role(c, stack.broker_url, "credentials", role, csrf)
        assert response.status_code == 200, response.text[:300]
        creds = response.json()
        sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
        assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/SamlOnly/alice@example.com"
        console = browser.post_role(c, stack.broker_url, "console", role, csrf)
        assert console.status_code == 303
        page = c.get(console.headers["location"])
        assert page.status_code == 200 and "assumed-role/SamlOnly/alice@example.com" in unescape(page.text)
    issued = [e for e in audit_events(stack) if e["event"] == "credentials_issued" and e.get("role") == role]
    assert issued and issued[-1]["via"] == "saml"


def test_saml_login_reaches_assume_role_with_saml(stack: DevStack) -> None:
    """A SAML login at the pysaml2 IdP, then a minted assertion (with tags and a source identity) to STS."""
    role = "arn:aws:iam::123456789012:role/SamlOnly"
    with browser.browser() as c:
        assert browser_login(c, stack.broker_url, "devsaml", "alice").status_code == 303
        view = browser.roles(c, stack.broker_url)
        assert role in [r["role_arn"] for r in view["roles"]]
        response = browser.post_role(c, stack.broker_url, "credentials", role, view["csrf_token"])
        assert response.status_code == 200, response.text[:300]
        creds = response.json()
        sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
        assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/SamlOnly/alice@example.com"


def test_unknown_format(stack: DevStack, bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    response = browser.post_role(client, stack.broker_url, "credentials", DEV, csrf, format="xml")
    assert_refused(stack, response, 400, "format_unknown")


def test_oversized_body(stack: DevStack, bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    response = client.post(f"{stack.broker_url}/roles/credentials", headers=JSON,
                           data={"role": DEV, "csrf_token": csrf, "pad": "x" * 200_000})
    assert_refused(stack, response, 413, "payload_too_large")
