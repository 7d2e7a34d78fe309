"""Two broker replicas sharing one Redis (a real redis-server), as platform teams deploy it: a login may
start on one replica and finish on the other, a replay is refused on every replica, sessions and rate
limits are shared, logout on one ends the session on both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DevStack
from broker.web.app import create_app
from tests.flows.test_refusals import JSON, assert_refused


@pytest.fixture
def replicas(stack: DevStack) -> Iterator[tuple[str, str]]:
    """Replica A answers at the public URL; replica B is reached directly, as a load balancer would."""
    with running_redis() as redis, ExitStack() as stack_of_servers:
        port_a, port_b = free_port(), free_port()
        settings = stack.settings.model_copy(update={
            "public_url": f"http://{LOOPBACK}:{port_a}",
            "store": stack.settings.store.model_copy(update={"url": SecretStr(f"{redis.url}/3")}),
            "rate_limits": stack.settings.rate_limits.model_copy(
                update={"login_starts": 6, "window": timedelta(seconds=60)}),
        })
        for port in (port_a, port_b):
            stack_of_servers.enter_context(asgi_server(create_app(settings, audit=AuditLog(str(stack.audit_path))),
                                                       port))
        yield f"http://{LOOPBACK}:{port_a}", f"http://{LOOPBACK}:{port_b}"


def on(url: str, replica: str) -> str:
    parts, target = urlsplit(url), urlsplit(replica)
    return parts._replace(scheme=target.scheme, netloc=target.netloc).geturl()


def test_login_across_replicas_and_replay_refused_everywhere(stack: DevStack, replicas: tuple[str, str]) -> None:
    a, b = replicas
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        callback = browser.authorize_at_idp(client, browser.start_login(client, a, "dev"), "alice")
        binding = client.cookies.get("sts_broker_login") or ""
        assert client.get(on(callback, b)).status_code == 303  # finished on the other replica
        client.cookies.set("sts_broker_login", binding, path=urlsplit(callback).path)
        assert_refused(stack, client.get(on(callback, a)), 400, "state_unknown")
        assert browser.roles(client, a)["identity"]["subject"] == "alice"  # session made on B, read on A
        csrf = browser.roles(client, b)["csrf_token"]
        assert client.post(f"{a}/logout", data={"csrf_token": csrf}).status_code == 303
    with httpx.Client() as other:
        other.cookies.set("sts_broker_session", client.cookies.get("sts_broker_session") or "gone")
        assert other.get(f"{b}/roles", headers=JSON).status_code == 401


def test_rate_limit_is_shared(stack: DevStack, replicas: tuple[str, str]) -> None:
    a, b = replicas
    with httpx.Client(headers=JSON) as client:
        statuses = [client.get(f"{(a, b)[i % 2]}/login/dev").status_code for i in range(6)]
        assert statuses == [303] * 6
        assert_refused(stack, client.get(f"{b}/login/dev"), 429, "rate_limited")
        assert_refused(stack, client.get(f"{a}/login/dev"), 429, "rate_limited")
