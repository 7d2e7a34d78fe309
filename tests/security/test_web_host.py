"""Host and X-Forwarded-Host/Proto spoofing: whole logins with spoofed headers on every request to the broker;
no Location, page, cookie, SAML request or OIDC URL the broker produces may carry the spoofed host."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login
from tests.security._web_support import JSON, Stack, page_and_headers, role, web_stack

__all__ = ["web_stack"]


@contextmanager
def spoofing_browser(stack: Stack, host: str) -> Iterator[tuple[httpx.Client, list[str]]]:
    """A browser whose every request to the broker carries a spoofed Host, X-Forwarded-Host and -Proto
    (requests to the IdPs stay honest); everything the broker answers is recorded."""
    seen: list[str] = []
    broker = httpx.URL(stack.url)

    def spoof(request: httpx.Request) -> None:
        if request.url.host == broker.host and request.url.port == broker.port:
            request.headers.update({"Host": host, "X-Forwarded-Host": host, "X-Forwarded-Proto": "https",
                                    "X-Forwarded-Server": host, "Forwarded": f"host={host};proto=https"})

    def record(response: httpx.Response) -> None:
        if response.request.url.host == broker.host and response.request.url.port == broker.port:
            response.read()
            seen.append(page_and_headers(response))
            location = response.headers.get("location", "")
            for value in parse_qs(urlsplit(location).query).get("SAMLRequest", []):
                seen.append(zlib.decompress(base64.b64decode(value), -15).decode())

    with httpx.Client(timeout=20, follow_redirects=False,
                      event_hooks={"request": [spoof], "response": [record]}) as client:
        yield client, seen


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443", "127.0.0.1.evil.example"])
def test_no_broker_answer_reflects_a_spoofed_host(web_stack: Stack, host: str) -> None:
    url = web_stack.url
    with spoofing_browser(web_stack, host) as (client, seen):
        assert browser.login(client, url, "dev", "bob").status_code == 303
        csrf = browser.roles(client, url)["csrf_token"]
        client.get(f"{url}/roles")
        client.get(f"{url}/")
        developer = role(web_stack.account, "DemoDeveloper")
        for fmt in ("json", "ini", "env", "credential_process"):
            assert browser.post_role(client, url, "credentials", developer, csrf, format=fmt).status_code == 200
        assert client.post(f"{url}/roles/console", data={"role": developer, "csrf_token": csrf}).status_code == 303
        client.post(f"{url}/roles/console", data={"role": developer, "csrf_token": "forged"})
        assert client.post(f"{url}/logout", data={"csrf_token": csrf}).status_code == 303
        assert browser_login(client, url, "devsaml", "alice").status_code == 303
        for path in ("/nope", "/roles/", "/login/unknown", "/.well-known/openid-configuration",
                     "/.well-known/jwks.json", "/saml/idp/metadata", "/saml/devsaml/metadata", "/openapi.json",
                     "/healthz", "/readyz", "/metrics"):
            client.get(f"{url}{path}")
            client.get(f"{url}{path}", headers=JSON)
    assert len(seen) > 30
    bare = host.split(":")[0]
    leaks = [text[:300] for text in seen if bare in text or bare in unquote(text)]
    assert not leaks
    documents = "\n".join(seen)
    assert f"{url}/oidc/dev/callback" in unquote(documents)  # the OIDC redirect_uri: from public_url
    assert f'AssertionConsumerServiceURL="{url}/saml/devsaml/acs"' in documents
