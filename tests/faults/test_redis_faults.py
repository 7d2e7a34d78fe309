"""The state store (a private redis-server) stopped at start, mid-login, and restarted: each a clear 503 within
the store's deadline, no session and no credentials half made, the process stays up, and it recovers by itself
when Redis is back (no restart of the broker)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import yaml
from pydantic import SecretStr

from broker.devstack import browser
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import free_port
from broker.devstack.stack import DevStack
from tests.faults.conftest import DEV, assert_refused, issued_count
from tests.flows.test_forwarded import serving
from tests.support.own_stack import moved, scrape, variant

STORE_DEADLINE = 2.0  # the Redis store's connect and reply timeout
JSON = {"Accept": "application/json"}


@contextmanager
def replica_on(stack: DevStack, port: int) -> Iterator[str]:
    """A replica of the stack's broker (same public URL, so IAM trusts its tokens) on the Redis at `port`."""
    with variant(stack, replica=True, store=stack.settings.store.model_copy(update={
            "url": SecretStr(f"redis://127.0.0.1:{port}/0")})) as url:
        yield url


def _callback_at(stack: DevStack, url: str, client: httpx.Client) -> str:
    """Start a login at the replica and sign in at the IdP: the callback URL, aimed at the replica (the load
    balancer's public URL is the stack's)."""
    callback = browser.authorize_at_idp(client, browser.start_login(client, url, "dev"), "bob")
    assert callback.startswith(stack.broker_url)
    return url + callback.removeprefix(stack.broker_url)


def _sign_in_and_issue(stack: DevStack, url: str, client: httpx.Client) -> None:
    assert client.get(_callback_at(stack, url, client)).status_code == 303
    csrf = browser.roles(client, url)["csrf_token"]
    response = browser.post_role(client, url, "credentials", DEV, csrf)
    assert response.status_code == 200 and response.json()["AccessKeyId"]


def _eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not recover in time"
        time.sleep(0.2)


def _timed(call: Callable[[], httpx.Response]) -> httpx.Response:
    started = time.monotonic()
    response = call()
    assert time.monotonic() - started < STORE_DEADLINE * 2 + 1
    return response


def test_redis_down_at_start_then_up(stack: DevStack) -> None:
    port = free_port()
    with replica_on(stack, port) as url, browser.browser() as client:
        before = scrape(url)
        ready = _timed(lambda: httpx.get(f"{url}/readyz"))
        assert ready.status_code == 503 and ready.json()["checks"]["store"] == "store_unavailable"
        assert str(port) not in ready.text
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, only not ready
        refused = _timed(lambda: client.get(f"{url}/login/dev", headers=JSON))
        assert_refused(stack, refused, 503, "store_unavailable")
        assert "state store is unavailable" in refused.json()["message"]
        assert moved(before, scrape(url), "sts_broker_store_errors_total", reason="store_unavailable") >= 2
        with running_redis(port=port):
            _eventually(lambda: httpx.get(f"{url}/readyz").status_code == 200)
            _sign_in_and_issue(stack, url, client)


def test_redis_down_mid_login(stack: DevStack) -> None:
    port = free_port()
    with replica_on(stack, port) as url, browser.browser() as client:
        with running_redis(port=port):
            callback = _callback_at(stack, url, client)  # the pending login is in Redis
        issued = issued_count(stack)
        refused = _timed(lambda: client.get(callback, headers=JSON))
        assert_refused(stack, refused, 503, "store_unavailable")
        assert "set-cookie" not in refused.headers and issued_count(stack) == issued
        with running_redis(port=port):  # back, empty: the half-done login is gone, a new one works
            assert client.get(callback, headers=JSON).status_code == 400
            _sign_in_and_issue(stack, url, client)


def test_redis_restarted_under_a_signed_in_person(stack: DevStack) -> None:
    port = free_port()
    with replica_on(stack, port) as url, browser.browser() as client:
        with running_redis(port=port):
            _sign_in_and_issue(stack, url, client)
            csrf = browser.roles(client, url)["csrf_token"]
        issued = issued_count(stack)
        down = _timed(lambda: browser.post_role(client, url, "credentials", DEV, csrf))
        assert_refused(stack, down, 503, "store_unavailable")
        assert "AccessKeyId" not in down.text and issued_count(stack) == issued
        with running_redis(port=port):
            # Its session was in the Redis that went away: asked to sign in again, not a 5xx.
            assert client.get(f"{url}/roles", headers=JSON).status_code == 401
            _sign_in_and_issue(stack, url, client)  # rate-limit scripts reloaded (NOSCRIPT), sessions anew
            assert httpx.get(f"{url}/readyz").status_code == 200


def test_serve_starts_with_redis_down_and_becomes_ready_by_itself(stack: DevStack) -> None:
    """`sts-broker serve` itself (its own process): it starts without its Redis, alive but not ready, and
    turns ready once Redis answers."""
    port = free_port()
    config = yaml.safe_load((stack.workdir / "broker.yaml").read_text())
    config["store"] = {"url": f"redis://127.0.0.1:{port}/0"}
    path = stack.workdir / "broker-redis-later.yaml"  # beside broker.yaml: its relative paths still hold
    path.write_text(yaml.safe_dump(config))
    with serving(path) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["store"] == "store_unavailable"
        with running_redis(port=port):
            _eventually(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200)
