"""The CLI's API, with `Authorization: Bearer <CLI session token>` (from /oauth2/token): the session, the
roles, credentials (credential_process JSON) and console URLs, all through the same core calls as the
browser's role picker (rules decision, issuance, audit). Answers are JSON, refusals the broker's JSON error
(web/errors.py); an ended session is a 401 whose message says to log in again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from broker.cli_sessions import CliSession
from broker.errors import BadRequest
from broker.outputs.console import MAX_SESSION, MIN_SESSION
from broker.outputs.formats import expiration_text
from broker.role_names import resolve_role, role_entries
from broker.rules.notices import notice_json
from broker.safe_json import JsonRefused, loads_object
from broker.service import BrokerService
from broker.web.context import context_of
from broker.web.render import NO_STORE, OrjsonResponse

JSON_TYPE = "application/json"


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>` (the scheme case-insensitive, RFC 6750 2.1)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _session(request: Request) -> tuple[BrokerService, CliSession]:
    service = context_of(request).service
    return service, await service.cli_session(bearer_token(request))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json(body: dict[str, Any]) -> Response:
    return OrjsonResponse(body, headers=NO_STORE)


async def _body(request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != JSON_TYPE:
        raise BadRequest(f"content type {media[:64]!r}", reason="content_type_unsupported",
                         public=f"The request body must be {JSON_TYPE}.")
    try:
        return loads_object(await request.body())
    except JsonRefused as exc:
        raise BadRequest(f"body: {exc}", reason="json_invalid", public="The request body is not a JSON object.") \
            from None


def _text(body: dict[str, Any], name: str, *, required: bool) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(f"field {name} missing or not text", reason=f"{name}_missing" if required else "field_invalid",
                         public=f"{name} must be {'a non-empty' if required else 'a'} string.")
    return value


def _duration(body: dict[str, Any]) -> int | None:
    value = body.get("duration_seconds")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_SESSION <= value <= MAX_SESSION:
        raise BadRequest(f"duration_seconds {str(value)[:16]!r}", reason="duration_invalid",
                         public=f"duration_seconds must be an integer from {MIN_SESSION} to {MAX_SESSION}.")
    return value


async def session_info(request: Request) -> Response:
    _, session = await _session(request)
    ident = session.identity
    return _json({"session_id": session.session_id, "idp": ident.idp, "subject": ident.subject,
                  "email": ident.email, "device_name": session.device_name,
                  "created_at": _iso(session.created_at), "expires_at": _iso(session.expires_at)})


async def roles(request: Request) -> Response:
    service, session = await _session(request)
    decision = service.decide(session.identity)
    return _json({"roles": role_entries(decision, service.rules.accounts),
                  "notices": notice_json(decision.notices)})


def _role_arn(service: BrokerService, session: CliSession, body: dict[str, Any]) -> str:
    return resolve_role(service.decide(session.identity), service.rules.accounts, _text(body, "role", required=True))


async def credentials(request: Request) -> Response:
    service, session = await _session(request)
    body = await _body(request)
    role_arn, duration = _role_arn(service, session, body), _duration(body)
    grant, creds = await service.credentials(session.identity, role_arn, duration=duration, channel="cli",
                                             session_id=session.session_id)
    return _json({"Version": 1, "AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
                  "SessionToken": creds.session_token, "Expiration": expiration_text(creds),
                  "RoleArn": grant.role_arn, "AccountId": grant.account_id})


async def console(request: Request) -> Response:
    service, session = await _session(request)
    body = await _body(request)
    role_arn, destination = _role_arn(service, session, body), _text(body, "destination", required=False)
    url = await service.console_url(session.identity, role_arn, destination, _text(body, "region", required=False),
                                    channel="cli", session_id=session.session_id)
    return _json({"url": url})
