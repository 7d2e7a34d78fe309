"""RFC 8628 end to end over real HTTP: the CLI asks for a code and polls while a scripted browser signs in
through the dev OIDC IdP and approves; and each way it must fail, built for real."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DevStack
from broker.settings import DeviceAuthorizationConfig
from broker.web.app import create_app
from tests.device_container.device import (
    CSRF,
    Poller,
    confirmation,
    decide,
    new_code,
    poll,
    request_code,
    signed_in,
)
from tests.flows.conftest import audit_events


def events(stack: DevStack, name: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in audit_events(stack) if e["event"] == name and all(e.get(k) == v for k, v in match.items())]


def started_sessions(stack: DevStack) -> int:
    return len(events(stack, "cli_session_started", grant="device_code"))


def test_a_device_is_signed_in_while_it_polls(dc_stack: DevStack) -> None:
    url = dc_stack.broker_url
    code = new_code(url, "build-box 7")
    assert code["verification_uri"] == f"{url}/device" and code["interval"] == 1 and code["expires_in"] == 600
    assert code["verification_uri_complete"] == f"{url}/device?user_code={code['user_code']}"
    user_code = code["user_code"]
    assert len(user_code) == 9 and user_code[4] == "-" and set(user_code) - {"-"} <= set("BCDFGHJKLMNPQRSTVWXZ")
    poller = Poller(url, code["device_code"], interval=code["interval"]).start()
    with signed_in(url, "alice") as client:
        typed = user_code.replace("-", "").lower()  # as a person may type it
        page = confirmation(client, url, typed)
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert "build-box 7" in text and "127.0.0.1" in text and time.strftime("%Y-%m-%d", time.gmtime()) in text
        assert user_code in text and "alice@example.com" in text
        done = decide(client, url, typed)
        assert done.status_code == 200 and "Device approved" in done.text
    answer = poller.result()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 8 * 3600 and body["session_id"]
    assert answer.headers["cache-control"] == "no-store"
    assert [a.json()["error"] for a in poller.answers[:-1]] and all(
        a.json()["error"] == "authorization_pending" for a in poller.answers[:-1])
    started = events(dc_stack, "cli_session_started", session_id=body["session_id"])
    assert len(started) == 1 and started[0]["subject"] == "alice" and started[0]["device"] == "build-box 7"
    approved = events(dc_stack, "device_code_approved", subject="alice")
    assert approved and approved[-1]["requested_by"] == "127.0.0.1"
    # The device code is single use: polled again after its success, nothing more is issued.
    again = poll(url, code["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert len(events(dc_stack, "cli_session_started", session_id=body["session_id"])) == 1
    logged = dc_stack.audit_path.read_text()
    assert body["access_token"] not in logged and code["device_code"] not in logged


def test_polling_faster_than_the_interval_is_told_to_slow_down(dc_stack: DevStack) -> None:
    code = new_code(dc_stack.broker_url)
    first = poll(dc_stack.broker_url, code["device_code"])
    assert first.json()["error"] == "authorization_pending"
    second = poll(dc_stack.broker_url, code["device_code"])
    assert second.status_code == 400 and second.json()["error"] == "slow_down"
    failed = events(dc_stack, "request_failed", reason="slow_down", error_id=second.json()["error_id"])
    assert len(failed) == 1 and failed[0]["oauth_error"] == "slow_down"


def test_a_denied_request_gets_no_session(dc_stack: DevStack) -> None:
    url, before = dc_stack.broker_url, started_sessions(dc_stack)
    code = new_code(url, "not mine")
    with signed_in(url, "bob") as client:
        done = decide(client, url, code["user_code"], "deny")
        assert done.status_code == 200 and "Request denied" in done.text
        # Decided once: approving the same code afterwards is refused, and stays denied.
        late = decide(client, url, code["user_code"], "approve", csrf=browser.roles(client, url)["csrf_token"])
        assert late.status_code == 400 and "not valid" in late.text
    for _ in range(2):
        answer = poll(url, code["device_code"])
        assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
        time.sleep(1.1)
    assert started_sessions(dc_stack) == before
    assert events(dc_stack, "device_code_denied", subject="bob")


def test_a_user_code_is_approved_once(dc_stack: DevStack) -> None:
    """Alice approves; bob, who has the code too (a shoulder-surfer, a pasted link), cannot approve it again:
    the session goes to the person who approved first, and nobody else."""
    url = dc_stack.broker_url
    code = new_code(url)
    with signed_in(url, "alice") as alice, signed_in(url, "bob") as bob:
        page = confirmation(bob, url, code["user_code"])
        bob_csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        assert decide(alice, url, code["user_code"]).status_code == 200
        second = decide(bob, url, code["user_code"], csrf=bob_csrf)
        assert second.status_code == 400 and "not valid" in second.text
    answer = poll(url, code["device_code"])
    assert answer.status_code == 200
    started = events(dc_stack, "cli_session_started", session_id=answer.json()["session_id"])
    assert [e["subject"] for e in started] == ["alice"]
    assert events(dc_stack, "device_code_refused", subject="bob", reason="user_code_invalid")


def test_the_device_name_is_shown_as_text(dc_stack: DevStack) -> None:
    url = dc_stack.broker_url
    code = new_code(url, '<img src=x onerror="alert(1)">')
    with signed_in(url, "bob") as client:
        page = confirmation(client, url, code["user_code"])
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text


def test_approving_needs_the_forms_csrf_token(dc_stack: DevStack) -> None:
    url = dc_stack.broker_url
    code = new_code(url)
    with signed_in(url, "bob") as client:
        forged = client.post(f"{url}/device", data={"user_code": code["user_code"], "action": "approve"})
        assert forged.status_code == 403
        wrong = decide(client, url, code["user_code"], csrf="x" * 43)
        assert wrong.status_code == 403
    # Without a browser session there is nothing to approve with.
    anonymous = httpx.post(f"{url}/device", data={"user_code": code["user_code"], "action": "approve",
                                                    "csrf_token": "x"})
    assert anonymous.status_code == 401
    assert poll(url, code["device_code"]).json()["error"] == "authorization_pending"
    assert len(events(dc_stack, "request_failed", path="/device", reason="csrf_failed")) >= 2


def test_only_the_cli_client_may_use_the_device_flow(dc_stack: DevStack) -> None:
    url = dc_stack.broker_url
    refused = request_code(url, client_id="someone-else")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["www-authenticate"].startswith("Basic")
    code = new_code(url)
    wrong_client = poll(url, code["device_code"], client_id="someone-else")
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"
    made_up = poll(url, "A" * 43)
    assert made_up.status_code == 400 and made_up.json()["error"] == "invalid_grant"
    too_long = request_code(url, device_name="x" * 65)
    assert too_long.status_code == 400 and too_long.json()["error"] == "invalid_request"
    assert events(dc_stack, "request_failed", path="/oauth2/device_authorization", reason="client_unknown")


@contextmanager
def variant(stack: DevStack, **updates: Any) -> Iterator[str]:
    """The stack's broker with other settings, served by a second broker (its own memory store) on its port."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    settings = stack.settings.model_copy(update={"public_url": url, **updates})
    with asgi_server(create_app(settings, audit=AuditLog(str(stack.audit_path))), port):
        yield url


def test_an_expired_code_is_refused_both_ways(dc_stack: DevStack) -> None:
    short = DeviceAuthorizationConfig(lifetime=timedelta(seconds=1), interval=timedelta(seconds=1))
    with variant(dc_stack, device_authorization=short) as url, signed_in(url, "alice") as client:
        code = new_code(url)
        assert code["expires_in"] == 1
        csrf = browser.roles(client, url)["csrf_token"]
        time.sleep(1.3)
        late = decide(client, url, code["user_code"], csrf=csrf)
        assert late.status_code == 400 and "not valid" in late.text
        answer = poll(url, code["device_code"])
        assert answer.status_code == 400 and answer.json()["error"] == "expired_token"
    issued = events(dc_stack, "device_code_issued", client_id="sts-broker-cli")[-1]
    assert not [e for e in audit_events(dc_stack) if e["ts"] >= issued["ts"] and e["event"] in
                {"device_code_approved", "cli_session_started"}]


def test_wrong_codes_are_rate_limited(dc_stack: DevStack) -> None:
    limits = dc_stack.settings.rate_limits.model_copy(update={"device_code_attempts": 3})
    with variant(dc_stack, rate_limits=limits) as url, signed_in(url, "bob") as client:
        code = new_code(url)
        wrong = [confirmation(client, url, guess).status_code for guess in ("BCDF-GHJK", "bcdfghjl", "ZZZZ-ZZZZ")]
        assert wrong == [400, 400, 400]
        # Beyond the limit even the right code is not looked up: guessing stops here.
        blocked = confirmation(client, url, code["user_code"])
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        refused = decide(client, url, code["user_code"], csrf=browser.roles(client, url)["csrf_token"])
        assert refused.status_code == 429
        assert poll(url, code["device_code"]).json()["error"] == "authorization_pending"
    assert len(events(dc_stack, "request_failed", reason="rate_limited", path="/device")) >= 2


def test_a_person_not_signed_in_signs_in_first_and_comes_back(dc_stack: DevStack) -> None:
    url = dc_stack.broker_url
    code = new_code(url, "laptop")
    with browser.browser() as client:
        page = confirmation(client, url, code["user_code"])
        assert page.status_code == 200 and "Sign in" in page.text
        back = f"/device?user_code={code['user_code']}"
        link = f'/login/dev?return_to={back.replace("/", "%2F").replace("?", "%3F").replace("=", "%3D")}'
        assert link in page.text
        callback = browser.authorize_at_idp(client, client.get(url + link).headers["location"], "bob")
        landed = client.get(callback)
        assert landed.status_code == 303 and landed.headers["location"] == back
        assert decide(client, url, code["user_code"]).status_code == 200
    assert poll(url, code["device_code"]).status_code == 200
