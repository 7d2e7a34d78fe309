"""Throwaway Redis topologies for tests and benchmarks, on 127.0.0.1 and free ports: a cluster (three primaries,
optionally a replica each) and a Sentinel setup (a primary, a replica, sentinels). Every wait is bounded."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from broker.devstack.redis_server import RedisServer, running_redis, stop_server, wait_until_ready
from broker.devstack.redis_tls import TlsFiles
from broker.devstack.servers import free_port

READY_TIMEOUT = 20.0
SERVICE = "mymaster"


def _until(check: str, predicate: object, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if callable(predicate) and predicate():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis topology: {check} not within {timeout}s")


@dataclass(frozen=True)
class RedisCluster:
    nodes: tuple[RedisServer, ...]
    tls_ports: tuple[int, ...] = ()  # with TLS: each node's TLS port, beside the plain one kept for admin

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:2])

    @property
    def tls_url(self) -> str:
        return "rediss+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.tls_ports[:2])

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)


def _tls_node(tls: TlsFiles, port: int) -> list[str]:
    return [*tls.server_args(port), "--tls-cluster", "yes", "--tls-replication", "yes"]


def _cluster_ok(ports: list[int]) -> bool:
    for port in ports:
        with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as node:
            info = node.execute_command("CLUSTER", "INFO")
            text = info if isinstance(info, str) else str(info)
            if "cluster_state:ok" not in text or "cluster_slots_assigned:16384" not in text:
                return False
    return True


def _replicas_linked(ports: list[int], replicas: int) -> bool:
    for port in ports:
        with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as node:
            role = node.execute_command("ROLE")
        if role[0] == "master" and len(role[2]) < replicas:
            return False
    return True


@contextmanager
def running_cluster(primaries: int = 3, replicas: int = 0, *extra: str, tls: TlsFiles | None = None,
                    admin: tuple[str, ...] = ()) -> Iterator[RedisCluster]:
    """A cluster made by `redis-cli --cluster create`: every slot assigned, every node agreeing. With `tls`,
    every node has a TLS port too and the cluster bus runs over TLS; `admin`: redis-cli's auth options."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not on PATH: run `make sys`")
    with ExitStack() as stack:
        # The bus port is named (cluster-port), not the default port + 10000 that may be taken or past 65535.
        count = primaries * (1 + replicas)
        tls_ports = tuple(free_port() for _ in range(count)) if tls else ()
        nodes = tuple(stack.enter_context(running_redis(
            "--cluster-enabled", "yes", "--cluster-node-timeout", "2000", "--cluster-port", str(free_port()),
            *(_tls_node(tls, tls_ports[n]) if tls else ()), *extra)) for n in range(count))
        addresses = [f"127.0.0.1:{port}" for port in (tls_ports or [node.port for node in nodes])]
        if tls:  # the nodes meet over TLS: redis-cli speaks to their TLS ports
            admin = (*admin, "--tls", "--cacert", str(tls.ca), "--cert", str(tls.client_cert), "--key",
                     str(tls.client_key))
        subprocess.run([cli, *admin, "--cluster", "create", *addresses,  # noqa: S603
                        "--cluster-replicas", str(replicas), "--cluster-yes"], check=True, capture_output=True,
                       timeout=60)
        cluster = RedisCluster(nodes, tls_ports)
        _until("cluster_state:ok on every node", lambda: _cluster_ok(cluster.ports))
        _until("every replica linked to its primary", lambda: _replicas_linked(cluster.ports, replicas))
        yield cluster


@dataclass(frozen=True)
class SentinelSetup:
    primary: RedisServer
    replica: RedisServer
    sentinels: tuple[int, ...]

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in self.sentinels) + f"/{SERVICE}"

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinels[0], decode_responses=True, socket_timeout=5)

    def primary_port(self) -> int:
        with self.sentinel() as sentinel:
            host_port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(host_port[1])

    def replicated(self) -> None:
        """Until a replica has every write the primary took (a demoted primary first resyncs as a replica)."""
        with redis.Redis(port=self.primary_port()) as primary:
            _until("a replica in sync", lambda: primary.execute_command("WAIT", 1, 500) == 1)

    def failover(self) -> int:
        """SENTINEL FAILOVER, waited out: the port of the new primary."""
        old = self.primary_port()
        with self.sentinel() as sentinel:  # refused (NOGOODSLAVE) until a replica is fit: asked again
            _until("SENTINEL FAILOVER accepted",
                   lambda: bool(sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)))
        _until("the failover", lambda: self._promoted(old))
        # Done only once the old primary is a replica (the sentinels then kill its clients): until then it
        # still takes writes from clients connected to it, as Sentinel allows.
        _until("the old primary demoted", lambda: _role(old) == "slave")
        return self.primary_port()


    def kill_primary(self) -> int:
        """SHUTDOWN NOSAVE of the primary (a crash, as far as the others can tell), waited out: the port of
        the replica the sentinels promote once they see it down."""
        old = self.primary_port()
        with redis.Redis(port=old) as node, contextlib.suppress(redis.ConnectionError):
            node.execute_command("SHUTDOWN", "NOSAVE")
        _until("a failover after the crash", lambda: self._promoted(old))
        return self.primary_port()

    def _promoted(self, old: int) -> bool:
        return self.primary_port() != old and _role(self.primary_port()) == "master"


def _role(port: int) -> str:
    with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as node:
        return str(node.execute_command("ROLE")[0])


@contextmanager
def _running_sentinel(primary_port: int, tmp: Path) -> Iterator[int]:
    port = free_port()
    conf = tmp / f"sentinel-{port}.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
                    f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                    f"sentinel failover-timeout {SERVICE} 5000\n")
    log = tmp / f"sentinel-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],  # noqa: S603
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(proc, port, log)
        yield port
    finally:
        stop_server(proc)


def _replica_ready(setup: SentinelSetup) -> bool:
    with setup.sentinel() as sentinel, redis.Redis(port=setup.replica.port, decode_responses=True) as replica:
        known = sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
        linked = replica.info("replication").get("master_link_status") == "up"
    return linked and any("s_down" not in str(r) and str(setup.replica.port) in str(r) for r in known)


@contextmanager
def running_sentinel(sentinels: int = 1) -> Iterator[SentinelSetup]:
    """A primary, one replica of it and `sentinels` sentinels (quorum 1), the replica known to them."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sts-broker-sentinel-")))
        primary = stack.enter_context(running_redis())
        replica = stack.enter_context(running_redis("--replicaof", "127.0.0.1", str(primary.port)))
        ports = tuple(stack.enter_context(_running_sentinel(primary.port, tmp)) for _ in range(sentinels))
        setup = SentinelSetup(primary, replica, ports)
        _until("the replica in sync and known to the sentinels", lambda: _replica_ready(setup))
        yield setup


def node_id(port: int) -> str:
    with redis.Redis(port=port, decode_responses=True, socket_timeout=5) as node:
        return str(node.execute_command("CLUSTER", "MYID"))


def slot_owner(cluster: RedisCluster, slot: int) -> int:
    """The port of the primary serving slot, as the cluster says."""
    with cluster.client(cluster.ports[0]) as node:
        for first, last, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(primary[1])
    raise RuntimeError(f"slot {slot} is not served")


def start_migration(source: int, target: int, slot: int, keys: list[str]) -> None:
    """Slot MIGRATING on source, IMPORTING on target, and `keys` (only those) moved: ASK territory."""
    with redis.Redis(port=source, decode_responses=True) as src, redis.Redis(port=target, decode_responses=True) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
        if keys:
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)


def finish_migration(cluster: RedisCluster, source: int, target: int, slot: int) -> None:
    """Every key left in slot moved, then the slot given to target on every node: MOVED territory."""
    with redis.Redis(port=source, decode_responses=True) as src:
        left = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if left:
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *left)
    owner = node_id(target)
    for port in [target, source, *(p for p in cluster.ports if p not in (source, target))]:
        with cluster.client(port) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)
