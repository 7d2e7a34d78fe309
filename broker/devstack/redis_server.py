"""A private, throwaway redis-server for tests and benchmarks: its own free port and temp dir, no persistence.
Never the machine's Redis on 6379, whose data is not ours to flush."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.devstack.servers import free_port

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
MISSING = "redis-server is not on PATH: run `make sys` (Debian: apt-get install redis-server)"


@dataclass(frozen=True)
class RedisServer:
    port: int
    socket_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"


def redis_server_binary() -> str:
    """The Redis half of a suite is not optional: a missing server fails the run rather than skipping it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(MISSING)
    return path


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # -NOAUTH: up, with --requirepass
    except OSError:
        return False


def wait_until_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        if _answers_ping(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT}s:\n{log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_redis(*extra: str, port: int | None = None) -> Iterator[RedisServer]:
    """extra: more redis-server options (--requirepass, --tls-port...); port: reuse one (a restart)."""
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="sts-broker-redis-") as tmp:
        # The port is free when picked but could be taken before redis binds it; the log then says so.
        server = RedisServer(port=port or free_port(), socket_path=Path(tmp) / "redis.sock")
        log = Path(tmp) / "redis.log"
        args = [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", tmp, "--unixsocket", str(server.socket_path), "--unixsocketperm", "700", *extra]
        with log.open("wb") as out:  # startup errors go to stderr, so catch both there
            proc = subprocess.Popen(  # noqa: S603 - redis-server with our own arguments
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(proc, server.port, log)
            yield server
        finally:
            stop_server(proc)
