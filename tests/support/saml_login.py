"""Starting an SP-initiated SAML login as a browser does, for every test that needs an AuthnRequest ID."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import httpx
from lxml import etree  # type: ignore[import-untyped]


def authn_request_id(client: httpx.Client, broker_url: str, idp: str) -> str:
    """GET /login/{idp}: the ID of the AuthnRequest the broker sent (read as the IdP reads it, from the
    HTTP-Redirect binding's deflated SAMLRequest); the client keeps the cookie that binds it."""
    response = client.get(f"{broker_url}/login/{idp}")
    assert response.status_code == 303, response.text[:300]
    query = parse_qs(urlsplit(response.headers["location"]).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    return str(etree.fromstring(xml).get("ID"))
