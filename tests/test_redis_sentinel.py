"""The Redis store behind Sentinel (a primary, a replica, two sentinels, all local): the primary found through
the sentinels, and a failover in the middle of a login. The broker runs for real over HTTP with the local AWS
stack; the store conformance suite also runs behind Sentinel (tests/test_store.py, `sentinel`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr

from broker.devstack import browser
from broker.devstack.dev_saml_idp import idp_login_page, submit
from broker.devstack.redis_server import running_redis
from broker.devstack.redis_topologies import SentinelSetup, running_sentinel
from broker.devstack.servers import asgi_server
from broker.devstack.stack import SAML_IDP_ID, DevStack, run_stack
from broker.errors import StoreUnavailable
from broker.store import RedisStore
from broker.web.app import create_app

pytestmark = pytest.mark.anyio

ACCOUNT = "606060606060"
LONG = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sentinel() -> Iterator[SentinelSetup]:
    with running_sentinel(sentinels=2) as setup:
        yield setup


@pytest.fixture(scope="module")
def broker_sentinel() -> Iterator[SentinelSetup]:
    with running_sentinel(sentinels=2) as setup:
        yield setup


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, broker_sentinel: SentinelSetup) -> Iterator[DevStack]:
    """One per module: the local AWS's IAM is process-wide, so a second stack in this account would collide."""
    with run_stack(tmp_path_factory.mktemp("stack"), account_id=ACCOUNT,
                   overrides={"store": {"url": broker_sentinel.url}}) as made:
        yield made


def test_a_login_started_before_a_failover_finishes_after_it(stack: DevStack, broker_sentinel: SentinelSetup
                                                             ) -> None:
    sentinel = broker_sentinel
    old_primary = sentinel.primary_port()
    with browser.browser() as client:
        authorize = browser.start_login(client, stack.broker_url, "dev")  # the pending login is on the primary
        sentinel.replicated()  # and on the replica, before it is promoted
        new_primary = sentinel.failover()
        assert new_primary == sentinel.replica.port != old_primary
        callback = browser.authorize_at_idp(client, authorize, "alice")
        landed = client.get(callback)
        assert landed.status_code == 303 and landed.headers["location"] == "/roles"
        assert browser.roles(client, stack.broker_url)["identity"]["subject"] == "alice"
        replay = client.get(callback)  # the state was taken on the new primary: single use still holds
        assert replay.status_code == 400
    with redis.Redis(port=new_primary, decode_responses=True) as node:
        assert not [key for key in node.scan_iter(count=1000) if key.startswith("sts-broker:login:")]


def test_a_saml_login_started_before_a_failover_finishes_after_it(stack: DevStack, broker_sentinel: SentinelSetup
                                                                  ) -> None:
    old_primary = broker_sentinel.primary_port()
    with browser.browser() as client:
        form = idp_login_page(client, stack.broker_url, SAML_IDP_ID)  # the AuthnRequest's ID is in the store
        broker_sentinel.replicated()
        assert broker_sentinel.failover() != old_primary
        answer = submit(client, form, username="alice")  # signed in at the IdP
        landed = submit(client, answer)  # the ACS post: the request ID taken on the new primary
        assert landed.status_code == 303, landed.text[:300]
        assert browser.roles(client, stack.broker_url)["identity"]["subject"]


async def test_the_store_follows_a_crashed_primarys_replacement(sentinel: SentinelSetup) -> None:
    prefix = f"s-{uuid.uuid4().hex}:"
    store = RedisStore(sentinel.url, prefix=prefix, timeout=0.5)
    try:
        await store.put("login:a", "pending", LONG)
        sentinel.replicated()
        new_primary = await asyncio.to_thread(sentinel.kill_primary)
        assert new_primary == sentinel.replica.port
        assert await store.pop("login:a") == "pending"
        assert await store.pop("login:a") is None
        assert await store.incr("rate:a", LONG) == 1
        with redis.Redis(port=new_primary, decode_responses=True) as node:
            assert node.get(prefix + "rate:a") == "1"
    finally:
        await store.close()


async def test_a_service_the_sentinels_do_not_know_is_store_unavailable(sentinel: SentinelSetup) -> None:
    url = sentinel.url.rsplit("/", 1)[0] + "/no-such-service"
    store = RedisStore(url)
    try:
        with pytest.raises(StoreUnavailable, match="sentinels do not know the service 'no-such-service'"):
            await store.ping()
    finally:
        await store.close()


# uvicorn ends a failed start-up with SystemExit(3), here in the server's thread rather than the process.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_app_does_not_start_on_a_store_that_can_never_work(stack: DevStack, capfd: pytest.CaptureFixture[str]
                                                               ) -> None:
    """A wrong password stops the start-up with the fix named; the password itself is never printed."""
    with running_redis("--requirepass", "the-right-password-1f4e") as locked:
        url = f"redis://:the-wrong-password-77ab@127.0.0.1:{locked.port}/0"
        settings = stack.settings.model_copy(update={
            "store": stack.settings.store.model_copy(update={"url": SecretStr(url)})})
        with pytest.raises(RuntimeError, match="did not start"), asgi_server(create_app(settings)):
            pass
    printed = capfd.readouterr().err
    assert "WRONGPASS" in printed and "store.username / store.password" in printed
    assert "the-wrong-password" not in printed and "the-right-password" not in printed
