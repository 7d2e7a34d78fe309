"""/readyz names each dependency and why it is not ready (a reason code, never a URL or an address); 503 while
any is not; an IdP is asked at most once per check interval however often /readyz is polled."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import DevStack
from tests.support.own_stack import variant
from tests.support.token_issuer import running_issuer


def _with_idp(stack: DevStack, tmp_path: Path, idp: dict[str, Any]) -> Path:
    idps = tmp_path / "idp_configs"
    shutil.copytree(stack.settings.idp_configs, idps)
    (idps / f"{idp['id']}.yaml").write_text(yaml.safe_dump(idp))
    return idps


def test_ready_names_every_dependency(obs: DevStack) -> None:
    response = httpx.get(f"{obs.broker_url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"store": "ok", "keys": "ok", "idps": {"dev": "ok"}}}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("kind", ["oidc", "token"])
def test_an_idp_down_is_named_without_its_address(obs: DevStack, tmp_path: Path, kind: str) -> None:
    port = free_port()
    idp: dict[str, Any] = {"id": "down", "type": kind, "name": "Down", "issuer": f"http://{LOOPBACK}:{port}",
                           "timeout": "1s"}
    idp |= {"client_id": "c"} if kind == "oidc" else {"client_ids": ["app"]}
    with variant(obs, idp_configs=_with_idp(obs, tmp_path, idp)) as url:
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
        with variant(obs, idp_configs=_with_idp(obs, tmp_path, idp)) as url, httpx.Client() as client:
            answers = [client.get(f"{url}/readyz") for _ in range(30)]
            issuer.jwks_status = 200
            assert issuer.jwks_requests == 1
    assert {a.status_code for a in answers} == {503}
    assert answers[0].json()["checks"]["idps"]["flaky"] == "idp_http_error"
