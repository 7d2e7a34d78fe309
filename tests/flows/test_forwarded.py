"""`sts-broker serve` behind a load balancer: X-Forwarded-For names the client (rate limits, audit) only when
the peer is one of --forwarded-allow-ips; otherwise anyone could pick the address their requests count as."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from broker.devstack.servers import LOOPBACK, free_port
from broker.issuers.signing import generate_key_file

SECRET = "a-session-secret-that-is-long-enough-0123456789"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def config_tree(tmp: Path) -> Path:
    generate_key_file(tmp / "keys" / "k.pem", bits=2048)
    (tmp / "idp_configs").mkdir()
    (tmp / "idp_configs" / "app.yaml").write_text(yaml.safe_dump({
        "id": "app", "type": "token", "issuer": "https://issuer.example", "client_ids": ["app"],
        "jwks_uri": "https://issuer.example/jwks"}))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [{"id": "r", "grant": [
        {"role": "arn:aws:iam::111122223333:role/R"}]}]}))
    (tmp / "broker.yaml").write_text(yaml.safe_dump({
        "public_url": "https://broker.example.com", "session": {"secret": SECRET},
        "keys": [{"kid": "k", "file": "keys/k.pem", "active": True}], "idp_configs": "idp_configs",
        "rules": "rules.yaml", "audit": {"path": str(tmp / "audit.log")},
        "rate_limits": {"token_exchange_per_client": 2}}))
    return tmp / "broker.yaml"


@contextmanager
def serving(config: Path, *extra: str, port: int = 0, output: Path | None = None,
            command: tuple[str, ...] = ("-m", "broker")) -> Iterator[str]:
    """`sts-broker serve` (or `command` with the same arguments) in its own process; its stdout and stderr
    go to `output` when given."""
    port = port or free_port()
    sink = output.open("ab") if output is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, *command, "serve", "--config", str(config), "--host", LOOPBACK,
                             "--port", str(port), *extra], stdout=sink, stderr=sink,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("sts-broker serve did not answer /healthz within 30 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        if not isinstance(sink, int):  # a file of ours (subprocess.DEVNULL is an int)
            sink.close()


def refused_clients(config: Path) -> list[str]:
    events = [json.loads(line) for line in (config.parent / "audit.log").read_text().splitlines()]
    return [e["client"] for e in events if e["event"] == "request_failed"]


def malformed(url: str, forwarded_for: str) -> int:
    return httpx.post(f"{url}/oauth2/token", content=b"grant_type", timeout=10,
                      headers={**FORM, "X-Forwarded-For": forwarded_for}).status_code


def test_forwarded_for_is_the_client_behind_a_trusted_load_balancer(tmp_path: Path) -> None:
    config = config_tree(tmp_path)
    with serving(config, "--forwarded-allow-ips", LOOPBACK) as url:
        # Each client address has its own limit (2): two addresses behind one balancer do not share one.
        assert [malformed(url, "203.0.113.7") for _ in range(2)] == [400, 400]
        assert malformed(url, "203.0.113.7") == 429
        assert malformed(url, "198.51.100.9") == 400
    assert refused_clients(config) == ["203.0.113.7"] * 3 + ["198.51.100.9"]


def test_forwarded_for_is_ignored_by_default(tmp_path: Path) -> None:
    config = config_tree(tmp_path)
    with serving(config) as url:
        # A client cannot pick the address it counts as: every request is the peer's, whatever it claims.
        assert [malformed(url, f"203.0.113.{n}") for n in range(3)] == [400, 400, 429]
    assert refused_clients(config) == [LOOPBACK] * 3


def test_forwarded_for_that_is_not_an_address_is_the_load_balancer(tmp_path: Path) -> None:
    """Whatever a client writes into X-Forwarded-For, the client address is an IP address in one spelling:
    a string that is not one counts as the load balancer's (the TCP peer), and many spellings of one
    address share its limit."""
    config = config_tree(tmp_path)
    with serving(config, "--forwarded-allow-ips", f"{LOOPBACK}/32") as url:
        assert [malformed(url, junk) for junk in ("unknown", "x" * 5000, "_hidden")] == [400, 400, 429]
        spellings = ("203.0.113.7", "::ffff:203.0.113.7", "203.0.113.7:4711", "::FFFF:cb00:7107")
        assert [malformed(url, s) for s in spellings] == [400, 400, 429, 429]
        zones = ("fe80::1%1", "[fe80::1%2]:443", "FE80:0:0::1")
        assert [malformed(url, z) for z in zones] == [400, 400, 429]
        # Walked right to left: the first address not trusted is the client, past the trusted ones.
        assert malformed(url, f"198.51.100.9, {LOOPBACK}") == 400
        assert malformed(url, "198.51.100.9, unknown") == 429  # stops at `unknown`: the balancer again
    assert refused_clients(config) == [LOOPBACK] * 3 + ["203.0.113.7"] * 4 + ["fe80::1"] * 3 + [
        "198.51.100.9", LOOPBACK]


@pytest.mark.parametrize("allow", ["10.0.0.300", "*", "lb.example.com", "10.0.0.1,", "10.0.0.0/33"])
def test_a_bad_forwarded_allow_ips_refuses_to_start(tmp_path: Path, allow: str) -> None:
    config = config_tree(tmp_path)
    done = subprocess.run([sys.executable, "-m", "broker", "serve", "--config", str(config), "--host", LOOPBACK,
                           "--port", str(free_port()), "--forwarded-allow-ips", allow],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 2
    assert "refusing to start, --forwarded-allow-ips:" in done.stderr
    assert "Traceback" not in done.stderr
