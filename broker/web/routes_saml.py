"""The broker as a SAML SP: its metadata, the login start (an AuthnRequest) and the ACS (HTTP-POST)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.errors import BadRequest
from broker.service import LOGIN_TTL
from broker.web.routes_login import client_address, complete_login, service_of, sessions_of

SAML_COOKIE = "sts_broker_saml"
MAX_FORM_FIELDS = 8


def _acs_path(idp: str) -> str:
    return f"/saml/{idp}/acs"


async def metadata(request: Request) -> Response:
    connector = service_of(request).saml_connector(request.path_params["idp"])
    return Response(connector.sp_metadata(), media_type="application/samlmetadata+xml")


async def saml_login(request: Request, idp: str) -> Response:
    url, request_id = await service_of(request).start_saml_login(idp, client_address(request))
    response = RedirectResponse(url, status_code=303)
    secure = bool(request.app.state.secure_cookies)
    # The ACS is a cross-site POST from the IdP: over https the cookie that binds the AuthnRequest to this
    # browser must be SameSite=None (and Secure); plain http exists only on loopback, where it is same-site.
    response.set_cookie(SAML_COOKIE, sessions_of(request).sign_login_state(request_id), max_age=int(LOGIN_TTL),
                        httponly=True, secure=secure, samesite="none" if secure else "lax", path=_acs_path(idp))
    return response


async def acs(request: Request) -> Response:
    idp = request.path_params["idp"]
    service = service_of(request)
    service.saml_connector(idp)  # unknown IdP: 404 before reading the body
    await service.limit_acs(client_address(request))  # 429 before the body is read or any XML parsed
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadRequest("ACS expects an HTML form post", reason="saml_not_form")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    browser_request = sessions_of(request).login_state(request.cookies.get(SAML_COOKIE), int(LOGIN_TTL))
    identity, return_to = await service.finish_saml_login(idp, fields, browser_request)
    return await complete_login(request, identity, return_to, SAML_COOKIE, _acs_path(idp))
