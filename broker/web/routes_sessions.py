"""GET /sessions and POST /sessions/revoke: a person's own CLI sessions on the portal (browser session),
each revocable with the session's CSRF token. Another person's id is refused exactly as an unknown one (404),
so ids cannot be probed. Container tokens (issued from CLI sessions) are listed and revoked the same way:
one more entry in REVOKERS and in the listing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from broker.cli_sessions import person_of
from broker.errors import BadRequest
from broker.identity import Identity
from broker.service import BrokerService
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, page, wants_json
from broker.web.routes_roles import checked_form, page_session, single, web_session

Revoker = Callable[[BrokerService, str, Identity, str], Awaitable[object]]


async def _revoke_cli(service: BrokerService, public_id: str, identity: Identity, client: str) -> object:
    return await service.revoke_cli_session(public_id, identity, client)


async def _revoke_container(service: BrokerService, public_id: str, identity: Identity, client: str) -> object:
    return await service.containers.revoke(public_id, identity, client)


# kind (the form's `kind`) -> how to revoke one of the person's own.
REVOKERS: Mapping[str, Revoker] = {"cli": _revoke_cli, "container": _revoke_container}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _listing(service: BrokerService, identity: Identity) -> dict[str, Any]:
    cli = [{"session_id": s.session_id, "device_name": s.device_name, "created_at": _when(s.created_at),
            "expires_at": _when(s.expires_at)} for s in await service.cli_sessions.list_for(identity)]
    containers = [{"token_id": t.token_id, "role_arn": t.role_arn, "device_name": t.device_name,
                   "session_id": t.session_id, "created_at": _when(t.created_at), "expires_at": _when(t.expires_at)}
                  for t in await service.containers.tokens.list_for(person_of(identity))]
    return {"cli_sessions": cli, "container_tokens": containers}


async def sessions(request: Request) -> Response:
    context = context_of(request)
    session = await page_session(request)
    if session is None:
        return RedirectResponse("/", status_code=303)
    listing = await _listing(context.service, session.identity)
    if wants_json(request):
        return JSONResponse(listing, headers=NO_STORE)
    ident = session.identity
    return page(request, "sessions.html", {**listing, "csrf_token": session.csrf_token,
                                           "who": ident.email or ident.subject})


async def revoke(request: Request) -> Response:
    context = context_of(request)
    session = await web_session(request)
    form = await checked_form(request, session)
    revoker = REVOKERS.get(single(form, "kind"))
    if revoker is None:
        raise BadRequest(f"kind {single(form, 'kind')[:16]!r}", reason="kind_invalid",
                         public=f"kind must be one of: {', '.join(REVOKERS)}.")
    await revoker(context.service, single(form, "id"), session.identity, client_host(request.scope))
    return RedirectResponse("/sessions", status_code=303, headers=NO_STORE)
