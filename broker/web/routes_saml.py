"""The broker as a SAML SP: its metadata, the login start (an AuthnRequest) and the ACS (HTTP-POST)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.connectors.saml import SamlStart
from broker.errors import BadRequest, UpstreamUnavailable
from broker.service import LOGIN_TTL
from broker.web.context import context_of
from broker.web.middleware import csp_with
from broker.web.render import page
from broker.web.routes_login import client_address, complete_login

SAML_COOKIE = "sts_broker_saml"
MAX_FORM_FIELDS = 8


def _acs_path(idp: str) -> str:
    return f"/saml/{idp}/acs"


async def metadata(request: Request) -> Response:
    connector = context_of(request).service.saml_connector(request.path_params["idp"])
    return Response(connector.sp_metadata(), media_type="application/samlmetadata+xml")


async def saml_login(request: Request, idp: str) -> Response:
    service = context_of(request).service
    start = await service.start_saml_login(idp, client_address(request))
    if start.binding == "post":
        response = post_page(request, service.saml_connector(idp).config.name, start)
    else:
        response = RedirectResponse(start.url, status_code=303)
    secure = context_of(request).secure_cookies
    # The ACS is a cross-site POST from the IdP: over https the cookie that binds the AuthnRequest to this
    # browser must be SameSite=None (and Secure); plain http exists only on loopback, where it is same-site.
    response.set_cookie(SAML_COOKIE, context_of(request).sessions.sign_login_state(start.request_id),
                        max_age=int(LOGIN_TTL), httponly=True, secure=secure,
                        samesite="none" if secure else "lax", path=_acs_path(idp))
    return response


def post_page(request: Request, idp_name: str, start: SamlStart) -> Response:
    """The HTTP-POST binding: a page whose form posts the AuthnRequest to the IdP's SSO URL (the descriptor's,
    never anything from the request), submitted by the broker's static script, or by its button without
    JavaScript. Its policy allows only that script and only form posts to the SSO URL's origin."""
    origin = form_origin(start.url)
    context = {"idp_name": idp_name, "action": start.url, "saml_request": start.fields["SAMLRequest"],
               "relay_state": start.fields["RelayState"]}
    response = page(request, "saml_post.html", context)
    response.headers["Content-Security-Policy"] = csp_with("script-src 'self'", f"form-action {origin}")
    return response


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def form_origin(url: str) -> str:
    """The CSP source for the SSO URL's origin. The URL passed the IdP URL rule when it was loaded; this
    refuses anything that could not stand in a policy as exactly one origin (no space, `;`, `,`, quote)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in {"https", "http"} or not _ORIGIN.fullmatch(origin):
        raise UpstreamUnavailable(f"SSO URL {url[:100]!r} has no origin a policy can name",
                                  reason="saml_sso_url_refused",
                                  public="This identity provider's sign-in address cannot be used here. "
                                         "Ask the broker's operator.")
    return origin


async def acs(request: Request) -> Response:
    idp = request.path_params["idp"]
    service = context_of(request).service
    service.saml_connector(idp)  # unknown IdP: 404 before reading the body
    await service.limit_acs(client_address(request))  # 429 before the body is read or any XML parsed
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadRequest("ACS expects an HTML form post", reason="saml_not_form")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    browser_request = context_of(request).sessions.login_state(request.cookies.get(SAML_COOKIE), int(LOGIN_TTL))
    identity, return_to = await service.finish_saml_login(idp, fields, browser_request)
    return await complete_login(request, identity, return_to, SAML_COOKIE, _acs_path(idp))
