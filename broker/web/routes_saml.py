"""The broker as a SAML SP: its metadata and the ACS (HTTP-POST). The login start is /login/{idp}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from broker import urls
from broker.errors import BadRequest
from broker.web.context import context_of
from broker.web.routes_login import client_address, finish

MAX_FORM_FIELDS = 8


async def metadata(request: Request) -> Response:
    connector = context_of(request).service.saml_connector(request.path_params["idp"])
    return Response(connector.sp_metadata(), media_type="application/samlmetadata+xml")


async def acs(request: Request) -> Response:
    service = context_of(request).service
    service.login_connector(request.path_params["idp"], urls.SAML_ACS)  # unknown IdP: 404 before the body
    await service.limit_acs(client_address(request))  # 429 before the body is read or any XML parsed
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadRequest("ACS expects an HTML form post", reason="saml_not_form")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    return await finish(request, urls.SAML_ACS, {k: v for k, v in form.items() if isinstance(v, str)})
