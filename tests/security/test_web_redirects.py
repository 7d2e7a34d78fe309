"""Open redirects: every parameter that could steer where the broker sends a browser, with every trick."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from broker.devstack import browser
from tests.security._web_support import JSON, Stack, assert_refused, logged_in, role, saml_answer, web_stack

__all__ = ["web_stack"]

EVIL = "evil.example"
# Each a return address an attacker would try; none is one of the broker's own allow-listed paths.
REDIRECT_TRICKS = [
    "https://evil.example/", "http://evil.example", "HTTPS://EVIL.EXAMPLE", "//evil.example", "///evil.example",
    "////evil.example/roles", "/\\evil.example", "\\\\evil.example", "\\/evil.example", "/\\/evil.example",
    "https:evil.example", "https://broker.example.com@evil.example/", "//user:pass@evil.example",
    "/roles@evil.example", "//evil.example%2f%2e%2e", "%2F%2Fevil.example", "/%2F%2Fevil.example",
    "/%5Cevil.example", "%252F%252Fevil.example", "/roles/../..//evil.example", "/roles?next=//evil.example",
    "/roles#//evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "/ro\tles", "/roles\n", "\t//evil.example",
    "/\t/evil.example", " /roles", "/roles ", "/\u2215\u2215evil.example", "/\uff0f\uff0fevil.example", "/roles\x00",
    "\u3002evil.example", "/" + "a" * 5000,
]


def _no_session_granted(client: httpx.Client, response: httpx.Response) -> None:
    assert "location" not in response.headers
    assert "sts_broker_session" not in str(response.headers.get_list("set-cookie"))
    assert client.get("/roles", headers=JSON).status_code == 401


def test_relay_state_tricks_are_refused_before_anything_is_consumed(web_stack: Stack) -> None:
    """A genuine SAML answer posted with each RelayState trick: refused (400 saml_relay_state, audited), no
    session; nothing is used up by a refusal, so the same answer then signs in with the allowed path."""
    with browser.browser() as client:
        client.base_url = httpx.URL(web_stack.url)
        acs, fields = saml_answer(web_stack, client)
        for trick in REDIRECT_TRICKS:
            response = client.post(acs, data={**fields, "RelayState": trick}, headers=JSON)
            event = assert_refused(web_stack, response, 400, "saml_relay_state")
            assert event["idp"] == "devsaml"
            _no_session_granted(client, response)
        landed = client.post(acs, data={**fields, "RelayState": "/roles"})
        assert landed.status_code == 303 and landed.headers["location"] == "/roles"


def test_unsolicited_answer_with_a_relay_state_is_refused(web_stack: Stack) -> None:
    """IdP-initiated (no AuthnRequest of this browser) is off: an answer posted by another browser, with an
    absolute RelayState, signs no one in and redirects nowhere."""
    with browser.browser() as victim, browser.browser() as attacker:
        acs, fields = saml_answer(web_stack, attacker)
        victim.base_url = httpx.URL(web_stack.url)
        response = victim.post(acs, data={**fields, "RelayState": "/roles"}, headers=JSON)
        assert_refused(web_stack, response, 400, "saml_request_not_bound")
        _no_session_granted(victim, response)


RETURN_PARAMS = ["return_to", "next", "redirect", "redirect_uri", "url", "RelayState", "continue", "target",
                 "destination", "returnTo", "callback"]


def _query(value: str, *, start: bool = False) -> str:
    """Every return parameter set to `value`; at a login start (`start`) all but `return_to`, which the start
    reads (allow-listed: test_login_start_refuses_return_to_tricks)."""
    return urlencode({name: value for name in RETURN_PARAMS if not (start and name == "return_to")})


def test_login_start_refuses_return_to_tricks(web_stack: Stack) -> None:
    """`return_to` (where a login that interrupted a CLI step lands) is allow-listed: each trick is a 400
    (return_path_invalid, audited) at both kinds of login start, before any login state is made."""
    with browser.browser() as client:
        for idp in ("dev", "devsaml"):
            for trick in REDIRECT_TRICKS:
                response = client.get(f"{web_stack.url}/login/{idp}", params={"return_to": trick}, headers=JSON)
                assert_refused(web_stack, response, 400, "return_path_invalid")
                assert "location" not in response.headers and not response.headers.get_list("set-cookie")


@pytest.mark.parametrize("trick", ["https://evil.example/", "//evil.example", "/\\evil.example",
                                   "javascript:alert(1)"])
def test_login_start_and_callback_ignore_return_parameters(web_stack: Stack, trick: str) -> None:
    """No return parameter at the login start, the OIDC callback or the SAML start moves the landing page or
    the redirect URI: both come from configuration (public_url + fixed paths)."""
    with browser.browser() as client:
        start = client.get(f"{web_stack.url}/login/dev?{_query(trick, start=True)}")
        assert start.status_code == 303
        authorize = parse_qs(urlsplit(start.headers["location"]).query)
        assert authorize["redirect_uri"] == [f"{web_stack.url}/oidc/dev/callback"]
        assert EVIL not in start.headers["location"] and "javascript" not in start.headers["location"]
        callback = browser.authorize_at_idp(client, start.headers["location"], "bob")
        landed = client.get(f"{callback}&{_query(trick)}")
        assert landed.status_code == 303 and landed.headers["location"] == "/roles"
        saml = client.get(f"{web_stack.url}/login/devsaml?{_query(trick, start=True)}")
        sent = parse_qs(urlsplit(saml.headers["location"]).query)
        assert sent["RelayState"] == ["/roles"]
        request = zlib.decompress(base64.b64decode(sent["SAMLRequest"][0]), -15).decode()
        assert EVIL not in request and f'AssertionConsumerServiceURL="{web_stack.url}/saml/devsaml/acs"' in request


def test_console_and_logout_redirects_ignore_form_fields(web_stack: Stack) -> None:
    with logged_in(web_stack, "bob") as (client, csrf):
        # `destination` is the deep link, checked against the allow-list (tests/portal/test_console_links.py).
        extra = {name: "https://evil.example/" for name in RETURN_PARAMS if name != "destination"}
        console = client.post(f"{web_stack.url}/roles/console", data={
            "role": role(web_stack.account, "DemoDeveloper"), "csrf_token": csrf, "Destination": "https://evil.example/",
            **extra})
        assert console.status_code == 303, console.text[:300]
        target = console.headers["location"]
        assert target.startswith(f"{web_stack.dev.aws.federation_url}?Action=login&")
        assert parse_qs(urlsplit(target).query)["Destination"] == ["https://console.aws.amazon.com/"]
        logout = client.post(f"{web_stack.url}/logout", data={"csrf_token": csrf, **extra})
        assert logout.status_code == 303 and logout.headers["location"] == "/"
