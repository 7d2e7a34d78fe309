"""Refusals of the CLI login and API, each built for real over HTTP against the devstack: the right status,
an audit event naming the reason, and nothing issued (no code, no CLI session, no credentials)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.stack import DevStack
from tests.flows.cli_login import (
    CLIENT_ID,
    Loopback,
    Pkce,
    authorize_query,
    bearer,
    cli_login,
    consent,
    hidden,
    login_code,
    loopback_listener,
    redeem,
)
from tests.flows.conftest import audit_events

ISSUING = {"cli_code_issued", "cli_session_started", "credentials_issued", "console_issued"}


@contextmanager
def watched(stack: DevStack) -> Iterator[list[dict[str, Any]]]:
    """The audit events written inside the block (filled in when it ends)."""
    before = len(audit_events(stack))
    new: list[dict[str, Any]] = []
    yield new
    new.extend(audit_events(stack)[before:])


def refused(events: list[dict[str, Any]], reason: str, status: int) -> dict[str, Any]:
    """The one refusal event with this reason; nothing was issued around it."""
    found = [e for e in events if e["event"] == "request_failed" and e.get("reason") == reason]
    assert len(found) == 1, [(e["event"], e.get("reason")) for e in events]
    assert found[0]["status"] == status
    assert not [e for e in events if e["event"] in ISSUING], events
    return found[0]


@pytest.fixture
def bob() -> Iterator[httpx.Client]:
    """A browser signed in as bob."""
    with browser.browser() as client:
        yield client


def _signed_in(client: httpx.Client, stack: DevStack) -> None:
    assert browser.login(client, stack.broker_url, "dev", "bob").status_code == 303


@contextmanager
def a_code(stack: DevStack, client: httpx.Client) -> Iterator[tuple[str, Pkce, Loopback]]:
    pkce = Pkce()
    with loopback_listener() as listener:
        yield login_code(client, stack.broker_url, listener, pkce, "bob"), pkce, listener


def test_a_replayed_code_is_refused_and_ends_the_session_it_made(stack: DevStack, bob: httpx.Client) -> None:
    with a_code(stack, bob) as (code, pkce, listener):
        first = redeem(stack.broker_url, code, listener.url, pkce.verifier)
        assert first.status_code == 200
        with watched(stack) as events:
            again = redeem(stack.broker_url, code, listener.url, pkce.verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refused(events, "code_invalid", 400)
    [ended] = [e for e in events if e["event"] == "cli_session_revoked"]
    assert ended["by"] == "code_replay" and ended["session_id"] == first.json()["session_id"]
    auth = bearer(first.json()["access_token"])
    assert httpx.get(f"{stack.broker_url}/cli/session", headers=auth).status_code == 401


def test_a_stolen_code_with_another_verifier_is_refused_and_used_up(stack: DevStack, bob: httpx.Client) -> None:
    with a_code(stack, bob) as (code, pkce, listener):
        with watched(stack) as events:
            thief = redeem(stack.broker_url, code, listener.url, Pkce().verifier)
        owner = redeem(stack.broker_url, code, listener.url, pkce.verifier)
    assert thief.status_code == 400 and thief.json()["error"] == "invalid_grant"
    refused(events, "pkce_failed", 400)
    assert owner.status_code == 400  # one attempt per code, whoever makes it


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("redirect_uri", "http://127.0.0.1:1/other", "code_redirect_mismatch"),
    ("client_id", "another-client", "code_client_mismatch"),
])
def test_a_code_for_another_redirect_or_client_is_refused(stack: DevStack, bob: httpx.Client, field: str,
                                                          value: str, reason: str) -> None:
    with a_code(stack, bob) as (code, pkce, listener):
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": listener.url,
                "client_id": CLIENT_ID, "code_verifier": pkce.verifier, field: value}
        with watched(stack) as events:
            answer = httpx.post(f"{stack.broker_url}/oauth2/token", data=form)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    refused(events, reason, 400)


def test_a_made_up_code_is_refused(stack: DevStack) -> None:
    with watched(stack) as events:
        answer = redeem(stack.broker_url, "made-up-code", "http://127.0.0.1:9/cb", Pkce().verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    refused(events, "code_invalid", 400)


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"code_challenge_method": "plain"}, "pkce_method_unsupported"),
    ({"code_challenge_method": None}, "pkce_method_unsupported"),
    ({"code_challenge": None}, "pkce_challenge_invalid"),
    ({"code_challenge": "too-short"}, "pkce_challenge_invalid"),
    ({"client_id": "someone-else"}, "client_unknown"),
    ({"response_type": "token"}, "response_type_unsupported"),
    ({"state": None}, "state_invalid_format"),
])
def test_authorization_requests_that_are_refused(stack: DevStack, bob: httpx.Client, overrides: dict[str, str | None],
                                                 reason: str) -> None:
    _signed_in(bob, stack)
    query = authorize_query("http://127.0.0.1:8765/callback", Pkce(), "laptop", **overrides)
    with watched(stack) as events:
        answer = bob.get(f"{stack.broker_url}/oauth2/authorize?{query}")
    assert answer.status_code == 400 and "location" not in answer.headers and "Allow" not in answer.text
    refused(events, reason, 400)


@pytest.mark.parametrize("device_name", ["x" * 65, "two\nlines", "bell\x07"])
def test_device_names_that_are_refused(stack: DevStack, bob: httpx.Client, device_name: str) -> None:
    _signed_in(bob, stack)
    with watched(stack) as events:
        answer = bob.get(f"{stack.broker_url}/oauth2/authorize?"
                         f"{authorize_query('http://127.0.0.1:8765/cb', Pkce(), device_name)}")
    assert answer.status_code == 400 and "Allow" not in answer.text
    refused(events, "device_name_invalid", 400)


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/callback",
    "http://evil.example:8765/callback",
    "http://127.0.0.1.evil.example:8765/callback",
    "http://localhost.evil.example:8765/callback",
    "http://localhost:8765/callback",  # RFC 8252 8.3: the IP literal, not a name a hosts file can point away
    "http://127.0.0.1@evil.example/callback",
    "http://127.0.0.1:8765@evil.example/callback",
    "http://user:pw@127.0.0.1:8765/callback",
    "http://127.0.0.1:8765\\@evil.example/",
    "http://127.0.0.1:8765/callback?next=https://evil.example",
    "http://127.0.0.1:8765/callback#frag",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.1/callback",
    "https://127.0.0.1:8765/callback",
    "http://[::1].evil.example:8765/",
    "http://127.0.0.1%2eevil.example:8765/",
    "//127.0.0.1:8765/callback",
    "javascript:alert(1)//127.0.0.1:8765/",
])
def test_redirects_to_anything_but_loopback_are_refused(stack: DevStack, bob: httpx.Client, redirect_uri: str) -> None:
    _signed_in(bob, stack)
    with watched(stack) as events:
        answer = bob.get(f"{stack.broker_url}/oauth2/authorize?{authorize_query(redirect_uri, Pkce())}")
    assert answer.status_code == 400 and "location" not in answer.headers and "evil" not in answer.text
    refused(events, "redirect_uri_invalid", 400)


def test_the_consent_post_without_csrf_is_refused(stack: DevStack, bob: httpx.Client) -> None:
    _signed_in(bob, stack)
    with loopback_listener() as listener:
        page = bob.get(f"{stack.broker_url}/oauth2/authorize?{authorize_query(listener.url, Pkce())}")
        request_id = hidden(page.text, "request")
        with watched(stack) as events:
            missing = bob.post(f"{stack.broker_url}/oauth2/authorize", data={"request": request_id,
                                                                            "decision": "allow"})
            forged = bob.post(f"{stack.broker_url}/oauth2/authorize", data={
                "request": request_id, "decision": "allow", "csrf_token": "forged"})
        assert missing.status_code == 403 and forged.status_code == 403 and not listener.received
        assert [e.get("reason") for e in events if e["event"] == "request_failed"] == ["csrf_failed"] * 2
        assert not [e for e in events if e["event"] in ISSUING]
        assert consent(bob, stack.broker_url, page).status_code == 303  # the request itself is still answerable


def test_the_consent_post_without_a_browser_session_is_refused(stack: DevStack) -> None:
    with browser.browser() as client, watched(stack) as events:
        answer = client.post(f"{stack.broker_url}/oauth2/authorize",
                             data={"request": "x" * 22, "decision": "allow", "csrf_token": "x"})
    assert answer.status_code == 401
    refused(events, "session_missing_or_invalid", 401)


@pytest.mark.parametrize("return_to", ["https://evil.example/", "//evil.example", "/oauth2/authorize?request=a",
                                       "/oauth2/authorize?request=abcdefghijklmnopqrst&x=https://evil.example"])
def test_a_login_returning_anywhere_but_the_allow_list_is_refused(stack: DevStack, return_to: str) -> None:
    with browser.browser() as client, watched(stack) as events:
        answer = client.get(f"{stack.broker_url}/login/dev", params={"return_to": return_to})
    assert answer.status_code == 400 and "location" not in answer.headers
    refused(events, "return_path_invalid", 400)


def test_a_revoked_token_and_made_up_ones_are_refused(stack: DevStack, bob: httpx.Client) -> None:
    url = stack.broker_url
    session = cli_login(bob, url, "bob")
    assert httpx.post(f"{url}/oauth2/revoke", data={"token": session["access_token"]}).status_code == 200
    assert httpx.post(f"{url}/oauth2/revoke", data={"token": "never-issued"}).status_code == 200  # RFC 7009 2.2
    for headers in (bearer(session["access_token"]), bearer("made-up"), {"Authorization": "Basic eDp5"}, {}):
        with watched(stack) as events:
            roles = httpx.get(f"{url}/cli/roles", headers=headers)
            creds = httpx.post(f"{url}/cli/credentials", headers=headers, json={"role": "DemoDeveloper"})
        assert roles.status_code == 401 and creds.status_code == 401
        assert creds.json()["error"] == "cli_session_invalid" and "AccessKeyId" not in creds.text
        assert [e.get("reason") for e in events if e["event"] == "request_failed"] == ["cli_session_invalid"] * 2
        assert not [e for e in events if e["event"] in ISSUING]


def test_another_persons_session_id_is_refused_on_the_portal(stack: DevStack) -> None:
    url = stack.broker_url
    with browser.browser() as alice, browser.browser() as bob:
        alices = cli_login(alice, url, "alice")
        _signed_in(bob, stack)
        csrf = browser.roles(bob, url)["csrf_token"]
        with watched(stack) as events:
            answer = bob.post(f"{url}/sessions/revoke", data={"csrf_token": csrf, "kind": "cli",
                                                              "id": alices["session_id"]})
        listing = bob.get(f"{url}/sessions", headers={"Accept": "application/json"}).json()
    assert answer.status_code == 404
    refused(events, "cli_session_unknown", 404)
    assert not [e for e in events if e["event"] == "cli_session_revoked"]
    assert alices["session_id"] not in str(listing)
    assert httpx.get(f"{url}/cli/session", headers=bearer(alices["access_token"])).status_code == 200


def test_portal_revocation_without_csrf_is_refused(stack: DevStack, bob: httpx.Client) -> None:
    session = cli_login(bob, stack.broker_url, "bob")
    with watched(stack) as events:
        answer = bob.post(f"{stack.broker_url}/sessions/revoke", data={"kind": "cli", "id": session["session_id"]})
    assert answer.status_code == 403
    refused(events, "csrf_failed", 403)
    assert httpx.get(f"{stack.broker_url}/cli/session", headers=bearer(session["access_token"])).status_code == 200


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"role": "arn:aws:iam::123456789012:role/DemoAdmin"}, 403, "role_not_granted"),  # alice's, not bob's
    ({"role": "DemoAdmin"}, 403, "role_not_granted"),
    ({"role": ""}, 400, "role_missing"),
    ({"role": "DemoDeveloper", "duration_seconds": 60}, 400, "duration_invalid"),
    ({"role": "DemoDeveloper", "duration_seconds": "900"}, 400, "duration_invalid"),
])
def test_credentials_that_are_refused(stack: DevStack, bob: httpx.Client, body: dict[str, Any], status: int,
                                      reason: str) -> None:
    session = cli_login(bob, stack.broker_url, "bob")
    with watched(stack) as events:
        answer = httpx.post(f"{stack.broker_url}/cli/credentials", headers=bearer(session["access_token"]), json=body)
    assert answer.status_code == status and answer.json()["error"] == reason
    refused(events, reason, status)


@pytest.mark.parametrize("destination", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                         "/x@evil.example"])
def test_a_console_destination_off_the_console_is_refused(stack: DevStack, bob: httpx.Client,
                                                          destination: str) -> None:
    session = cli_login(bob, stack.broker_url, "bob")
    with watched(stack) as events:
        answer = httpx.post(f"{stack.broker_url}/cli/console", headers=bearer(session["access_token"]),
                            json={"role": "DemoDeveloper", "destination": destination})
    assert answer.status_code == 400 and "url" not in answer.json()
    refused(events, "destination_invalid", 400)


def test_the_code_reaches_only_the_registered_redirect(stack: DevStack, bob: httpx.Client) -> None:
    """The code goes to the request's own loopback redirect and nowhere else (the Location is built from the
    parked request, not from anything posted with the consent)."""
    _signed_in(bob, stack)
    pkce = Pkce()
    with loopback_listener() as listener:
        page = bob.get(f"{stack.broker_url}/oauth2/authorize?{authorize_query(listener.url, pkce)}")
        form = {"csrf_token": hidden(page.text, "csrf_token"), "request": hidden(page.text, "request"),
                "decision": "allow", "redirect_uri": "https://evil.example/"}
        answer = bob.post(f"{stack.broker_url}/oauth2/authorize", data=form)
    location = urlsplit(answer.headers["location"])
    assert f"http://{location.netloc}{location.path}" == listener.url
    assert set(parse_qs(location.query)) == {"code", "state"}
