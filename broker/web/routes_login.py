"""Login: the IdP chooser, the redirect to the IdP, the callback, logout."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.errors import NotAuthenticated
from broker.identity import Identity
from broker.rules.explain import for_audit
from broker.service import LOGIN_TTL, BrokerService
from broker.web.proxy import client_host
from broker.web.render import page
from broker.web.routes_roles import checked_form
from broker.web.sessions import SessionManager

LOGIN_COOKIE = "sts_broker_login"


def service_of(request: Request) -> BrokerService:
    service: BrokerService = request.app.state.service
    return service


def sessions_of(request: Request) -> SessionManager:
    sessions: SessionManager = request.app.state.sessions
    return sessions


def client_address(request: Request) -> str:
    return client_host(request.scope)


def _secure(request: Request) -> bool:
    return bool(request.app.state.secure_cookies)


async def index(request: Request) -> Response:
    session = await sessions_of(request).load(request.cookies.get(request.app.state.cookie_name))
    if session is not None:
        return RedirectResponse("/roles", status_code=303)
    idps = [{"id": idp_id, "name": name} for idp_id, name in service_of(request).browser_idps()]
    return page(request, "index.html", {"idps": sorted(idps, key=lambda i: i["name"])})


async def login(request: Request) -> Response:
    idp = request.path_params["idp"]
    if idp in service_of(request).saml:
        from broker.web.routes_saml import saml_login  # SAML: an AuthnRequest instead of an OIDC redirect

        return await saml_login(request, idp)
    url, state = await service_of(request).start_login(idp, client_address(request))
    response = RedirectResponse(url, status_code=303)
    # Binds the login to this browser: a callback carrying someone else's state is refused.
    response.set_cookie(LOGIN_COOKIE, sessions_of(request).sign_login_state(state), max_age=int(LOGIN_TTL),
                        httponly=True, secure=_secure(request), samesite="lax", path=f"/oidc/{idp}/callback")
    return response


async def callback(request: Request) -> Response:
    idp = request.path_params["idp"]
    service, sessions = service_of(request), sessions_of(request)
    browser_state = sessions.login_state(request.cookies.get(LOGIN_COOKIE), int(LOGIN_TTL))
    identity = await service.finish_login(idp, dict(request.query_params), browser_state)
    return await complete_login(request, identity, "/roles", LOGIN_COOKIE, f"/oidc/{idp}/callback")


async def complete_login(request: Request, identity: Identity, return_to: str, login_cookie: str,
                         login_cookie_path: str) -> Response:
    """After any verified login (OIDC callback, SAML ACS): audit, decide, a fresh session (rotated id),
    and the browser sent to an allow-listed local path."""
    service, sessions = service_of(request), sessions_of(request)
    decision = service.decide(identity)
    service.audit.event("login_succeeded", idp=identity.idp, subject=identity.subject, issuer=identity.issuer,
                        mfa=identity.mfa, client=client_address(request), protocol=identity.protocol)
    service.audit.event("decision", idp=identity.idp, subject=identity.subject, **for_audit(decision))
    cookie_name = request.app.state.cookie_name
    _, cookie = await sessions.create(identity, request.cookies.get(cookie_name))
    response = RedirectResponse(return_to, status_code=303)
    response.set_cookie(cookie_name, cookie, max_age=int(sessions.lifetime), httponly=True,
                        secure=_secure(request), samesite="lax")
    response.delete_cookie(login_cookie, path=login_cookie_path)
    return response


async def logout(request: Request) -> Response:
    cookie_name = request.app.state.cookie_name
    session = await sessions_of(request).load(request.cookies.get(cookie_name))
    if session is None:
        raise NotAuthenticated("logout without a session")
    await checked_form(request, session)
    await sessions_of(request).destroy(session)
    service_of(request).audit.event("logout", idp=session.identity.idp, subject=session.identity.subject)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(cookie_name)
    return response
