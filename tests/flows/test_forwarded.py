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
def serving(config: Path, *extra: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(config), "--host", LOOPBACK,
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
