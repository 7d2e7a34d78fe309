"""examples/deploy/compose read statically (no container engine or compose here): two broker replicas built
from this repository's Dockerfile, locked down as the image allows, the config tree mounted read-only, on a
password-protected Redis, behind a TLS-terminating Caddy that is the only published port, the one address
whose X-Forwarded-For the brokers believe, and health-checks /readyz so a draining replica leaves in time."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.manifests import COMPOSE, ROOT, option

FILE = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
SERVICES: dict[str, Any] = FILE["services"]
BROKERS = {name: s for name, s in SERVICES.items() if s.get("image") == "sts-broker:local"}
CADDYFILE = (COMPOSE / "Caddyfile").read_text()


def test_the_services() -> None:
    assert set(SERVICES) == {"redis", "broker-a", "broker-b", "proxy"}
    assert set(BROKERS) == {"broker-a", "broker-b"}


def test_brokers_are_built_from_this_repository() -> None:
    for broker in BROKERS.values():
        assert (COMPOSE / broker["build"]["context"]).resolve() == ROOT
        assert (ROOT / broker["build"]["dockerfile"]).is_file()


def test_brokers_run_locked_down_with_the_config_tree_read_only() -> None:
    for broker in BROKERS.values():
        assert broker["user"] == "10001:10001" and broker["read_only"] is True
        assert any(t.split(":")[0] == "/tmp" for t in broker["tmpfs"])
        assert broker["cap_drop"] == ["ALL"] and "no-new-privileges:true" in broker["security_opt"]
        assert "ports" not in broker  # reachable through the proxy only
        (volume,) = broker["volumes"]
        source, target, mode = volume.split(":")
        assert (target, mode) == ("/config", "ro")
        assert (COMPOSE / source).resolve() == ROOT / "examples" / "config"
        assert (COMPOSE / source / "broker.yaml").is_file()


def test_the_broker_environment_covers_what_broker_yaml_reads() -> None:
    needed: set[str] = set()
    tree = ROOT / "examples" / "config"
    for file in [tree / "broker.yaml", *tree.glob("idp_configs/*.yaml")]:
        uncommented = "\n".join(line.split("#")[0] for line in file.read_text().splitlines())
        needed |= set(re.findall(r"\$\{(\w+)\}", uncommented))
    assert needed == {"BROKER_SESSION_SECRET", "BROKER_STORE_URL", "OKTA_CLIENT_SECRET"}
    documented = {line.split("=")[0] for line in (COMPOSE / "env.example").read_text().splitlines()
                  if line and not line.startswith("#")}
    for broker in BROKERS.values():
        assert needed <= broker["environment"].keys()
        assert set(re.findall(r"\$\{(\w+)", str(broker["environment"]))) <= documented
        assert broker["environment"]["BROKER_STORE_URL"].endswith("@redis:6379/0")


def test_the_proxy_is_the_only_way_in_and_the_only_trusted_forwarder() -> None:
    published = {name for name, s in SERVICES.items() if "ports" in s}
    assert published == {"proxy"} and SERVICES["proxy"]["ports"] == ["443:443"]
    proxy_address = SERVICES["proxy"]["networks"]["backend"]["ipv4_address"]
    subnet = FILE["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert proxy_address.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    for broker in BROKERS.values():
        assert broker["command"][:2] == ["sts-broker", "serve"]
        assert option(broker["command"], "--forwarded-allow-ips") == proxy_address


def test_caddy_balances_over_both_brokers_on_readyz() -> None:
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", CADDYFILE)
    assert upstreams is not None
    ports = {broker["environment"]["STS_BROKER_PORT"] for broker in BROKERS.values()}
    assert set(upstreams.group(1).split()) == {f"{name}:{port}" for name in BROKERS for port in ports}
    assert re.search(r"^\s*health_uri /readyz$", CADDYFILE, re.M)
    interval = float(re.search(r"health_interval (\d+)s", CADDYFILE).group(1))  # type: ignore[union-attr]
    for broker in BROKERS.values():
        command = broker["command"]
        drain, deadline = float(option(command, "--drain")), float(option(command, "--shutdown-deadline"))
        assert interval < drain  # the proxy sees the 503 before the listener closes
        assert drain + deadline < float(broker["stop_grace_period"].rstrip("s"))
    assert SERVICES["proxy"]["depends_on"].keys() == BROKERS.keys()


def test_redis_is_private_and_protected() -> None:
    redis = SERVICES["redis"]
    assert "ports" not in redis
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD")
    assert all("REDIS_PASSWORD" in b["environment"]["BROKER_STORE_URL"] for b in BROKERS.values())


def test_images_are_pinned_releases() -> None:
    for name, service in SERVICES.items():
        if name not in BROKERS:
            assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+-alpine(@sha256:[0-9a-f]{64})?", service["image"]), name
