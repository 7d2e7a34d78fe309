"""The AuthnRequest over the HTTP-POST binding, end to end over real HTTP against pysaml2 (see post_world)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login, read_forms
from broker.errors import BadRequest
from broker.logins.saml import relay_path
from broker.web.csp import app_policy, csp_with
from broker.web.render import templates
from broker.web.routes_static import IMMUTABLE, SHORT, static_url
from tests.saml_sp.conftest import NS, assert_refused, audit_events
from tests.saml_sp.post_world import QUIRKY_QUERY, PostWorld, post_world

DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SIGNED_BY_BROKER = ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256",
                    "http://www.w3.org/2001/10/xml-exc-c14n#")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostWorld]:
    with post_world(tmp_path_factory.mktemp("post")) as w:
        yield w


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with browser.browser() as c:
        yield c


def _page(world: PostWorld, client: httpx.Client, idp: str, *, params: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    response = client.get(f"{world.url}/login/{idp}", params=params, headers=headers)
    assert response.status_code == 200, response.text[:300]
    return response


def _request_xml(page: httpx.Response) -> etree._Element:
    [form] = read_forms(page.text)
    raw = base64.b64decode(form.fields["SAMLRequest"], validate=True)
    assert raw.lstrip().startswith(b"<samlp:AuthnRequest")  # base64 of the XML itself, not deflated
    return etree.fromstring(raw)


def _logged_in_as(world: PostWorld, client: httpx.Client, idp: str, user: str) -> None:
    landed = browser_login(client, world.url, idp, user)
    assert landed.status_code == 303 and landed.headers["location"] == "/roles", landed.text[:300]
    view = client.get(f"{world.url}/roles", headers={"Accept": "application/json"}).json()
    assert [r["role_arn"] for r in view["roles"]] == [DEV]
    login = [e for e in audit_events(world.saml.stack) if e["event"] == "login_succeeded"][-1]
    assert login["idp"] == idp and login["subject"] == f"{user}@example.com" and login["protocol"] == "saml"


# ---- whole logins -----------------------------------------------------------------------------------------


def test_post_only_idp_login_end_to_end(world: PostWorld, client: httpx.Client) -> None:
    """POST-only metadata (and WantAuthnRequestsSigned): the broker's page -> pysaml2 verifies the signed
    request -> its login form -> the ACS. The login start is audited with its binding."""
    _logged_in_as(world, client, "postonly", "bob")
    started = [e for e in audit_events(world.saml.stack) if e["event"] == "login_started"][-1]
    assert started["idp"] == "postonly" and started["binding"] == "post"


def test_inline_config_with_sso_binding_post(world: PostWorld, client: httpx.Client) -> None:
    _logged_in_as(world, client, "inlinepost", "bob")


def test_both_bindings_prefers_redirect(world: PostWorld, client: httpx.Client) -> None:
    start = client.get(f"{world.url}/login/both")
    assert start.status_code == 303
    location = urlsplit(start.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == world.idp_both.sso_urls["redirect"]
    _logged_in_as(world, client, "both", "bob")


def test_sso_binding_post_overrides_the_metadata_preference(world: PostWorld, client: httpx.Client) -> None:
    page = _page(world, client, "bothpost")
    [form] = read_forms(page.text)
    assert form.action == world.idp_both.sso_urls["post"]
    assert _request_xml(page).find("ds:Signature", NS) is None  # this IdP does not ask for signed requests
    _logged_in_as(world, client, "bothpost", "bob")


# ---- the page -----------------------------------------------------------------------------------------------


def test_post_page(world: PostWorld, client: httpx.Client) -> None:
    page = _page(world, client, "postonly")
    sso = world.idp_post.sso_urls["post"]
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers.get_list("content-security-policy") == [csp_with(world.idp_post.url)]
    assert csp_with(world.idp_post.url).endswith(f"; form-action {world.idp_post.url}")  # only the IdP's origin
    [form] = read_forms(page.text)
    assert (form.action, form.method) == (sso, "post") and set(form.fields) == {"SAMLRequest", "RelayState"}
    assert form.fields["RelayState"] == "/roles"
    assert '<button type="submit">Continue to Post-only IdP</button>' in page.text
    # The broker's files only (the shell's and this page's); no inline script or event handler for the policy
    # to have to allow.
    assert re.findall(r"<script[^>]*>", page.text) == [f'<script src="{static_url(name)}" defer>'
                                                       for name in ("pageshow.js", "saml-post.js")]
    assert not re.search(r"\son[a-z]+=", page.text) and "javascript:" not in page.text
    cookie = page.headers["set-cookie"]
    assert "sts_broker_saml=" in cookie and "Path=/saml/postonly/acs" in cookie and "HttpOnly" in cookie


def test_post_authn_request(world: PostWorld, client: httpx.Client) -> None:
    """Destination is the SSO URL, the ACS binding stays HTTP-POST, and the enveloped signature is the
    allow-listed shape: RSA-SHA256, SHA-256 digest, exclusive c14n, over the request's own ID."""
    request = _request_xml(_page(world, client, "postonly"))
    assert request.get("Destination") == world.idp_post.sso_urls["post"]
    assert request.get("ProtocolBinding") == POST
    assert request.get("AssertionConsumerServiceURL") == f"{world.url}/saml/postonly/acs"
    assert request.findtext("saml:Issuer", namespaces=NS) == f"{world.url}/saml/postonly/metadata"
    signature = request[1]
    assert signature.tag == f"{{{NS['ds']}}}Signature"  # right after the Issuer, as the schema orders it
    info = signature.find("ds:SignedInfo", NS)
    used = (info.find("ds:SignatureMethod", NS).get("Algorithm"),
            info.find("ds:Reference/ds:DigestMethod", NS).get("Algorithm"),
            info.find("ds:CanonicalizationMethod", NS).get("Algorithm"))
    assert used == SIGNED_BY_BROKER
    assert info.find("ds:Reference", NS).get("URI") == f"#{request.get('ID')}"
    transforms = [t.get("Algorithm") for t in info.iterfind("ds:Reference/ds:Transforms/ds:Transform", NS)]
    assert transforms == ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", SIGNED_BY_BROKER[2]]


def _default_policy(world: PostWorld) -> str:
    aws = world.saml.stack.settings.aws
    return app_policy(aws.federation_url, aws.console_url)


def test_static_script(world: PostWorld) -> None:
    response = httpx.get(f"{world.url}{static_url('saml-post.js')}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == IMMUTABLE
    assert httpx.get(f"{world.url}/static/saml-post.js").headers["cache-control"] == SHORT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("content-security-policy") == [_default_policy(world)]
    assert 'getElementById("saml-post")' in response.text and "form.submit()" in response.text
    assert httpx.get(f"{world.url}/static/other.js").status_code == 404


def test_other_pages_keep_the_default_policy(world: PostWorld, client: httpx.Client) -> None:
    for path in ("/", "/login/both", "/saml/postonly/metadata"):
        assert client.get(f"{world.url}{path}").headers.get_list("content-security-policy") == [_default_policy(world)]


# ---- pysaml2 judges the broker's signature ---------------------------------------------------------------


def test_signed_post_request_verifies_with_pysaml2_and_tampered_fails(world: PostWorld,
                                                                       client: httpx.Client) -> None:
    page = _page(world, client, "postonly")
    [form] = read_forms(page.text)
    genuine = form.fields["SAMLRequest"]
    message = world.idp_post.parse_request(genuine, "post")
    assert str(message.id) == _request_xml(page).get("ID")

    request = etree.fromstring(base64.b64decode(genuine))
    request.set("AssertionConsumerServiceURL", "https://evil.example/acs")
    tampered = base64.b64encode(etree.tostring(request)).decode()
    request.remove(request.find("ds:Signature", NS))
    stripped = base64.b64encode(etree.tostring(request)).decode()
    for bad in (tampered, stripped):
        with pytest.raises(Exception, match="not signed correctly"):
            world.idp_post.parse_request(bad, "post")
    # The same over HTTP, as a browser would post them: pysaml2's IdP refuses both, takes the genuine one.
    sso = world.idp_post.sso_urls["post"]
    for bad in (tampered, stripped):
        answer = httpx.post(sso, data={"SAMLRequest": bad, "RelayState": "/roles"})
        assert answer.status_code == 403 and "IncorrectlySigned" in answer.text
    assert httpx.post(sso, data={"SAMLRequest": genuine, "RelayState": "/roles"}).status_code == 200


# ---- nothing from the request steers where the page posts ---------------------------------------------------

# `return_to` is read, allow-listed, and a path off the list refused with a 400 (tests/flows/test_cli_refusals.py).
STEERING = {"sso_url": "https://evil.example/sso", "destination": "https://evil.example/", "action": "//evil.example",
            "RelayState": '"><script>alert(1)</script>', "SAMLRequest": "PHg+", "next": "javascript:alert(1)"}
SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
           "Forwarded": "host=evil.example;proto=https", "X-Original-URL": "https://evil.example/sso"}


@pytest.mark.parametrize("idp", ["postonly", "bothpost"])
def test_the_form_action_comes_only_from_configuration(world: PostWorld, client: httpx.Client, idp: str) -> None:
    expected = world.idp_post if idp == "postonly" else world.idp_both
    for kw in ({"params": STEERING}, {"headers": SPOOFED}, {"params": STEERING, "headers": SPOOFED}):
        page = _page(world, client, idp, **kw)
        [form] = read_forms(page.text)
        assert form.action == expected.sso_urls["post"] and form.fields["RelayState"] == "/roles"
        assert "evil" not in page.text and "<script>alert" not in page.text and "PHg+" not in page.text
        assert page.headers["content-security-policy"].endswith(f"form-action {expected.url}")
        request = _request_xml(page)
        assert request.get("Destination") == expected.sso_urls["post"]
        assert request.get("AssertionConsumerServiceURL") == f"{world.url}/saml/{idp}/acs"


def test_sso_url_and_idp_name_are_html_escaped(world: PostWorld, client: httpx.Client) -> None:
    """An SSO URL whose query carries markup (allowed: a query is part of an IdP URL) and an IdP name with
    markup: the page escapes both; the browser's form still posts to exactly the configured URL."""
    page = _page(world, client, "quirky")
    [form] = read_forms(page.text)
    assert form.action == world.idp_both.sso_urls["post"] + QUIRKY_QUERY
    assert "<script>alert" not in page.text and "<b>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "Continue to Quirky &lt;b&gt;IdP&lt;/b&gt;" in page.text
    assert page.headers["content-security-policy"].endswith(f"form-action {world.idp_both.url}")


@pytest.mark.parametrize("relay", ['"><script>alert(1)</script>', "https://evil.example/", "javascript:alert(1)"])
def test_the_page_template_escapes_a_hostile_relay_state(relay: str) -> None:
    """The return path is allow-listed before any page (test_web_redirects), so no request puts markup in the
    RelayState field; the page's template escapes it all the same (autoescape), as a browser then reads it."""
    env = templates().env
    html = env.get_template("saml_post.html").render(idp_name="<i>x</i>", action="https://idp.example/sso",
                                                     saml_request="PHg+", relay_state=relay)
    [form] = read_forms(html)
    assert form.fields["RelayState"] == relay and form.action == "https://idp.example/sso"
    assert "<script>alert" not in html and "<i>" not in html


def test_a_return_path_other_than_the_allow_list_is_refused() -> None:
    for bad in ('"><script>alert(1)</script>', "https://evil.example/", "//evil.example"):
        with pytest.raises(BadRequest) as info:
            relay_path(bad)
        assert info.value.reason == "saml_relay_state"


# ---- refusals ------------------------------------------------------------------------------------------------


def test_metadata_url_with_a_plain_http_post_sso_url_is_refused(world: PostWorld) -> None:
    """The metadata names `http://evil.example/sso` as its only (HTTP-POST) SSO URL: no page is built, the
    login start is a 502 with a reason, audited."""
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        response = client.get(f"{world.url}/login/badmeta")
        assert_refused(world.saml, client, response, 502, "saml_metadata_invalid")
        assert "set-cookie" not in response.headers and "evil" not in response.text
        [event] = [e for e in audit_events(world.saml.stack) if e.get("error_id") == response.json()["error_id"]]
        assert "HTTP-POST SSO URL 'http://evil.example/sso' is refused" in event["detail"]


def test_an_sso_url_no_policy_can_name_is_refused(world: PostWorld) -> None:
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        response = client.get(f"{world.url}/login/v6")
        assert_refused(world.saml, client, response, 502, "saml_sso_url_refused")
        assert "set-cookie" not in response.headers
