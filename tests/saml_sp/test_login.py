"""Whole SAML logins over real HTTP: pysaml2 behind its login form, HTTP-Redirect AuthnRequest, HTTP-POST ACS."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import httpx
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.dev_saml_idp import MFA_CONTEXT, browser_login
from tests.saml_sp.conftest import NS, SamlWorld, audit_events

DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"


def test_sp_initiated_login_through_the_idp_form(saml_world: SamlWorld, client: httpx.Client) -> None:
    landed = browser_login(client, saml_world.stack.broker_url, "corp", "bob")
    assert landed.status_code == 303 and landed.headers["location"] == "/roles"
    view = client.get(f"{saml_world.stack.broker_url}/roles").json()
    assert [r["role_arn"] for r in view["roles"]] == [DEV]
    login = [e for e in audit_events(saml_world.stack) if e["event"] == "login_succeeded"][-1]
    assert login["idp"] == "corp" and login["subject"] == "bob@example.com" and login["protocol"] == "saml"


def test_identity_from_the_verified_assertion(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    response = saml_world.post(client, saml_world.signed("alice", request_id))
    assert response.status_code == 303, response.text
    decision = [e for e in audit_events(saml_world.stack) if e["event"] == "login_succeeded"][-1]
    assert decision["mfa"] is True  # AuthnContextClassRef multipleauthn is configured as MFA


def test_authn_request(saml_world: SamlWorld, client: httpx.Client) -> None:
    response = client.get(f"{saml_world.stack.broker_url}/login/corp")
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == saml_world.idp.sso_url
    query = parse_qs(location.query)
    assert query["RelayState"] == ["/roles"]
    request = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15))
    assert request.get("AssertionConsumerServiceURL") == saml_world.acs()
    assert request.get("Destination") == saml_world.idp.sso_url
    assert request.findtext("saml:Issuer", namespaces=NS) == saml_world.sp_entity()
    cookie = response.headers["set-cookie"]
    assert "sts_broker_saml=" in cookie and "Path=/saml/corp/acs" in cookie and "HttpOnly" in cookie


def test_sp_metadata(saml_world: SamlWorld, client: httpx.Client) -> None:
    response = client.get(f"{saml_world.stack.broker_url}/saml/corp/metadata")
    assert response.status_code == 200 and "samlmetadata+xml" in response.headers["content-type"]
    root = etree.fromstring(response.content)
    assert root.get("entityID") == saml_world.sp_entity()
    acs = root.find(".//{urn:oasis:names:tc:SAML:2.0:metadata}AssertionConsumerService")
    assert acs.get("Location") == saml_world.acs()
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    sp = root.find("{urn:oasis:names:tc:SAML:2.0:metadata}SPSSODescriptor")
    assert sp.get("WantAssertionsSigned") == "true"
    assert client.get(f"{saml_world.stack.broker_url}/saml/nope/metadata").status_code == 404


def test_index_lists_oidc_and_saml(saml_world: SamlWorld) -> None:
    page = httpx.get(f"{saml_world.stack.broker_url}/").text
    for idp in ("dev", "corp", "corpopen"):
        assert f'href="/login/{idp}"' in page


def test_idp_initiated_allowed_only_where_configured(saml_world: SamlWorld, client: httpx.Client) -> None:
    response = saml_world.post(client, saml_world.signed("bob", None, idp="corpopen"), idp="corpopen",
                               relay="/roles")
    assert response.status_code == 303 and response.headers["location"] == "/roles"
    assert client.cookies.get("sts_broker_session")


def test_where_a_login_lands(saml_world: SamlWorld, client: httpx.Client) -> None:
    """IdP-initiated: the (allow-listed) RelayState decides, /roles without one. SP-initiated: the pending
    request decides, whatever allowed RelayState comes back."""
    for relay, landed in (("/", "/"), (None, "/roles")):
        xml = saml_world.signed("bob", None, idp="corpopen")
        response = saml_world.post(client, xml, idp="corpopen", relay=relay)
        assert response.status_code == 303 and response.headers["location"] == landed
    request_id = saml_world.start(client)
    response = saml_world.post(client, saml_world.signed("bob", request_id), relay="/")
    assert response.status_code == 303 and response.headers["location"] == "/roles"


def test_mfa_false_with_password_context(saml_world: SamlWorld, client: httpx.Client) -> None:
    request_id = saml_world.start(client)
    assert saml_world.post(client, saml_world.signed("alice", request_id, mfa=False)).status_code == 303
    login = [e for e in audit_events(saml_world.stack) if e["event"] == "login_succeeded"][-1]
    assert login["mfa"] is False and MFA_CONTEXT
