"""Store URLs for every Redis deployment, and the client each one gets.

    redis://[user:pass@]host:port/db            one node (also rediss:// for TLS, unix:///path.sock)
    redis+cluster://[user:pass@]host:port[,host:port...]      cluster mode (ElastiCache, MemoryDB)
    rediss+cluster://...                                      cluster mode over TLS (ElastiCache Serverless)
    redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]   Sentinel (rediss+sentinel: TLS)

Query parameters are redis-py's (ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname,
username, password, db); Sentinel adds sentinel_username and sentinel_password for the sentinels themselves.
Credentials and TLS files can come from settings instead (RedisOptions) so the URL need not hold a secret.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from broker.redis_cluster import ClusterPipe
from broker.redis_pipe import Endpoint, RedisPipe
from broker.redis_sentinel import SentinelPipe

if TYPE_CHECKING:
    from broker.settings import StoreConfig

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = (*SINGLE_SCHEMES, *CLUSTER_SCHEMES, *SENTINEL_SCHEMES)
_SENTINEL_QUERY = ("sentinel_username", "sentinel_password")


class RedisClient(Protocol):
    def call(self, key: str | None, *args: str | int) -> Awaitable[Any]:
        """One command; key (the full key name) says where it goes in a cluster."""

    def slot_groups(self, keys: Sequence[str]) -> list[list[int]]:
        """Indexes of keys that one multi-key command may carry together (one group off a cluster)."""

    def call_many(self, commands: Sequence[tuple[str, tuple[str | int, ...]]]) -> Awaitable[list[Any]]:
        """Commands (key, args) all sent at once: their replies in order, a PipeError in place of the reply of
        one that failed (the others may have run)."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class RedisOptions:
    """Settings that complete the URL: an ACL user and password, the TLS CA, a client certificate, and the
    name to verify in the server's certificate when it is not the host connected to."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None

    @property
    def tls_set(self) -> bool:
        return bool(self.tls_ca_file or self.tls_cert_file or self.tls_server_name)


NO_OPTIONS = RedisOptions()


def store_options(config: StoreConfig) -> RedisOptions:
    """The store settings beside the URL (store.username, store.password, store.tls)."""
    tls = config.tls
    return RedisOptions(
        username=config.username,
        password=config.password.get_secret_value() if config.password is not None else None,
        tls_ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        tls_cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        tls_key_file=str(tls.key_file) if tls and tls.key_file else None,
        tls_server_name=tls.server_name if tls else None)


class SingleNode:
    """One node (or a proxy in front of many): the pipelining client as it is; keys do not route."""

    def __init__(self, endpoint: Endpoint, *, timeout: float, max_connections: int) -> None:
        self._pipe = RedisPipe(endpoint, timeout=timeout, max_connections=max_connections)

    def call(self, key: str | None, *args: str | int) -> Awaitable[Any]:
        return self._pipe.call(*args)  # the pipe's own coroutine: no extra frame on the hot path

    def slot_groups(self, keys: Sequence[str]) -> list[list[int]]:
        return [list(range(len(keys)))]

    async def call_many(self, commands: Sequence[tuple[str, tuple[str | int, ...]]]) -> list[Any]:
        return list(await asyncio.gather(*(self._pipe.call(*args) for _, args in commands), return_exceptions=True))

    async def ping(self) -> None:
        await self._pipe.call("PING")

    async def close(self) -> None:
        await self._pipe.close()


def without_secrets(url: str) -> str:
    """Scheme, hosts and path: the userinfo and the query (?password=) may carry secrets."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return scheme.split(":", 1)[0] + "://"
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _split(url: str) -> tuple[str, str, list[str], str, list[tuple[str, str]]]:
    """scheme, userinfo, hosts, path, query pairs (urlsplit cannot hold a comma-separated host list)."""
    scheme, sep, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    if not sep or not hosts:
        raise ValueError(f"redis url: no host in a {scheme}:// url")
    return scheme.lower(), userinfo, hosts.split(","), slash + path, parse_qsl(query, keep_blank_values=True)


def _completed(query: list[tuple[str, str]], userinfo: str, tls: bool, options: RedisOptions) -> list[tuple[str, str]]:
    """The query with the options' credentials and TLS files added where the URL does not set them."""
    names = {name for name, _ in query}
    extra = {"ssl_ca_certs": options.tls_ca_file, "ssl_certfile": options.tls_cert_file,
             "ssl_keyfile": options.tls_key_file} if tls else {}
    if not userinfo:
        extra |= {"username": options.username, "password": options.password}
    return query + [(name, value) for name, value in extra.items() if value and name not in names]


def _endpoint(scheme: str, userinfo: str, host: str, path: str, query: list[tuple[str, str]],
              options: RedisOptions) -> Endpoint:
    auth = f"{userinfo}@" if userinfo else ""
    endpoint = Endpoint.from_url(f"{scheme}://{auth}{host}{path}?{urlencode(query)}")
    return dataclasses.replace(endpoint, server_name=options.tls_server_name) if endpoint.tls else endpoint


def parse(url: str, options: RedisOptions = NO_OPTIONS) -> tuple[str, list[Endpoint], str | None]:
    """(mode, endpoints, sentinel service): for a sentinel URL the endpoints are the sentinels', and the
    primary's is last."""
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"redis url scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    tls = scheme.startswith("rediss")
    if options.tls_set and not tls:
        raise ValueError(f"store tls settings are set but the url is {scheme}:// (use rediss)")
    if scheme in SINGLE_SCHEMES:
        return "single", [_single(url, tls, options)], None
    scheme, userinfo, hosts, path, query = _split(url)
    base = "rediss" if tls else "redis"
    completed = _completed([(n, v) for n, v in query if n not in _SENTINEL_QUERY], userinfo, tls, options)
    if scheme in CLUSTER_SCHEMES:
        if path.strip("/") not in ("", "0"):
            raise ValueError("redis url: a cluster has only db 0")
        return "cluster", [_endpoint(base, userinfo, host, "", completed, options) for host in hosts], None
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("redis url: a sentinel url names its service: redis+sentinel://host:port/service_name")
    primary = _endpoint(base, userinfo, hosts[0], f"/{db}", completed, options)
    sentinel_query = [(n, v) for n, v in completed if n not in ("username", "password", "db")]
    sentinel_query += [(n.removeprefix("sentinel_"), v) for n, v in query if n in _SENTINEL_QUERY]
    sentinels = [_endpoint(base, "", host, "", sentinel_query, options) for host in hosts]
    return "sentinel", [*sentinels, primary], unquote(service)


def _single(url: str, tls: bool, options: RedisOptions) -> Endpoint:
    parts = urlsplit(url)
    has_user = bool(parts.username or parts.password)
    query = _completed(parse_qsl(parts.query, keep_blank_values=True), "x" if has_user else "", tls, options)
    endpoint = Endpoint.from_url(parts._replace(query=urlencode(query)).geturl())
    return dataclasses.replace(endpoint, server_name=options.tls_server_name) if endpoint.tls else endpoint


def open_client(url: str, options: RedisOptions = NO_OPTIONS, *, timeout: float = 2.0,
                max_connections: int = 64) -> RedisClient:
    """The client for url; connects lazily (the first command), so nothing needs to listen yet."""
    mode, endpoints, service = parse(url, options)
    if mode == "cluster":
        return ClusterPipe(endpoints, timeout=timeout, max_connections=max_connections)
    if mode == "sentinel":
        assert service is not None
        return SentinelPipe(endpoints[:-1], service, endpoints[-1], timeout=timeout,
                            max_connections=max_connections)
    return SingleNode(endpoints[0], timeout=timeout, max_connections=max_connections)


