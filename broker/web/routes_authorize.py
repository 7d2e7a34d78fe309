"""GET/POST /oauth2/authorize: the browser step of `sts-broker login` (cli_authorize.py has the rules).

GET checks the request (refused whole, never redirected, when anything is off), parks it, and shows the
consent page, or the sign-in page first when there is no browser session (the login then lands back on
/oauth2/authorize?request=<parked id>, an allow-listed return path). POST (the session's CSRF token) answers
it: Allow sends the browser to the CLI's loopback redirect with a one-time code; Deny with
error=access_denied (RFC 6749 4.1.2.1). Either way the parked request is used up."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.cli_authorize import AuthorizeRequest
from broker.errors import BadRequest, NotAuthenticated
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, page
from broker.web.routes_roles import checked_form, single
from broker.web.sessions import Session
from broker.web.shell import chooser_idps, session_of

PATH = "/oauth2/authorize"


def _query(request: Request) -> dict[str, str]:
    """Each parameter once (RFC 6749 3.1: a repeated one is an error)."""
    query = request.query_params
    repeated = [name for name in query if len(query.getlist(name)) > 1]
    if repeated:
        raise BadRequest(f"repeated {repeated[0][:32]!r}", reason="parameter_repeated",
                         public=f"The parameter {repeated[0][:32]} appears more than once.")
    return dict(query)


async def authorize(request: Request) -> Response:
    context = context_of(request)
    service, client = context.service, client_host(request.scope)
    query = _query(request)
    if set(query) == {"request"}:  # back from the sign-in: the request parked before it
        request_id = query["request"]
        parked = await service.cli_authorize.parked(request_id)
    else:
        request_id, parked = await service.cli_authorize_request(query, client)
    session = await session_of(request)
    if session is None:
        return page(request, "index.html", {"idps": chooser_idps(request), "return_to": f"{PATH}?request={request_id}",
                                            "cli": True})
    return _consent(request, session, request_id, parked)


def _consent(request: Request, session: Session, request_id: str, parked: AuthorizeRequest) -> Response:
    ident = session.identity
    when = datetime.fromtimestamp(parked.requested_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return page(request, "cli_authorize.html", {
        "who": ident.email or ident.subject, "idp": ident.idp, "device_name": parked.device_name,
        "requested_at": when, "redirect_uri": parked.redirect_uri, "request_id": request_id,
        "csrf_token": session.csrf_token,
    })


async def answer(request: Request) -> Response:
    context = context_of(request)
    session = await session_of(request)
    if session is None:
        raise NotAuthenticated("consent without a browser session", reason="session_missing_or_invalid")
    form = await checked_form(request, session)
    decision = single(form, "decision")
    if decision not in {"allow", "deny"}:
        raise BadRequest(f"decision {decision[:16]!r}", reason="decision_invalid", public="Choose Allow or Deny.")
    parked, code = await context.service.cli_consent(single(form, "request"), session.identity, session.expires_at,
                                                     allow=decision == "allow", client=client_host(request.scope))
    answer = {"code": code} if code is not None else {"error": "access_denied"}
    location = f"{parked.redirect_uri}?{urlencode({**answer, 'state': parked.state})}"
    return RedirectResponse(location, status_code=303, headers=NO_STORE)
