"""The console's federation endpoint (getSigninToken) down, failing or answering garbage: a 502 that says so,
no console URL and no sign-in token handed out, and the next console request works once it is back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from broker.devstack import browser
from broker.devstack.servers import LOOPBACK, free_port, http_server
from broker.devstack.stack import DevStack
from tests.faults.conftest import DEV, assert_refused, signed_in
from tests.support.own_stack import audit_events, variant


@contextmanager
def federation_answering(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        yield f"{url}/federation"


@contextmanager
def federation_down() -> Iterator[str]:
    yield f"http://{LOOPBACK}:{free_port()}/federation"


def _consoles(stack: DevStack) -> int:
    return sum(e["event"] == "console_issued" for e in audit_events(stack))


@pytest.mark.parametrize(("endpoint", "reason"), [
    (federation_down, "federation_unreachable"),
    (lambda: federation_answering(500, b"Internal Failure"), "federation_unavailable"),
    (lambda: federation_answering(503, b""), "federation_unavailable"),
    (lambda: federation_answering(200, b"<html>not json</html>"), "federation_bad_answer"),
    (lambda: federation_answering(200, b'{"SigninToken": ""}'), "federation_bad_answer"),
])
def test_the_federation_endpoint_failing_is_a_502(stack: DevStack, endpoint: Any, reason: str) -> None:
    with browser.browser() as client:
        csrf = signed_in(client, stack.broker_url)
        with endpoint() as federation, variant(stack, replica=True, aws={"federation_url": federation}) as url:
            consoles = _consoles(stack)
            response = browser.post_role(client, url, "console", DEV, csrf)
            assert_refused(stack, response, 502, reason)
            assert "location" not in response.headers and "SigninToken" not in response.text
            assert _consoles(stack) == consoles
        # The stack's own federation endpoint, well: the console again.
        assert browser.post_role(client, stack.broker_url, "console", DEV, csrf).status_code == 303
        assert _consoles(stack) == consoles + 1


def test_console_refusal_body_names_no_address(stack: DevStack) -> None:
    with browser.browser() as client, federation_down() as federation:
        csrf = signed_in(client, stack.broker_url)
        with variant(stack, replica=True, aws={"federation_url": federation}) as url:
            response = browser.post_role(client, url, "console", DEV, csrf)
    assert response.status_code == 502
    assert federation.split("/")[2] not in response.text
