"""Login: the IdP chooser, the redirect to the IdP, the callback, logout."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker import urls
from broker.errors import NotAuthenticated
from broker.service import LOGIN_TTL
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import page
from broker.web.routes_roles import checked_form
from broker.web.saml_post import post_page
from broker.web.shell import chooser_idps, session_of

LOGIN_COOKIE = "sts_broker_login"  # the OIDC state, for the callback
SAML_COOKIE = "sts_broker_saml"  # the AuthnRequest ID, for the ACS


def client_address(request: Request) -> str:
    return client_host(request.scope)


async def index(request: Request) -> Response:
    session = await session_of(request)
    if session is not None:
        return RedirectResponse("/roles", status_code=303)
    return page(request, "index.html", {"idps": chooser_idps(request)})


async def login(request: Request) -> Response:
    context = context_of(request)
    # Where to land after the login: /roles, or a CLI step the login interrupted (allow-listed by the core).
    return_to = request.query_params.get("return_to", "/roles")
    start = await context.service.start_login(request.path_params["idp"], client_address(request), return_to)
    response = post_page(request, start) if start.fields else RedirectResponse(start.url, status_code=303)
    secure = context.secure_cookies
    # Binds the login to this browser: an answer carrying someone else's state is refused. An answer that
    # comes back as a cross-site POST (SAML ACS) needs SameSite=None over https (and Secure); plain http
    # exists only on loopback, where it is same-site.
    response.set_cookie(_cookie(start.cross_site_finish), context.sessions.sign_login_state(start.state),
                        max_age=int(LOGIN_TTL), httponly=True, secure=secure,
                        samesite="none" if secure and start.cross_site_finish else "lax", path=start.finish_path)
    return response


def _cookie(cross_site_finish: bool) -> str:
    return SAML_COOKIE if cross_site_finish else LOGIN_COOKIE


async def callback(request: Request) -> Response:
    return await finish(request, urls.OIDC_CALLBACK, dict(request.query_params))


async def finish(request: Request, template: str, params: dict[str, str]) -> Response:
    """The end of any browser login (OIDC callback, SAML ACS): verified by the core, then a fresh session
    (rotated id) and the browser sent to the allow-listed path the core returned."""
    idp = request.path_params["idp"]
    context = context_of(request)
    service, sessions, cookie_name = context.service, context.sessions, context.cookie_name
    cookie = _cookie(template == urls.SAML_ACS)
    browser_state = sessions.login_state(request.cookies.get(cookie), int(LOGIN_TTL))
    identity, return_to = await service.finish_login(idp, template, params, browser_state)
    service.login_succeeded(identity, client_address(request))
    _, session_cookie = await sessions.create(identity, request.cookies.get(cookie_name))
    response = RedirectResponse(return_to, status_code=303)
    response.set_cookie(cookie_name, session_cookie, max_age=int(sessions.lifetime), httponly=True,
                        secure=context.secure_cookies, samesite="lax")
    response.delete_cookie(cookie, path=urls.for_idp(template, idp))
    return response


async def logout(request: Request) -> Response:
    context = context_of(request)
    session = await session_of(request)
    if session is None:
        raise NotAuthenticated("logout without a session")
    await checked_form(request, session)
    await context_of(request).sessions.destroy(session)
    context_of(request).service.logged_out(session.identity)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(context.cookie_name)
    return response
