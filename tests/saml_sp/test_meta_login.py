"""Whole logins through `create_app` and the pysaml2 IdP (its form, its signer) when the IdP's metadata sits in
a signed federation aggregate among decoys, fetched over real HTTP; a refused refresh keeps logins on the
last good copy, written to the audit log and counted on /metrics."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack import browser
from broker.devstack.dev_saml_idp import (
    DevSamlIdp,
    browser_login,
    run_dev_saml_idp,
    saml_idp_config,
    write_key_and_cert,
)
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, write_config
from broker.web.app import create_app
from tests.saml_sp._meta_support import Served, aggregate, idp_entity, serve_metadata, sign, sp_entity
from tests.support.saml_login import authn_request_id

DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"


@dataclass
class World:
    broker_url: str
    idp: DevSamlIdp
    served: Served
    audit: Path
    key: Path
    cert: Path
    attacker_key: Path
    attacker_cert: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.audit.read_text().splitlines()) if e["event"] == name]

    def document(self, entity: str | None = None) -> str:
        decoys = [idp_entity(f"https://idp{n}.example.org/idp", [self.attacker_cert.read_text()]) for n in range(5)]
        return aggregate(*decoys[:2], sp_entity(f"{self.broker_url}/saml/fed/metadata"),
                         [*decoys[2:], entity or self.idp.metadata_xml()])


def _fed_config(idp: DevSamlIdp, idp_id: str, url: str, cert: Path) -> dict[str, Any]:
    inline = saml_idp_config(idp_id, idp.url, idp.certificate)
    return {**{k: v for k, v in inline.items() if k not in {"sso_url", "certificates"}}, "metadata_url": url,
            "metadata_signing_certificate": str(cert), "metadata_refresh": "1s"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("meta-login")
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_port, idp_port = free_port(), free_port()
    broker_url = f"http://{LOOPBACK}:{broker_port}"
    idp = DevSamlIdp(f"http://{LOOPBACK}:{idp_port}", work / "idp")
    key, cert = write_key_and_cert(work / "fed", "fed", "federation-metadata-signer")
    attacker_key, attacker_cert = write_key_and_cert(work / "attacker", "attacker", "dev-saml-idp")
    dead = f"http://{LOOPBACK}:{free_port()}"
    with serve_metadata() as (url, served), serve_metadata() as (empty_url, _):
        fed = _fed_config(idp, "fed", url, cert)
        broken = _fed_config(idp, "fedbroken", empty_url, cert)  # serves nothing: never a good copy
        idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(fed), broker_url, None).sp_metadata()])
        config = write_config(work / "broker", broker_url, dead, LocalAws(dead, dead, "123456789012"), DEMO_RULES,
                              {"fed": fed, "fedbroken": broken}, {})
        settings = load_settings(config)
        with run_dev_saml_idp(idp, idp_port), asgi_server(create_app(settings), broker_port):
            yield World(broker_url, idp, served, Path(settings.audit.path), key, cert, attacker_key, attacker_cert)


def _login_lands(world: World, client: httpx.Client) -> None:
    landed = browser_login(client, world.broker_url, "fed", "bob")
    assert landed.status_code == 303 and landed.headers["location"] == "/roles", landed.text[:300]
    assert [r["role_arn"] for r in client.get(f"{world.broker_url}/roles").json()["roles"]] == [DEV]


def _metric(world: World, result: str) -> str:
    text = httpx.get(f"{world.broker_url}/metrics").text
    prefix = f'sts_broker_saml_metadata_refreshes_total{{idp="fed",result="{result}"}} '
    return next((line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)), "0")


def test_login_with_the_idp_inside_a_signed_aggregate_then_a_refused_refresh(world: World,
                                                                               client: httpx.Client) -> None:
    world.served.body = sign(world.document(), world.key, world.cert).encode()
    _login_lands(world, client)
    assert [e["entity_id"] for e in world.events("saml_metadata_refreshed")] == [world.idp.entity_id]
    assert _metric(world, "ok") == "1.0"

    # The next refresh (metadata_refresh: 1s) brings the attacker's certificate for the IdP, signed with the
    # attacker's key: refused, the last good copy stays.
    attacker_entity = idp_entity(world.idp.entity_id, [world.attacker_cert.read_text()], sso=world.idp.sso_url)
    world.served.body = sign(world.document(attacker_entity), world.attacker_key, world.attacker_cert).encode()
    asked = world.served.requests
    time.sleep(1.1)
    with browser.browser() as again:
        again.headers["Accept"] = "application/json"
        _login_lands(world, again)
        assert world.served.requests > asked
        [refused] = world.events("saml_metadata_refused")
        assert refused["idp"] == "fed" and refused["reason"] == "saml_metadata_signature"
        assert refused["kept_last_good"] is True and _metric(world, "saml_metadata_signature") == "1.0"
        # What the attacker's certificate would have allowed: a response signed with the attacker's key.
        request_id = authn_request_id(again, world.broker_url, "fed")
        xml = world.idp.response_xml("bob", in_response_to=request_id, destination=f"{world.broker_url}/saml/fed/acs",
                                     sp_entity_id=f"{world.broker_url}/saml/fed/metadata")
        forged = world.idp.resign(xml, key=world.attacker_key, cert=world.attacker_cert)
        logins = len(world.events("login_succeeded"))
        answer = again.post(f"{world.broker_url}/saml/fed/acs",
                            data={"SAMLResponse": base64.b64encode(forged.encode()).decode()})
        assert answer.status_code == 401 and answer.json()["error"] == "saml_invalid_signature"
        assert len(world.events("login_succeeded")) == logins


def test_no_good_copy_refuses_the_login(world: World, client: httpx.Client) -> None:
    """The broken IdP's URL answers an empty document: no good copy, so its login is refused with the reason,
    audited twice (the refresh and the request), and counted."""
    response = client.get(f"{world.broker_url}/login/fedbroken")
    assert response.status_code == 502, response.text[:300]
    body = response.json()
    assert body["error"] == "saml_metadata_invalid" and "metadata" not in body["message"].lower()
    [failed] = [e for e in world.events("request_failed") if e.get("error_id") == body["error_id"]]
    assert failed["reason"] == "saml_metadata_invalid"
    refused = [e for e in world.events("saml_metadata_refused") if e["idp"] == "fedbroken"]
    assert refused and refused[-1]["kept_last_good"] is False
    text = httpx.get(f"{world.broker_url}/metrics").text
    assert 'sts_broker_saml_metadata_refreshes_total{idp="fedbroken",result="saml_metadata_invalid"}' in text
