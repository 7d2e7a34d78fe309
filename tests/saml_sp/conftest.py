"""The broker as SAML SP against pysaml2 (its own signer, through xmlsec1), over real HTTP.

`corp` is an IdP with IdP-initiated login off, `corpopen` the same IdP with it on. Attacks start from a
response pysaml2 signed; `resign` re-signs a tampered assertion with pysaml2's own xmlsec1 backend.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack import browser
from broker.devstack.dev_saml_idp import DevSamlIdp, run_dev_saml_idp, saml_idp_config, write_key_and_cert
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, DevStack, write_config
from broker.web.app import create_app
from tests.support.saml_login import authn_request_id

NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#"}


@dataclass
class SamlWorld:
    stack: DevStack
    idp: DevSamlIdp
    other_key: Path
    other_cert: Path

    def acs(self, idp: str = "corp") -> str:
        return f"{self.stack.broker_url}/saml/{idp}/acs"

    def sp_entity(self, idp: str = "corp") -> str:
        return f"{self.stack.broker_url}/saml/{idp}/metadata"

    def start(self, client: httpx.Client, idp: str = "corp") -> str:
        """GET /login/{idp}: returns the AuthnRequest ID the broker sent (read as the IdP reads it)."""
        return authn_request_id(client, self.stack.broker_url, idp)

    def signed(self, user: str = "alice", request_id: str | None = None, idp: str = "corp", **kw: Any) -> str:
        kw.setdefault("destination", self.acs(idp))
        kw.setdefault("sp_entity_id", self.sp_entity(idp))
        return self.idp.response_xml(user, in_response_to=request_id, **kw)

    def post(self, client: httpx.Client, xml: str | bytes, idp: str = "corp", relay: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        raw = xml.encode() if isinstance(xml, str) else xml
        data = {"SAMLResponse": base64.b64encode(raw).decode()}
        if relay is not None:
            data["RelayState"] = relay
        return client.post(self.acs(idp), data=data, headers=headers or {})

    def resign(self, xml: str, mutate: Callable[[Any], None] | None = None, *, key: Path | None = None,
               cert: Path | None = None, sha1: bool = False) -> str:
        return self.idp.resign(xml, mutate, key=key, cert=cert, sha1=sha1)


def assertion_of(root: Any) -> Any:
    return root.find("saml:Assertion", NS)


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]


def assert_refused(world: SamlWorld, client: httpx.Client, response: httpx.Response, status: int,
                   reason: str) -> None:
    """The exact refusal: status, a public message, an audit event with the reason, and no session."""
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["error"] == reason, body
    assert body["message"] and body["error_id"] and "Traceback" not in response.text
    [event] = [e for e in audit_events(world.stack) if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status
    assert client.cookies.get("sts_broker_session") is None
    assert client.get(f"{world.stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401


@pytest.fixture(scope="session")
def saml_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlWorld]:
    """The broker (its real config files, real HTTP) and the pysaml2 IdP. No AWS: nothing here issues
    credentials, and the flow tests own the session's local AWS."""
    work = tmp_path_factory.mktemp("saml")
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_port, idp_port = free_port(), free_port()
    broker_url = f"http://{LOOPBACK}:{broker_port}"
    idp = DevSamlIdp(f"http://{LOOPBACK}:{idp_port}", work / "idp")
    corp = saml_idp_config("corp", idp.url, idp.certificate)
    corpopen = {**saml_idp_config("corpopen", idp.url, idp.certificate), "allow_idp_initiated": True}
    idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(c), broker_url, None).sp_metadata()
                  for c in (corp, corpopen)])
    other_key, other_cert = write_key_and_cert(work / "other", "attacker", "dev-saml-idp")
    dead = f"http://{LOOPBACK}:{free_port()}"
    aws = LocalAws(dead, dead, "123456789012")
    config = write_config(work / "broker", broker_url, dead, aws, DEMO_RULES, {"corp": corp, "corpopen": corpopen},
                          {"rate_limits": {"login_starts": 100000, "acs_posts": 100000}})
    settings = load_settings(config)
    with run_dev_saml_idp(idp, idp_port), asgi_server(create_app(settings), broker_port):
        stack = DevStack(broker_url, dead, aws, work / "broker", settings, Path(settings.audit.path), idp.url, idp)
        yield SamlWorld(stack, idp, other_key, other_cert)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with browser.browser() as c:
        c.headers["Accept"] = "application/json"
        yield c
