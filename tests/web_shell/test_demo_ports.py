"""`sts-broker demo` as a person runs it, with one of its ports taken by another program: one line on
stderr naming the flag that moves it, exit status 2, no traceback, nothing started. And `demo --help`
describes every flag."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devstack.demo_ports import DEMO_PORTS
from broker.devstack.servers import LOOPBACK, free_port


@pytest.fixture
def listener() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _demo(tmp_path: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    flags = [word for flag, port in ports.items() for word in (flag, str(port))]
    return subprocess.run([sys.executable, "-m", "broker", "demo", *flags, "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=60, check=False)


def _free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEMO_PORTS):
        ports = {flag: free_port() for flag, _, _ in DEMO_PORTS.values()}
    return ports


@pytest.mark.parametrize("flag", [flag for flag, _, _ in DEMO_PORTS.values()])
def test_a_busy_port_is_one_line_naming_its_flag(tmp_path: Path, listener: int, flag: str) -> None:
    result = _demo(tmp_path, {**_free_ports(), flag: listener})
    assert result.returncode == 2
    assert result.stderr == f"sts-broker demo: port {listener} is in use: pass {flag} N\n"
    assert result.stdout == "" and not (tmp_path / "demo").exists()  # nothing was started or written


def test_two_flags_on_one_port(tmp_path: Path) -> None:
    ports = _free_ports()
    result = _demo(tmp_path, {**ports, "--aws-port": ports["--port"]})
    assert result.returncode == 2
    assert result.stderr == f"sts-broker demo: --port and --aws-port are both {ports['--port']}: pass --aws-port N " \
                            "with another port\n"


def test_help_describes_every_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "broker", "demo", "--help"], capture_output=True, text=True,
                            timeout=60, check=True)
    text = " ".join(result.stdout.split())
    for flag, what, default in DEMO_PORTS.values():
        assert f"{flag} N loopback port of {what} (default {default})" in text
    for flag in ("--self-test", "--workdir WORKDIR", "--saml-binding"):
        assert flag in text
