"""TLS and ACL users toward Redis, as managed Redis runs them (ElastiCache in-transit encryption with RBAC,
ElastiCache Serverless: cluster mode + TLS, MemoryDB): a throwaway CA, redis-server TLS ports, an ACL user
limited to the broker's keys and commands; settings (store.username/password/tls) completing the URL, and a
setting that can never work refused at start-up with a clear message (and no secret in it)."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Iterator

import pytest

from broker.devstack.redis_server import running_redis
from broker.devstack.redis_tls import SERVER_NAME, TlsFiles, make_tls_files
from broker.devstack.redis_topologies import RedisCluster, running_cluster
from broker.devstack.servers import free_port
from broker.errors import ConfigError, StoreUnavailable
from broker.redis_urls import RedisOptions, store_options
from broker.settings import StoreConfig
from broker.store import RedisStore, StateStore, open_store
from broker.store_probe import check_at_start

pytestmark = pytest.mark.anyio

PASSWORD = "acl-pw-5b9e2d71c4"
PREFIX = "sts-broker:"
# The least an ACL user needs (README, "Managed Redis"): its own keys, reads, writes, the scripts, PING,
# and the slot map in cluster mode.
ACL = f"broker on >{PASSWORD} ~{PREFIX}* +@read +@write +@scripting +ping +cluster|slots"
LONG = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture(scope="module")
def tls_port(tls: TlsFiles) -> Iterator[int]:
    """TLS port (client certificates optional), a plain port beside it, an ACL user for the broker."""
    port = free_port()
    with running_redis(*tls.server_args(port), "--user", *ACL.split()):
        yield port


@pytest.fixture(scope="module")
def mtls_port(tls: TlsFiles) -> Iterator[int]:
    port = free_port()
    with running_redis(*tls.server_args(port, client_certs="yes")):
        yield port


@pytest.fixture(scope="module")
def tls_cluster(tls: TlsFiles) -> Iterator[RedisCluster]:
    with running_cluster(3, 0, "--user", *ACL.split(), tls=tls) as cluster:
        yield cluster


def broker_options(tls: TlsFiles, **changes: str) -> RedisOptions:
    values = {"username": "broker", "password": PASSWORD, "tls_ca_file": str(tls.ca)} | changes
    return RedisOptions(**values)


@pytest.fixture
def key() -> str:
    return f"session:{uuid.uuid4().hex}"


async def round_trip(store: StateStore, key: str) -> None:
    try:
        await store.put(key, "over tls", LONG)
        assert await store.get(key) == "over tls"
        assert await store.incr_all([f"rate:{key}", f"rate:other-{key}"], LONG) == [1, 1]
        await store.set_add(f"index:{key}", "m", LONG)
        assert await store.set_members(f"index:{key}") == {"m"}
        assert await store.pop(key) == "over tls"
        await store.ping()
    finally:
        await store.close()


async def test_tls_and_an_acl_user_from_the_settings(tls: TlsFiles, tls_port: int, key: str) -> None:
    config = StoreConfig.model_validate({"url": f"rediss://127.0.0.1:{tls_port}", "username": "broker",
                                         "password": PASSWORD, "tls": {"ca_file": str(tls.ca)}})
    await round_trip(open_store(config.url.get_secret_value(), options=store_options(config)), key)


async def test_the_acl_user_is_held_to_its_keys(tls: TlsFiles, tls_port: int) -> None:
    store = RedisStore(f"rediss://127.0.0.1:{tls_port}", prefix="someone-else:", options=broker_options(tls))
    try:
        with pytest.raises(StoreUnavailable, match="NOPERM"):
            await store.get("session:a")
    finally:
        await store.close()


async def test_a_client_certificate_where_the_server_asks_for_one(tls: TlsFiles, mtls_port: int, key: str) -> None:
    url = f"rediss://127.0.0.1:{mtls_port}"
    without = RedisStore(url, options=RedisOptions(tls_ca_file=str(tls.ca)), timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            await without.ping()
    finally:
        await without.close()
    options = RedisOptions(tls_ca_file=str(tls.ca), tls_cert_file=str(tls.client_cert),
                           tls_key_file=str(tls.client_key))
    await round_trip(RedisStore(url, options=options), key)


async def test_the_server_name_verified_is_the_one_set(tls: TlsFiles, tls_port: int, key: str) -> None:
    named = broker_options(tls, tls_server_name=SERVER_NAME)
    await round_trip(RedisStore(f"rediss://127.0.0.1:{tls_port}", options=named), key)
    wrong = RedisStore(f"rediss://127.0.0.1:{tls_port}", options=broker_options(tls, tls_server_name="other.test"))
    with pytest.raises(ConfigError, match=r"SSLCertVerificationError.*store.tls.server_name"):
        await check_at_start(wrong, "rediss://")
    await wrong.close()


async def test_cluster_mode_over_tls_with_an_acl_user(tls: TlsFiles, tls_cluster: RedisCluster, key: str) -> None:
    """ElastiCache Serverless: cluster mode, TLS only, an ACL user. The slot map is read over TLS, and names
    the TLS ports."""
    await round_trip(RedisStore(tls_cluster.tls_url, options=broker_options(tls)), key)
    keys = [f"rate:{n}-{key}" for n in range(6)]
    store = RedisStore(tls_cluster.tls_url, options=broker_options(tls))
    try:
        assert await store.incr_all(keys, LONG) == [1] * 6
    finally:
        await store.close()


def no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert PASSWORD not in text and "wrong-pw" not in text


@pytest.mark.parametrize(("scheme", "options", "says"), [
    ("rediss", {"password": "wrong-pw-0000"}, "WRONGPASS.*store.username / store.password"),
    ("rediss", {"tls_ca_file": ""}, "SSLCertVerificationError.*store.tls.ca_file"),
    ("redis", {"tls_ca_file": ""}, "closed the connection at once.*use rediss://"),
])
async def test_a_store_that_can_never_work_stops_the_start(tls: TlsFiles, tls_port: int, scheme: str,
                                                          options: dict[str, str], says: str) -> None:
    url = f"{scheme}://127.0.0.1:{tls_port}"
    store = RedisStore(url, options=broker_options(tls, **options) if scheme == "rediss" else
                       RedisOptions(username="broker", password=PASSWORD), timeout=1.0)
    try:
        with pytest.raises(ConfigError, match=says) as caught:
            await check_at_start(store, url)
    finally:
        await store.close()
    no_secret(caught.value)


async def test_tls_toward_a_plain_port_stops_the_start(tls: TlsFiles) -> None:
    with running_redis() as plain:
        url = f"rediss://127.0.0.1:{plain.port}"
        store = RedisStore(url, options=RedisOptions(tls_ca_file=str(tls.ca)), timeout=1.0)
        try:
            with pytest.raises(ConfigError, match=r"TLS handshake not answered.*use redis://"):
                await check_at_start(store, url)
        finally:
            await store.close()


async def test_a_store_that_is_only_down_does_not_stop_the_start(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    store = RedisStore(url, timeout=0.5)
    try:
        await check_at_start(store, url)  # the broker starts; /readyz says 503 until Redis answers
    finally:
        await store.close()
    assert "not reachable at start-up" in caplog.text and "connect failed" in caplog.text


def test_tls_settings_need_a_tls_url() -> None:
    with pytest.raises(ValueError, match="store tls is set but the url is redis://"):
        StoreConfig.model_validate({"url": "redis://127.0.0.1:6379", "tls": {"ca_file": "ca.pem"}})
    with pytest.raises(ValueError, match="store tls settings are set but the url is redis"):
        open_store("redis://127.0.0.1:6379", options=RedisOptions(tls_ca_file="ca.pem"))


async def test_a_topology_mismatch_says_which_url_to_use() -> None:
    """A cluster URL toward one node stops the start; one node's URL toward a cluster node fails the first
    command for a key of another node's slot, naming the URL to use."""
    with running_redis() as single:
        url = f"redis+cluster://127.0.0.1:{single.port}"
        store = RedisStore(url)
        try:
            with pytest.raises(ConfigError, match=r"not a cluster .*use redis:// or rediss://"):
                await check_at_start(store, url)
        finally:
            await store.close()
    with running_cluster() as cluster:
        url = f"redis://127.0.0.1:{cluster.ports[0]}"
        store = RedisStore(url)
        try:
            with pytest.raises(StoreUnavailable, match="a cluster node: use a redis\\+cluster://"):
                for n in range(20):  # some key of these is in another node's slot
                    await store.get(f"session:{n}")
        finally:
            await store.close()
