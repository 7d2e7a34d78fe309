"""GET /roles (the role picker) and POST /roles/favourite (a star, on or off). What the buttons post is in
routes_roles.py; grouping, filtering and session lengths in broker/picker.py; stars and recents in
broker/preferences.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from broker.errors import BadRequest
from broker.identity import Identity
from broker.picker import MAX_QUERY, Picker, build, duration_choices, picker_json
from broker.preferences import Preferences, Prefs
from broker.role_names import role_entries
from broker.rules.empty_reasons import CLOSING, why_none
from broker.rules.evaluate import Decision, evaluate
from broker.rules.notices import notice_json
from broker.service import BrokerService
from broker.web.context import context_of
from broker.web.render import NO_STORE, page, wants_json
from broker.web.routes_roles import checked_form, console_choices, page_session, single, web_session


def _granted_prefs(prefs: Prefs, decision: Decision) -> Prefs:
    granted = {g.role_arn for g in decision.grants}
    return Prefs(tuple(a for a in prefs.favourites if a in granted), tuple(a for a in prefs.recent if a in granted))


def _why(service: BrokerService, identity: Identity, decision: Decision) -> list[dict[str, str]]:
    """Only for an empty picker: every rule judged once more, traced, for the reason codes (no values)."""
    return why_none(evaluate(service.rules, identity, explain=True)) if not decision.grants else []


def _opens_single(request: Request, service: BrokerService, decision: Decision) -> bool:
    return (service.settings.picker.single_role == "open" and len(decision.grants) == 1
            and "list" not in request.query_params and not request.query_params.get("q"))


async def roles(request: Request) -> Response:
    service = context_of(request).service
    session = await page_session(request)
    if session is None:
        return RedirectResponse("/", status_code=303)
    ident = session.identity
    decision = service.decide(ident)
    prefs = _granted_prefs(await Preferences(service.store).load(ident), decision)
    q = request.query_params.get("q", "")[:MAX_QUERY]
    picker = build(decision.grants, service.rules.accounts, prefs, q)
    why = _why(service, ident, decision)
    view: dict[str, Any] = {
        "identity": {"idp": ident.idp, "subject": ident.subject, "email": ident.email},
        "notices": notice_json(decision.notices), "csrf_token": session.csrf_token, "why_none": why}
    if wants_json(request):
        return JSONResponse({**view, "roles": role_entries(decision, service.rules.accounts),
                             **picker_json(picker, prefs)}, headers=NO_STORE)
    console = console_choices(request, service)
    if _opens_single(request, service, decision):
        response = page(request, "role_open.html", {**view, "role": picker.groups[-1].roles[0]})
    else:
        response = page(request, "roles.html", {**view, "picker": picker, "q": q, "q_field": _q_field(q),
                                                "console": console, "console_options": _console_options(console),
                                                "durations": _duration_options(picker), "why_closing": CLOSING})
    return response


def _duration_options(picker: Picker) -> dict[int, Markup]:
    """Each distinct maximum's <option>s, rendered once per page rather than once per row (500 rows share
    a handful of maximums); the longest is selected, as the grant's own duration was before."""
    tops = {r.max_seconds for g in picker.groups for r in g.roles}
    option, chosen = Markup('<option value="{}">{}</option>'), Markup('<option value="{}" selected>{}</option>')
    return {top: Markup("").join((chosen if s == top else option).format(s, t) for s, t in duration_choices(top))
            for top in tops}


def _console_options(console: dict[str, Any]) -> dict[str, Markup]:
    """The destination and region <option>s, rendered once per page rather than once per row; what
    `?destination=` / `?region=` chose is selected."""
    def options(first: str, values: list[str], chosen: str) -> Markup:
        items = [Markup('<option value="">{}</option>').format(first)]
        items += [Markup('<option value="{}"{}>{}</option>').format(v, Markup(" selected") if v == chosen else "", v)
                  for v in values]
        return Markup("").join(items)

    return {"destinations": options("console home", console["destinations"], console["destination"]),
            "regions": options("default region", console["regions"], console["region"])}


def _q_field(q: str) -> Markup:
    """The filter, carried by each row's form so a star brings the person back to the same list."""
    return Markup('<input type="hidden" name="q" value="{}">').format(q) if q else Markup("")


def _back_to(form_q: str) -> str:
    q = form_q[:MAX_QUERY]
    return "/roles?" + urlencode({"q": q}) if q else "/roles"


async def favourite(request: Request) -> Response:
    """Star or unstar a role (form `role`, `on` = 1 or 0, optional `q` to come back to the same filter)."""
    context = context_of(request)
    service = context.service
    session = await web_session(request)
    form = await checked_form(request, session)
    role, on = single(form, "role"), single(form, "on")
    if not role or on not in ("0", "1"):
        raise BadRequest("favourite form without role or on=0|1", reason="favourite_form_invalid",
                         public="The star could not be saved: reload the page and try again.")
    ident = session.identity
    granted = {g.role_arn for g in service.decide(ident).grants}
    prefs = await Preferences(service.store).star(ident, role, on == "1", granted)
    context.audit.event("favourite_set", idp=ident.idp, subject=ident.subject, role=role, on=on == "1")
    if wants_json(request):
        return JSONResponse({"favourites": [a for a in prefs.favourites if a in granted]}, headers=NO_STORE)
    return RedirectResponse(_back_to(single(form, "q")), status_code=303, headers=NO_STORE)
