"""/readyz names each dependency and why it is not ready (a reason code, never a URL or an address); 503 while
the store or keys are not, and the IdPs too with `readiness.require_idps`; an IdP is asked at most once per
check interval however often /readyz is polled."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import DevStack
from broker.settings import ReadinessConfig
from tests.support.own_stack import variant
from tests.support.token_issuer import running_issuer

REQUIRED = ReadinessConfig(require_idps=True)


def _with_idp(stack: DevStack, tmp_path: Path, idp: dict[str, Any]) -> Path:
    idps = tmp_path / "idp_configs"
    shutil.copytree(stack.settings.idp_configs, idps)
    (idps / f"{idp['id']}.yaml").write_text(yaml.safe_dump(idp))
    return idps


def _settled(url: str, idp: str) -> httpx.Response:
    """/readyz once the background check of `idp` has ended (it reports `unchecked` until then)."""
    deadline = time.monotonic() + 10
    while (response := httpx.get(f"{url}/readyz")).json()["checks"]["idps"][idp] == "unchecked":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return response


def test_ready_names_every_dependency(obs: DevStack) -> None:
    response = _settled(obs.broker_url, "dev")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"store": "ok", "keys": "ok", "idps": {"dev": "ok"}}}
    assert response.headers["cache-control"] == "no-store"


def test_by_default_an_idp_down_is_reported_and_the_replica_stays_ready(obs: DevStack, tmp_path: Path) -> None:
    idp = {"id": "down", "type": "oidc", "name": "Down", "issuer": f"http://{LOOPBACK}:{free_port()}",
           "client_id": "c", "timeout": "1s"}
    with variant(obs, idp_configs=_with_idp(obs, tmp_path, idp)) as url:
        started = time.monotonic()
        first = httpx.get(f"{url}/readyz")
        assert time.monotonic() - started < 1.0  # the IdP is checked in the background, not waited for
        assert first.status_code == 200 and first.json()["checks"]["idps"]["down"] == "unchecked"
        settled = _settled(url, "down")
    assert settled.status_code == 200 and settled.json()["ready"] is True
    assert settled.json()["checks"]["idps"] == {"dev": "ok", "down": "idp_unreachable"}


@pytest.mark.parametrize("kind", ["oidc", "token"])
def test_an_idp_down_is_named_without_its_address(obs: DevStack, tmp_path: Path, kind: str) -> None:
    port = free_port()
    idp: dict[str, Any] = {"id": "down", "type": kind, "name": "Down", "issuer": f"http://{LOOPBACK}:{port}",
                           "timeout": "1s"}
    idp |= {"client_id": "c"} if kind == "oidc" else {"client_ids": ["app"]}
    with variant(obs, idp_configs=_with_idp(obs, tmp_path, idp), readiness=REQUIRED) as url:
        response = httpx.get(f"{url}/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["idps"] == {"dev": "ok", "down": "idp_unreachable"}
    assert body["checks"]["store"] == "ok" and body["checks"]["keys"] == "ok"
    assert str(port) not in response.text and LOOPBACK not in response.text


def test_polling_readyz_does_not_hammer_a_failing_idp(obs: DevStack, tmp_path: Path) -> None:
    with running_issuer() as issuer:
        issuer.jwks_status = 503
        idp = {"id": "flaky", "type": "token", "name": "Flaky", "issuer": issuer.url, "client_ids": ["app"]}
        with variant(obs, idp_configs=_with_idp(obs, tmp_path, idp), readiness=REQUIRED) as url, \
                httpx.Client() as client:
            answers = [client.get(f"{url}/readyz") for _ in range(30)]
            issuer.jwks_status = 200
            assert issuer.jwks_requests == 1
    assert {a.status_code for a in answers} == {503}
    assert answers[0].json()["checks"]["idps"]["flaky"] == "idp_http_error"
