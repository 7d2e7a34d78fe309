"""/static/{name}: the files of broker/web/static by name, with exact types; a URL with the file's current
hash is cached for a year as immutable, any other briefly; names outside the table, and every way of
writing a path out of the folder, are the broker's 404."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from broker.devstack.stack import DevStack
from broker.web.routes_static import IMMUTABLE, SHORT, static_url
from tests.web_shell.conftest import audit_events, default_policy

STATIC = Path(__file__).resolve().parents[2] / "broker" / "web" / "static"
TYPES = {"broker.css": "text/css; charset=utf-8", "pageshow.js": "text/javascript; charset=utf-8",
         "saml-post.js": "text/javascript; charset=utf-8"}


@pytest.mark.parametrize("name", sorted(TYPES))
def test_a_versioned_url_is_immutable(shell_stack: DevStack, name: str) -> None:
    body = (STATIC / name).read_bytes()
    url = static_url(name)
    assert url == f"/static/{name}?v={hashlib.sha256(body).hexdigest()[:16]}"
    response = httpx.get(f"{shell_stack.broker_url}{url}")
    assert response.status_code == 200 and response.content == body
    assert response.headers["content-type"] == TYPES[name]
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable" == IMMUTABLE
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("content-security-policy") == [default_policy(shell_stack)]


@pytest.mark.parametrize("query", ["", "?v=0123456789abcdef", "?v=", "?other=1"])
def test_any_other_url_is_cached_briefly(shell_stack: DevStack, query: str) -> None:
    response = httpx.get(f"{shell_stack.broker_url}/static/broker.css{query}")
    assert response.status_code == 200 and response.content == (STATIC / "broker.css").read_bytes()
    assert response.headers["cache-control"] == SHORT == "public, max-age=300"


def test_pages_link_the_current_versions(shell_stack: DevStack) -> None:
    page = httpx.get(f"{shell_stack.broker_url}/").text
    assert f'href="{static_url("broker.css")}"' in page and f'src="{static_url("pageshow.js")}"' in page


# Sent as raw_path (httpx still merges a plain `..` segment: that form reaches the broker as another path).
@pytest.mark.parametrize("raw", [
    "/static/nope.js", "/static/", "/static/BROKER.CSS", "/static/.broker.css", "/static/broker.css~",
    "/static/../web/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py", "/static/%2e%2e/render.py",
    "/static/..%5capp.py", "/static/broker.css%00.js", "/static/broker.css/", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/....//app.py", "/static/__init__.py",
])
def test_unknown_names_and_traversal_are_the_brokers_404(shell_stack: DevStack, raw: str) -> None:
    target = httpx.URL(shell_stack.broker_url).copy_with(raw_path=raw.encode())
    before = len(audit_events(shell_stack))
    response = httpx.get(target, headers={"Accept": "application/json"})
    assert response.status_code == 404, raw
    body = response.json()
    assert body["error"] in {"static_not_found", "route_not_found"}
    assert set(body) == {"error", "message", "error_id", "request_id"}
    assert "import" not in response.text and "root:" not in response.text
    [event] = [e for e in audit_events(shell_stack)[before:] if e["event"] == "request_failed"]
    assert (event["reason"], event["error_id"]) == (body["error"], body["error_id"])
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_name_is_the_page_for_a_browser(shell_stack: DevStack) -> None:
    response = httpx.get(f"{shell_stack.broker_url}/static/app.py", headers={"Accept": "text/html"})
    assert response.status_code == 404 and "No such file." in response.text and "error id" in response.text
