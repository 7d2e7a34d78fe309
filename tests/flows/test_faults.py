"""Faults close: STS that hangs or is gone, too many login starts. Clear status, audit event, nothing issued."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DevStack
from broker.web.app import create_app
from tests.flows.test_refusals import DEV, assert_refused, issued_count


@contextmanager
def variant(stack: DevStack, aws: dict[str, Any] | None = None, **updates: Any) -> Iterator[str]:
    """The stack's broker settings with changes, served by a second broker on its own port."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    settings = stack.settings.model_copy(update={
        "public_url": url, "aws": stack.settings.aws.model_copy(update=aws or {}), **updates})
    with asgi_server(create_app(settings, audit=AuditLog(str(stack.audit_path))), port):
        yield url


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: an STS that hangs."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        sock.close()


def _bob_csrf(client: httpx.Client, url: str) -> str:
    assert browser.login(client, url, "dev", "bob").status_code == 303
    csrf: str = browser.roles(client, url)["csrf_token"]
    return csrf


def test_sts_hanging_gives_504_within_the_deadline(stack: DevStack) -> None:
    hanging = {"read_timeout": timedelta(seconds=1)}
    with silent_server() as sts, variant(stack, aws={"sts_endpoint_url": sts, **hanging}) as url, \
            browser.browser() as client:
        csrf = _bob_csrf(client, url)
        before = issued_count(stack)
        response = browser.post_role(client, url, "credentials", DEV, csrf)
        assert_refused(stack, response, 504, "sts_timeout")
        assert response.elapsed.total_seconds() < 8
        assert issued_count(stack) == before


def test_sts_unreachable_gives_503(stack: DevStack) -> None:
    closed = f"http://{LOOPBACK}:{free_port()}"
    with variant(stack, aws={"sts_endpoint_url": closed}) as url, browser.browser() as client:
        csrf = _bob_csrf(client, url)
        response = browser.post_role(client, url, "console", DEV, csrf)
        assert_refused(stack, response, 503, "sts_unreachable")


def test_login_starts_are_rate_limited(stack: DevStack) -> None:
    limits = stack.settings.rate_limits.model_copy(update={"login_starts": 3, "window": timedelta(seconds=60)})
    with variant(stack, rate_limits=limits) as url, browser.browser() as client:
        client.headers["Accept"] = "application/json"
        for _ in range(3):
            assert client.get(f"{url}/login/dev").status_code == 303
        response = client.get(f"{url}/login/dev")
        assert_refused(stack, response, 429, "rate_limited")
        assert response.headers["retry-after"] == "60"


def test_idp_down_gives_502(stack: DevStack, tmp_path: Any) -> None:
    """A configured IdP whose discovery endpoint does not answer: a clear 502, no redirect anywhere."""
    import yaml

    from broker.config import load_settings

    idps = tmp_path / "idp_configs"
    idps.mkdir()
    (idps / "down.yaml").write_text(yaml.safe_dump({
        "id": "down", "type": "oidc", "name": "Down", "issuer": f"http://{LOOPBACK}:{free_port()}",
        "client_id": "c", "timeout": "2s"}))
    settings = load_settings(stack.workdir / "broker.yaml")
    with variant(stack, idp_configs=idps, rules=settings.rules) as url, httpx.Client(headers={
            "Accept": "application/json"}) as client:
        assert_refused(stack, client.get(f"{url}/login/down"), 502, "idp_unreachable")
