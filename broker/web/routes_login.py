"""Login: the IdP chooser, the redirect to the IdP, the callback, logout."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.errors import NotAuthenticated
from broker.identity import Identity
from broker.rules.explain import for_audit
from broker.service import LOGIN_TTL
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import page
from broker.web.routes_roles import checked_form

LOGIN_COOKIE = "sts_broker_login"


def client_address(request: Request) -> str:
    return client_host(request.scope)


async def index(request: Request) -> Response:
    context = context_of(request)
    session = await context.sessions.load(request.cookies.get(context.cookie_name))
    if session is not None:
        return RedirectResponse("/roles", status_code=303)
    idps = [{"id": idp_id, "name": name} for idp_id, name in context.service.browser_idps()]
    return page(request, "index.html", {"idps": sorted(idps, key=lambda i: i["name"])})


async def login(request: Request) -> Response:
    idp, context = request.path_params["idp"], context_of(request)
    if idp in context.service.saml:
        from broker.web.routes_saml import saml_login  # SAML: an AuthnRequest instead of an OIDC redirect

        return await saml_login(request, idp)
    url, state = await context.service.start_login(idp, client_address(request))
    response = RedirectResponse(url, status_code=303)
    # Binds the login to this browser: a callback carrying someone else's state is refused.
    response.set_cookie(LOGIN_COOKIE, context.sessions.sign_login_state(state), max_age=int(LOGIN_TTL),
                        httponly=True, secure=context.secure_cookies, samesite="lax", path=f"/oidc/{idp}/callback")
    return response


async def callback(request: Request) -> Response:
    idp = request.path_params["idp"]
    context = context_of(request)
    service, sessions = context.service, context.sessions
    browser_state = sessions.login_state(request.cookies.get(LOGIN_COOKIE), int(LOGIN_TTL))
    identity = await service.finish_login(idp, dict(request.query_params), browser_state)
    return await complete_login(request, identity, "/roles", LOGIN_COOKIE, f"/oidc/{idp}/callback")


async def complete_login(request: Request, identity: Identity, return_to: str, login_cookie: str,
                         login_cookie_path: str) -> Response:
    """After any verified login (OIDC callback, SAML ACS): audit, decide, a fresh session (rotated id),
    and the browser sent to an allow-listed local path."""
    context = context_of(request)
    service, sessions = context.service, context.sessions
    decision = service.decide(identity)
    service.audit.event("login_succeeded", idp=identity.idp, subject=identity.subject, issuer=identity.issuer,
                        mfa=identity.mfa, client=client_address(request), protocol=identity.protocol)
    service.audit.event("decision", idp=identity.idp, subject=identity.subject, **for_audit(decision))
    _, cookie = await sessions.create(identity, request.cookies.get(context.cookie_name))
    response = RedirectResponse(return_to, status_code=303)
    response.set_cookie(context.cookie_name, cookie, max_age=int(sessions.lifetime), httponly=True,
                        secure=context.secure_cookies, samesite="lax")
    response.delete_cookie(login_cookie, path=login_cookie_path)
    return response


async def logout(request: Request) -> Response:
    context = context_of(request)
    session = await context.sessions.load(request.cookies.get(context.cookie_name))
    if session is None:
        raise NotAuthenticated("logout without a session")
    await checked_form(request, session)
    await context.sessions.destroy(session)
    context.service.audit.event("logout", idp=session.identity.idp, subject=session.identity.subject)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(context.cookie_name)
    return response
