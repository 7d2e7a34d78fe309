"""Every answer of the broker carries its security headers, pages and errors alike (200, 303, 404, 405, and
the 500 of an exception no handler knows), and every error is one shape: the broker's page for a browser,
its JSON body for a program, each with an error id that is also in the audit log."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.stack import DevStack
from broker.web.csp import FIXED
from tests.web_shell.conftest import BOOM, audit_events, default_policy

TEMPLATES = Path(__file__).resolve().parents[2] / "broker" / "web" / "templates"
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml"}
ERROR_ID = re.compile(r"[0-9a-f]{12}")


def _assert_secured(stack: DevStack, response: httpx.Response) -> None:
    headers = response.headers
    assert headers.get_list("content-security-policy") == [default_policy(stack)], response.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def _error_id_on_page(response: httpx.Response) -> str:
    found = re.search(r"error id <code>([0-9a-f]{12})</code>", response.text)
    assert found, response.text[:500]
    return found.group(1)


def _audited(stack: DevStack, error_id: str) -> dict[str, object]:
    [event] = [e for e in audit_events(stack) if e.get("error_id") == error_id]
    return event


def test_the_policy_allows_no_inline_script_or_style(shell_stack: DevStack) -> None:
    policy = default_policy(shell_stack)
    assert "unsafe" not in policy and "data:" not in policy.split("img-src", 1)[0]
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["img-src"] == "'self' data:"
    assert directives["base-uri"] == "'none'" and directives["frame-ancestors"] == "'none'"
    # Forms go to the broker, and what its POSTs redirect to: the AWS sign-in (the stack's local one here)
    # and the command line's loopback redirect.
    sources = directives["form-action"].split()
    assert sources[0] == "'self'" and "https://signin.aws.amazon.com" in sources and "http://127.0.0.1:*" in sources
    federation = shell_stack.settings.aws.federation_url or ""
    assert federation.rsplit("/", 1)[0] in sources


def test_templates_carry_no_inline_script_style_or_handler() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert "<style" not in text and not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text) and "javascript:" not in text, template.name


def test_pages_and_redirects_are_secured(shell_stack: DevStack) -> None:
    url = shell_stack.broker_url
    with browser.browser() as client:
        for response in (client.get(f"{url}/"), client.get(f"{url}/roles"), client.get(f"{url}/openapi.json")):
            _assert_secured(shell_stack, response)
        landed = browser.login(client, url, "dev", "alice")
        assert landed.status_code == 303
        roles = client.get(f"{url}/roles")
        assert roles.status_code == 200 and roles.headers["cache-control"] == "no-store"
        _assert_secured(shell_stack, roles)
        assert 'class="who"' in roles.text and "alice@example.com" in roles.text and 'action="/logout"' in roles.text


@pytest.mark.parametrize("path", ["/no/such/page", "/roles/", "/static/nope.css"])
def test_not_found_is_the_brokers_page_or_json(shell_stack: DevStack, path: str) -> None:
    url = shell_stack.broker_url
    page = httpx.get(f"{url}{path}", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    _assert_secured(shell_stack, page)
    assert '<main id="main"' in page.text and "Skip to content" in page.text  # the shell, not plain text
    assert _audited(shell_stack, _error_id_on_page(page))["status"] == 404
    api = httpx.get(f"{url}{path}", headers=JSON)
    body = api.json()
    assert api.status_code == 404 and set(body) == {"error", "message", "error_id", "request_id"}
    assert ERROR_ID.fullmatch(body["error_id"]) and _audited(shell_stack, body["error_id"])["reason"] == body["error"]
    _assert_secured(shell_stack, api)


def test_wrong_method_is_the_brokers_405(shell_stack: DevStack) -> None:
    url = shell_stack.broker_url
    page = httpx.delete(f"{url}/sessions", headers=HTML)
    assert page.status_code == 405 and "GET" in page.headers["allow"]
    assert "This address does not accept this kind of request." in page.text
    _assert_secured(shell_stack, page)
    assert _audited(shell_stack, _error_id_on_page(page))["reason"] == "method_not_allowed"
    # A program's endpoint answers JSON whatever the Accept header.
    api = httpx.get(f"{url}/oauth2/token", headers=HTML)
    assert api.status_code == 405 and api.json()["error"] == "method_not_allowed"
    _assert_secured(shell_stack, api)


def test_an_unexpected_exception_is_the_brokers_500_with_its_headers(shell_stack: DevStack) -> None:
    url = shell_stack.broker_url
    page = httpx.get(f"{url}{BOOM}", headers=HTML)
    assert page.status_code == 500 and page.headers["content-type"] == "text/html; charset=utf-8"
    _assert_secured(shell_stack, page)
    assert "The broker could not complete the request." in page.text and "hunter2" not in page.text
    event = _audited(shell_stack, _error_id_on_page(page))
    assert (event["reason"], event["status"], event["detail"]) == ("internal_error", 500, "RuntimeError")
    api = httpx.post(f"{url}{BOOM}", headers=JSON)
    assert api.status_code == 500 and api.json()["error"] == "internal_error" and "hunter2" not in api.text
    _assert_secured(shell_stack, api)


def test_the_shell(shell_stack: DevStack) -> None:
    page = httpx.get(f"{shell_stack.broker_url}/")
    text = page.text
    assert text.startswith("<!doctype html>") and '<html lang="en">' in text
    assert re.search(r'<a class="skip" href="#main">Skip to content</a>', text)
    assert "<header" in text and '<main id="main"' in text and "<footer" in text
    assert 'class="who"' not in text  # nobody signed in: no sign-out button
    assert re.search(r'<link rel="stylesheet" href="/static/broker\.css\?v=[0-9a-f]{16}">', text)
    assert re.search(r'<script src="/static/pageshow\.js\?v=[0-9a-f]{16}" defer></script>', text)
    assert FIXED in default_policy(shell_stack)
