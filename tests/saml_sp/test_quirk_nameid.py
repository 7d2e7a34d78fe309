"""NameID formats per IdP, and what `name_id_format:` does with each. The broker asks for the configured
format (AuthnRequest NameIDPolicy, SP metadata); the NameID value is the subject whatever its format; an email
is taken from the NameID only when the NameID the IdP sent says emailAddress (and no email attribute is
configured). A format other than the configured one is accepted, never widening anything: the email is not
derived from it, and `name_id_format` (the format received) is a claim rules can require."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]
from saml2.saml import NameID

from broker.connectors.saml_config import NAMEID_FORMATS
from broker.identity import Identity
from tests.saml_sp.quirk_world import QuirkWorld, quirk_world, role_names, roles_view

__all__ = ["quirk_world"]  # the fixture, for pytest

PERSISTENT_VALUE = "7f3a9c2e-5b1d-4e8f-a6c0-2d9b8e7f1a3c"


def _login(world: QuirkWorld, client: httpx.Client, idp: str, fmt: str, value: str) -> tuple[Identity, list[str]]:
    request_id = world.start(client, idp)
    xml = world.signed("alice", request_id, idp=idp, name_id=NameID(format=NAMEID_FORMATS[fmt], text=value))
    assert f'Format="{NAMEID_FORMATS[fmt]}"' in xml
    response = world.post(client, xml, idp)
    assert response.status_code == 303, response.text[:300]
    return world.identity(idp, xml, request_id), role_names(roles_view(world, client))


def test_email_address_name_id_gives_the_email(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, roles = _login(quirk_world, client, "nid-emailaddress", "emailAddress", "alice@example.com")
    assert identity.subject == "alice@example.com" and identity.email == "alice@example.com"
    assert identity.email_verified is True and roles == ["Viewer"]


@pytest.mark.parametrize("fmt,value", [("persistent", PERSISTENT_VALUE), ("transient", "_3f2a9b8c7d6e5f4a"),
                                       ("unspecified", "alice@example.com")])
def test_other_formats_give_a_subject_but_no_email(quirk_world: QuirkWorld, client: httpx.Client, fmt: str,
                                                   value: str) -> None:
    """Even an unspecified NameID that looks like an address is not taken as the email."""
    identity, roles = _login(quirk_world, client, f"nid-{fmt.lower()}", fmt, value)
    assert identity.subject == value and identity.email is None
    assert identity.claims["name_id_format"] == (NAMEID_FORMATS[fmt],)
    assert roles == []  # the rules grant by email here: no email, nothing granted


def test_persistent_name_id_with_an_email_attribute(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, roles = _login(quirk_world, client, "nid-email-attr", "persistent", PERSISTENT_VALUE)
    assert identity.subject == PERSISTENT_VALUE and identity.email == "alice@example.com"
    assert roles == ["Viewer"]


def test_format_other_than_configured_accepted_without_email(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """emailAddress configured, a persistent NameID holding an address received: the login goes on, the
    value is the subject, and no email is derived from it."""
    identity, roles = _login(quirk_world, client, "nid-emailaddress", "persistent", "alice@example.com")
    assert identity.subject == "alice@example.com" and identity.email is None
    assert identity.claims["name_id_format"] == (NAMEID_FORMATS["persistent"],)
    assert roles == []


@pytest.mark.parametrize("fmt", ["emailAddress", "persistent", "transient", "unspecified"])
def test_configured_format_is_requested(quirk_world: QuirkWorld, client: httpx.Client, fmt: str) -> None:
    response = client.get(f"{quirk_world.stack.broker_url}/login/nid-{fmt.lower()}")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    request = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15))
    policy = request.find("{urn:oasis:names:tc:SAML:2.0:protocol}NameIDPolicy")
    assert policy.get("Format") == NAMEID_FORMATS[fmt]
