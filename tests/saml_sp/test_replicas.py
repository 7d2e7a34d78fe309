"""Two replicas sharing one Redis: the AuthnRequest ID made on one is accepted once on the other, and an
assertion accepted on one is refused as a replay on both (SET NX with a TTL until NotOnOrAfter + skew)."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]
from pydantic import SecretStr

from broker.audit import AuditLog
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import saml_idp_config
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.web.app import create_app
from tests.saml_sp.conftest import SamlWorld, assert_refused


@pytest.fixture
def replicas(saml_world: SamlWorld) -> Iterator[tuple[str, str]]:
    with running_redis() as redis, ExitStack() as servers:
        port_a, port_b = free_port(), free_port()
        public = f"http://{LOOPBACK}:{port_a}"
        settings = saml_world.stack.settings.model_copy(update={
            "public_url": public,
            "store": saml_world.stack.settings.store.model_copy(update={"url": SecretStr(f"{redis.url}/4")}),
        })
        corp = saml_idp_config("corp", saml_world.idp.url, saml_world.idp.certificate)
        corpopen = {**corp, "id": "corpopen", "allow_idp_initiated": True}
        saml_world.idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(c), url, None).sp_metadata()
                                 for url in (saml_world.stack.broker_url, public) for c in (corp, corpopen)])
        for port in (port_a, port_b):
            app = create_app(settings, audit=AuditLog(str(saml_world.stack.audit_path)))
            servers.enter_context(asgi_server(app, port))
        yield public, f"http://{LOOPBACK}:{port_b}"


def test_request_on_a_answered_on_b_once(saml_world: SamlWorld, replicas: tuple[str, str]) -> None:
    a, b = replicas
    with httpx.Client(timeout=20, headers={"Accept": "application/json"}) as client:
        response = client.get(f"{a}/login/corp")
        assert response.status_code == 303
        binding = client.cookies.get("sts_broker_saml") or ""
        request_id = _request_id(response.headers["location"])
        xml = saml_world.idp.response_xml("bob", in_response_to=request_id, destination=f"{a}/saml/corp/acs",
                                          sp_entity_id=f"{a}/saml/corp/metadata")
        first = _post(client, f"{b}/saml/corp/acs", xml)
        assert first.status_code == 303, first.text
        client.cookies.clear()
        client.cookies.set("sts_broker_saml", binding, path="/saml/corp/acs")
        fresh = saml_world.idp.response_xml("bob", in_response_to=request_id, destination=f"{a}/saml/corp/acs",
                                            sp_entity_id=f"{a}/saml/corp/metadata")
        assert_refused(saml_world, client, _post(client, f"{a}/saml/corp/acs", fresh), 400, "saml_request_unknown")


def test_assertion_replay_refused_on_every_replica(saml_world: SamlWorld, replicas: tuple[str, str]) -> None:
    a, b = replicas
    xml = saml_world.idp.response_xml("bob", in_response_to=None, destination=f"{a}/saml/corpopen/acs",
                                      sp_entity_id=f"{a}/saml/corpopen/metadata")
    with httpx.Client(timeout=20, headers={"Accept": "application/json"}) as client:
        assert _post(client, f"{a}/saml/corpopen/acs", xml).status_code == 303
    for replica in (a, b):
        with httpx.Client(timeout=20, headers={"Accept": "application/json"}) as client:
            response = _post(client, f"{replica}/saml/corpopen/acs", xml)
            assert response.status_code == 401 and response.json()["error"] == "saml_replay"
            assert client.cookies.get("sts_broker_session") is None


def _request_id(location: str) -> str:
    query = parse_qs(urlsplit(location).query)
    return str(etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)).get("ID"))


def _post(client: httpx.Client, url: str, xml: str) -> httpx.Response:
    return client.post(url, data={"SAMLResponse": base64.b64encode(xml.encode()).decode()})
