"""RFC 8628 over HTTP: POST /oauth2/device_authorization (the CLI asks for a code pair) and /device (a
signed-in person types the user code, sees what asks, approves or denies). The device_code grant itself is
one entry of the token endpoint (routes_token.py). Core logic: broker/device_codes.py."""

from __future__ import annotations

import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from broker.device_codes import display_user_code, normalize_user_code
from broker.errors import BadRequest, NotAuthenticated, UserCodeInvalid
from broker.token_exchange import read_form as token_form
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, OrjsonResponse, page
from broker.web.routes_roles import checked_form, single
from broker.web.sessions import Session
from broker.web.shell import chooser_idps, session_of

FORM_TYPE = "application/x-www-form-urlencoded"


def read_form(content_type: str, body: bytes) -> dict[str, str]:
    """A UTF-8 form, each OAuth parameter once (the token endpoint's parser)."""
    media, _, params = content_type.partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if media.strip().lower() != FORM_TYPE or (params.strip() and charset not in {"utf-8", "utf8"}):
        raise BadRequest("content type is not a UTF-8 form", reason="content_type_unsupported",
                         public=f"The request body must be {FORM_TYPE} (UTF-8).")
    return token_form(body)


async def device_authorization(request: Request) -> Response:
    """RFC 8628 3.1/3.2. Refusals raise: the token endpoint's OAuth wrapper answers them (routes_token)."""
    context = context_of(request)
    form = read_form(request.headers.get("content-type", ""), await request.body())
    start = await context.service.device_codes.start(form.get("client_id", ""), form.get("device_name"),
                                                     client_host(request.scope))
    base = context.service.settings.public_url.rstrip("/") + "/device"
    shown = display_user_code(start.user_code)
    return OrjsonResponse({
        "device_code": start.device_code, "user_code": shown, "verification_uri": base,
        "verification_uri_complete": f"{base}?user_code={quote(shown)}", "expires_in": start.expires_in,
        "interval": start.interval,
    }, headers=NO_STORE)


async def _session(request: Request) -> Session | None:
    return await session_of(request)


def _sign_in_first(request: Request, typed: str | None) -> Response:
    """The sign-in page, whose login comes back here (with the code, when it has the shape of one)."""
    code = normalize_user_code(typed or "")
    back = "/device" if code is None else f"/device?user_code={display_user_code(code)}"
    return page(request, "index.html", {"idps": chooser_idps(request), "return_to": back, "cli": True})


def _who(session: Session) -> str:
    return session.identity.email or session.identity.subject


def _entry(request: Request, session: Session, error: str | None = None, status: int = 200) -> Response:
    return page(request, "device.html", {"step": "enter", "who": _who(session), "error": error}, status=status)


async def device_page(request: Request) -> Response:
    """GET /device: the code form, or (with ?user_code=) the confirmation page of the request it names."""
    typed = request.query_params.get("user_code")
    session = await _session(request)
    if session is None:
        return _sign_in_first(request, typed)
    if typed is None:
        return _entry(request, session)
    codes, client = context_of(request).service.device_codes, client_host(request.scope)
    try:
        code, pending = await codes.lookup(typed, session.identity, client)
    except UserCodeInvalid as exc:
        return _entry(request, session, exc.public_message, status=400)
    return page(request, "device.html", {
        "step": "confirm", "who": _who(session), "user_code": display_user_code(code),
        "device_name": pending.device_name, "requested_from": pending.client, "your_address": client,
        "requested_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(pending.requested_at)),
        "csrf_token": session.csrf_token,
    })


async def device_decide(request: Request) -> Response:
    """POST /device: approve or deny (CSRF-checked), once per user code."""
    session = await _session(request)
    if session is None:
        raise NotAuthenticated("POST /device without a session")
    form = await checked_form(request, session)
    action = single(form, "action")
    if action not in {"approve", "deny"}:
        raise BadRequest(f"action {action[:16]!r}", reason="device_action_invalid", public="Approve or deny.")
    codes = context_of(request).service.device_codes
    try:
        await codes.decide(single(form, "user_code"), session.identity, session.expires_at,
                           approve=action == "approve", client=client_host(request.scope))
    except UserCodeInvalid as exc:
        return _entry(request, session, exc.public_message, status=400)
    return page(request, "device.html", {"step": "done", "approved": action == "approve"})
