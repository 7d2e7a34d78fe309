"""`sts-broker serve` as a separate process, on a copy of the example config tree (examples/config), as a
deployment runs it: the tests of this directory signal it, probe it and read its exit code."""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from broker.issuers.signing import generate_key_file

ROOT = Path(__file__).resolve().parents[2]
STS_BROKER = str(Path(sys.executable).parent / "sts-broker")
START_TIMEOUT = 30.0


def config_tree(into: Path) -> Path:
    """examples/config copied to `into`, with the signing key it names generated; returns its broker.yaml."""
    shutil.copytree(ROOT / "examples" / "config", into)
    generate_key_file(into / "keys" / "k2026a.pem", bits=2048)
    return into / "broker.yaml"


def broker_env(**extra: str) -> dict[str, str]:
    """The environment a deployment gives the example config: its secrets, and the memory store (one process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_BROKER_")}
    env.update({"BROKER_SESSION_SECRET": secrets.token_urlsafe(48), "BROKER_STORE_URL": "memory://",
                "OKTA_CLIENT_SECRET": "not-used-until-a-login", **extra})
    return env


def start(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until /readyz answers 200; fails with the process's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode} before it was ready:\n{log.read_text()}")
        try:
            if get(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"not ready within {START_TIMEOUT} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Cleanup after a failed test: the process group the test started, killed."""
    if process.poll() is None:
        os.killpg(process.pid, 9)
        process.wait(10)
