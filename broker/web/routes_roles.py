"""The role picker and what it hands out: console sign-in and credentials."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.errors import BadRequest, CsrfFailed, NotAuthenticated
from broker.outputs.console_links import checked_destination, checked_region
from broker.outputs.formats import FORMATS, MEDIA_TYPES, Format, render
from broker.picker import checked_duration
from broker.preferences import Preferences
from broker.service import BrokerService
from broker.web.context import context_of
from broker.web.credentials_page import PAGE, credentials_page
from broker.web.render import NO_STORE, wants_json
from broker.web.sessions import Session
from broker.web.shell import session_of


async def page_session(request: Request) -> Session | None:
    """A page's session; None (the page redirects to the sign-in page) when a browser has none. A JSON client
    gets the 401 instead."""
    try:
        return await web_session(request)
    except NotAuthenticated:
        if wants_json(request):
            raise
        return None


async def web_session(request: Request) -> Session:
    session = await session_of(request)
    if session is None:
        raise NotAuthenticated("no valid session cookie", reason="session_missing_or_invalid")
    return session


def single(form: FormData, name: str) -> str:
    """A field that must appear once, as text: "" when missing, repeated or a file. With two values, which
    one a proxy or a WAF in front believed is unknown."""
    values = form.getlist(name)
    return values[0] if len(values) == 1 and isinstance(values[0], str) else ""


async def checked_form(request: Request, session: Session) -> FormData:
    """The POSTed form, when it carries this session's CSRF token (once, in the body)."""
    form = await request.form()
    if not session.csrf_ok(single(form, "csrf_token")):
        raise CsrfFailed("POST without the session's CSRF token")
    return form


def _role(form: FormData) -> str:
    role = single(form, "role")
    if not role:
        raise BadRequest("form field role missing", reason="role_missing")
    return role


def _duration(service: BrokerService, session: Session, form: FormData, role: str) -> int | None:
    """The chosen session length, checked against the role's grant before anything is issued."""
    return checked_duration(single(form, "duration"), service.grant(session.identity, role))


async def _used(service: BrokerService, session: Session, role_arn: str) -> None:
    await Preferences(service.store).used(session.identity, role_arn)


def console_choices(request: Request, service: BrokerService) -> dict[str, Any]:
    """The picker's destination and region selects; `?destination=` and `?region=` preselect (checked
    against the allow-list here too, so a bad link is refused on arrival, not after a click)."""
    config = service.settings.console
    destination, region = _query(request, "destination"), _query(request, "region")
    checked_destination(config, destination)
    checked_region(config, region)
    return {"destinations": sorted(config.destinations), "regions": config.regions, "new_tab": config.new_tab,
            "destination": destination, "region": region}


def _query(request: Request, name: str) -> str:
    return _one(name, request.query_params.getlist(name))


def _form_or_query(request: Request, form: FormData, name: str) -> str:
    """A form field, else the query's (a link or a form action may carry `?destination=`)."""
    return _one(name, form.getlist(name)) if name in form else _query(request, name)


def _one(name: str, values: list[Any]) -> str:
    """The one text value of a choice; given twice, which one a proxy or a WAF in front checked is unknown."""
    if len(values) > 1 or (values and not isinstance(values[0], str)):
        raise BadRequest(f"{name} given {len(values)} times or not as text", reason="field_repeated",
                         public=f"Give {name} once, as text.")
    return str(values[0]) if values else ""


async def console(request: Request) -> Response:
    service = context_of(request).service
    session = await web_session(request)
    form = await checked_form(request, session)
    role = _role(form)
    url = await service.console_url(session.identity, role, _form_or_query(request, form, "destination"),
                                    _form_or_query(request, form, "region"),
                                    duration=_duration(service, session, form, role))
    await _used(service, session, role)
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


def _format(request: Request, form: FormData) -> Format | None:
    """`format` when given (form, else query), None for the page; without it a browser (Accept: text/html)
    gets the page and every other client the JSON, as before the page existed."""
    fmt = _form_or_query(request, form, "format") or (PAGE if "text/html" in request.headers.get("accept", "")
                                                       else "json")
    if fmt == PAGE:
        return None
    for known in FORMATS:
        if fmt == known:
            return known
    raise BadRequest(f"unknown format {fmt[:32]!r}", reason="format_unknown",
                     public=f"Unknown format. Use one of: {', '.join((PAGE, *FORMATS))}.")


async def credentials(request: Request) -> Response:
    service = context_of(request).service
    session = await web_session(request)
    form = await checked_form(request, session)
    fmt = _format(request, form)
    role = _role(form)
    duration = _duration(service, session, form, role)
    grant, creds = await service.credentials(session.identity, role, duration=duration)
    await _used(service, session, grant.role_arn)
    if fmt is None:
        return credentials_page(request, grant, creds)
    body = render(creds, fmt, profile=grant.role_name)
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=NO_STORE)
