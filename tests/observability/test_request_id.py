"""A request id on every request: made by the broker, or a trusted proxy's well-formed X-Request-Id; echoed in
the response, written in the access log line, in every audit event of the request and on its error answer.
A client that is not a trusted proxy cannot choose it, and a hostile value is replaced, never echoed."""

from __future__ import annotations

import logging
import re
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.stack import DevStack
from tests.support.own_stack import audit_events, variant

GENERATED = re.compile(r"[0-9a-f]{32}")
JSON = {"Accept": "application/json"}


def _events_of(stack: DevStack, request_id: str) -> list[dict[str, object]]:
    return [e for e in audit_events(stack) if e.get("request_id") == request_id]


def test_every_answer_carries_a_fresh_id_that_its_audit_events_share(obs: DevStack) -> None:
    with browser.browser() as client:
        first = client.get(f"{obs.broker_url}/login/dev")
        second = client.get(f"{obs.broker_url}/healthz")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(i) for i in ids) and ids[0] != ids[1]
    [started] = _events_of(obs, ids[0])
    assert started["event"] == "login_started" and started["idp"] == "dev"


def test_a_forged_id_from_a_client_that_is_no_trusted_proxy_is_ignored(obs: DevStack) -> None:
    forged = "victims-request-0001"
    response = httpx.get(f"{obs.broker_url}/login/nowhere", headers={"X-Request-Id": forged, **JSON})
    assert response.status_code == 404
    rid = response.headers["x-request-id"]
    assert GENERATED.fullmatch(rid) and rid != forged
    assert response.json()["request_id"] == rid
    [refused] = _events_of(obs, rid)
    assert refused["event"] == "request_failed" and refused["reason"] == "unknown_idp"
    assert not _events_of(obs, forged)


def test_the_error_page_shows_the_request_id(obs: DevStack) -> None:
    response = httpx.get(f"{obs.broker_url}/login/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert f"<code>{response.headers['x-request-id']}</code>" in response.text


def test_a_trusted_proxys_id_is_kept_everywhere(obs: DevStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broker.access")
    proxy_id = "Root=1-67a1b2c3-abcdef0123456789abcdef01"
    with variant(obs, trusted="127.0.0.1", access_log="all") as url:
        ok = httpx.get(f"{url}/login/dev", headers={"X-Request-Id": proxy_id})
        refused = httpx.get(f"{url}/login/nowhere", headers={"X-Request-Id": proxy_id + "-2", **JSON})
    assert ok.status_code == 303 and ok.headers["x-request-id"] == proxy_id
    [started] = _events_of(obs, proxy_id)
    assert started["event"] == "login_started"
    assert refused.json()["request_id"] == refused.headers["x-request-id"] == proxy_id + "-2"
    [failed] = _events_of(obs, proxy_id + "-2")
    assert failed["reason"] == "unknown_idp"
    lines = [r.getMessage() for r in caplog.records if r.name == "broker.access"]
    assert any(line.startswith("GET /login/dev 303 ") and line.endswith(f" {proxy_id}") for line in lines)


@pytest.mark.parametrize("hostile", [
    "a" * 10 * 1024,  # 10 KB
    "%0d%0aSet-Cookie: injected=1",
    "<script>alert(1)</script>",
    'id" , "admin": "true',
    "id with spaces",
    "",
])
def test_a_hostile_id_even_from_a_trusted_proxy_is_replaced(obs: DevStack, hostile: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broker.access")
    with variant(obs, trusted="127.0.0.1", access_log="all") as url:
        response = httpx.get(f"{url}/login/nowhere", headers={"X-Request-Id": hostile, **JSON})
    assert response.status_code == 404
    rid = response.headers["x-request-id"]
    assert GENERATED.fullmatch(rid) and response.json()["request_id"] == rid
    assert _events_of(obs, rid)
    if hostile:
        assert hostile not in obs.audit_path.read_text()
        assert not any(hostile in r.getMessage() for r in caplog.records)


def test_two_ids_from_a_proxy_are_none(obs: DevStack) -> None:
    with variant(obs, trusted="127.0.0.1") as url:
        response = httpx.get(f"{url}/healthz", headers=[("X-Request-Id", "one"), ("X-Request-Id", "two")])
    assert GENERATED.fullmatch(response.headers["x-request-id"])


def _raw(url: str, head: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_carriage_return_in_the_id_never_reaches_an_answer(obs: DevStack) -> None:
    """A bare CR inside the header value, sent byte for byte (httpx refuses to): the server refuses the request
    or the broker replaces the id; the bytes after the CR never come back as a header."""
    with variant(obs, trusted="127.0.0.1") as url:
        answer = _raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           b"X-Request-Id: abc\rSet-Cookie: injected=1\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"injected" not in head
    status = int(head.split(b" ", 2)[1])
    assert status == 400 or re.search(rb"x-request-id: [0-9a-f]{32}\r\n", head + b"\r\n")


def test_a_token_endpoint_refusal_carries_the_request_id(obs: DevStack) -> None:
    response = httpx.post(f"{obs.broker_url}/oauth2/token", data={"grant_type": "password"})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
    rid = response.headers["x-request-id"]
    assert response.json()["request_id"] == rid
    [refused] = _events_of(obs, rid)
    assert refused["event"] == "request_failed" and refused["error_id"] == response.json()["error_id"]
