"""The compose topology without containers: the shipped Caddyfile (Caddy terminating TLS with its internal CA,
health-checking /readyz) in front of two `sts-broker serve` replicas started as compose starts them (its
--drain, --forwarded-allow-ips naming the proxy), all on loopback. One replica gets SIGTERM in the middle of
steady traffic through the proxy: not one request fails, the proxy stops sending to it while it drains, it
exits 0, and the other carries on.

The shipped Caddyfile is changed only where a container setting cannot apply here: the upstreams' addresses
(loopback ports instead of service names), the listener (a free loopback port, not :443) and Caddy's admin
endpoint and trust-store installation turned off."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import yaml

from broker.devstack.servers import free_port
from tests.deploy.broker_process import STS_BROKER, broker_env, config_tree, start, stop, wait_ready
from tests.deploy.manifests import COMPOSE, option

SITE = "broker.localhost"
PATH = "/.well-known/jwks.json"  # each replica has its own key: the answer says which one served
TRAFFIC_LIMIT = 3000  # requests, at most
COMPOSE_COMMAND: list[str] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())["services"]["broker-a"]["command"]


def _caddyfile(https_port: int, upstreams: list[int]) -> str:
    shipped = (COMPOSE / "Caddyfile").read_text()
    assert "reverse_proxy broker-a:8000 broker-b:8000 {" in shipped and "{$BROKER_SITE} {" in shipped
    body = shipped.replace("reverse_proxy broker-a:8000 broker-b:8000 {",
                           "reverse_proxy " + " ".join(f"127.0.0.1:{p}" for p in upstreams) + " {")
    body = body.replace("{$BROKER_SITE} {", "{$BROKER_SITE} {\n\tbind 127.0.0.1")
    return (f"{{\n\tadmin off\n\tauto_https disable_redirects\n\thttp_port {free_port()}\n\thttps_port {https_port}\n"
            f"\tskip_install_trust\n}}\n\n{body}")


def _get(port: int, context: ssl.SSLContext) -> tuple[int, bytes]:
    """One request on a new TLS connection to the proxy, as a browser at https://broker.localhost would send it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=SITE) as tls:
        tls.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {SITE}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _replica(body: bytes, keys: dict[str, str]) -> str:
    modulus = json.loads(body)["keys"][0]["n"]
    return next(name for name, n in keys.items() if n == modulus)


def _start_replica(tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port, log = free_port(), tmp / f"{name}.log"
    config = config_tree(tmp / name)
    command = [STS_BROKER, *COMPOSE_COMMAND[1:]]
    command[command.index("--forwarded-allow-ips") + 1] = "127.0.0.1"  # the proxy's address here
    process = start([*command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                    broker_env(), log)
    return process, port, log


def _wait_for_proxy(port: int, context_file: Path, caddy: subprocess.Popen[bytes], log: Path) -> ssl.SSLContext:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert caddy.poll() is None, log.read_text()
        if context_file.exists():
            context = ssl.create_default_context(cafile=str(context_file))
            try:
                if _get(port, context)[0] == 200:
                    return context
            except (OSError, ssl.SSLError, IndexError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"the proxy did not answer:\n{log.read_text()}")


def test_a_replica_leaves_the_proxy_without_a_failed_request(tmp_path: Path) -> None:
    drain = float(option(COMPOSE_COMMAND, "--drain"))
    replicas = {name: _start_replica(tmp_path, name) for name in ("broker-a", "broker-b")}
    https_port = free_port()
    (tmp_path / "Caddyfile").write_text(_caddyfile(https_port, [port for _, port, _ in replicas.values()]))
    caddy_log = tmp_path / "caddy.log"
    data = tmp_path / "caddy-data"
    caddy = start(["caddy", "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                  {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_DATA_HOME": str(data),
                   "XDG_CONFIG_HOME": str(tmp_path / "caddy-config"), "BROKER_SITE": SITE}, caddy_log)
    try:
        for process, port, log in replicas.values():
            wait_ready(port, process, log)
        keys = {name: json.loads(_direct_jwks(port))["keys"][0]["n"] for name, (_, port, _) in replicas.items()}
        context = _wait_for_proxy(https_port, data / "caddy" / "pki" / "authorities" / "local" / "root.crt",
                                  caddy, caddy_log)
        served: list[tuple[float, int, str]] = []
        leaving = replicas["broker-a"][0]
        signalled = exited = None
        started = time.monotonic()
        while len(served) < TRAFFIC_LIMIT and time.monotonic() - started < 60:
            now = time.monotonic()
            if signalled is None and now - started > 3:
                leaving.send_signal(signal.SIGTERM)
                signalled = now
            if signalled is not None and exited is None and leaving.poll() is not None:
                exited = now
            if exited is not None and now - exited > 2:
                break
            status, body = _get(https_port, context)
            served.append((now, status, _replica(body, keys) if status == 200 else body.decode(errors="replace")))
        assert signalled is not None and exited is not None, "the replica did not exit within the traffic window"
        assert [s for s in served if s[1] != 200] == []
        assert leaving.returncode == 0
        assert drain - 0.2 <= exited - signalled < drain + 5
        before = {who for when, _, who in served if when < signalled}
        assert before == {"broker-a", "broker-b"}  # the proxy balanced over both
        assert {who for when, _, who in served if when > signalled + drain} == {"broker-b"}
        assert replicas["broker-b"][0].poll() is None
    finally:
        for process, _, _ in replicas.values():
            stop(process)
        stop(caddy)


def _direct_jwks(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer.partition(b"\r\n\r\n")[2]
