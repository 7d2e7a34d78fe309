"""/metrics protection through a real `sts-broker serve`: a bearer token, and a listener of its own."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.config import load_settings
from broker.devstack.servers import LOOPBACK, free_port
from broker.errors import ConfigError
from tests.flows.test_forwarded import config_tree, serving

TOKEN = secrets.token_urlsafe(32)


def with_metrics(tmp: Path, metrics: dict[str, Any]) -> Path:
    config = config_tree(tmp)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "metrics": metrics}))
    return config


def refusals(config: Path) -> list[tuple[str, str, int]]:
    events = [json.loads(line) for line in (config.parent / "audit.log").read_text().splitlines()]
    return [(e["path"], e["reason"], e["status"]) for e in events if e["event"] == "request_failed"]


def test_metrics_token_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    config = with_metrics(tmp_path, {"token": "${METRICS_TOKEN}"})
    with serving(config) as url:
        for sent in (None, "", f"Bearer {TOKEN[:-1]}", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}"):
            headers = {} if sent is None else {"Authorization": sent}
            refused = httpx.get(f"{url}/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer realm="sts-broker metrics"'
            assert "sts_broker_" not in refused.text and TOKEN not in refused.text
        scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "sts_broker_events_total" in scraped.text
        assert 'reason="metrics_token_invalid"' in scraped.text
    assert refusals(config) == [("/metrics", "metrics_token_invalid", 401)] * 6
    assert TOKEN not in (config.parent / "audit.log").read_text()


def test_metrics_on_a_listener_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    port = free_port()
    config = with_metrics(tmp_path, {"listen": f"{LOOPBACK}:{port}", "token": "${METRICS_TOKEN}"})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(config) as url:
        assert httpx.get(f"{url}/metrics", headers=auth).status_code == 404  # not on the main port
        side = f"http://{LOOPBACK}:{port}"
        assert httpx.get(f"{side}/metrics").status_code == 401
        scraped = httpx.get(f"{side}/metrics", headers=auth)
        assert scraped.status_code == 200 and "sts_broker_request_seconds" in scraped.text
        # The main port's requests are counted where the scraper reads them: one metrics registry.
        assert 'route="unmatched"' in scraped.text
        for path in ("/healthz", "/roles", "/oauth2/token", "/metrics/"):
            assert httpx.get(f"{side}{path}", headers=auth).status_code == 404
    assert ("/metrics", "route_not_found", 404) in refusals(config)


@pytest.mark.parametrize(("metrics", "problem"), [
    ({"listen": "evil.example:9100"}, "must be an IP address"),
    ({"listen": "127.0.0.1"}, "host:port"),
    ({"listen": "127.0.0.1:70000"}, "host:port"),
    ({"token": "short"}, "too short"),
    ({"open": True}, "Extra inputs"),
])
def test_bad_metrics_settings_are_refused(tmp_path: Path, metrics: dict[str, Any], problem: str) -> None:
    config = with_metrics(tmp_path, metrics)
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert any("metrics" in p and problem in p for p in refused.value.problems), refused.value.problems
