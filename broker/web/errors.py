"""The one error handler: every BrokerError becomes its status, public message and error id, and an audit
event with the reason code and the private detail. Anything unexpected is a 500 with an error id."""

from __future__ import annotations

import logging
import secrets

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.errors import BadRequest, BrokerError, MethodNotAllowed, NotFound, RateLimited
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, page, wants_json

log = logging.getLogger("broker.errors")


def _audit(request: Request, **fields: str | int | None) -> None:
    idp = request.path_params.get("idp")
    client = client_host(request.scope)
    request.app.state.audit.event("request_failed", method=request.method, path=request.url.path[:300],
                                  idp=idp, client=client, **fields)


def error_response(request: Request, status: int, reason: str, message: str, error_id: str) -> Response:
    if wants_json(request) or request.url.path.startswith("/.well-known"):
        body = {"error": reason, "message": message, "error_id": error_id}
        return JSONResponse(body, status_code=status, headers=NO_STORE)
    context = {"status": status, "message": message, "error_id": error_id}
    return page(request, "error.html", context, status=status)


async def broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BrokerError)
    _audit(request, status=exc.status, reason=exc.reason, error_id=exc.error_id, detail=exc.detail[:500])
    response = error_response(request, exc.status, exc.reason, exc.public_message, exc.error_id)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _as_broker_error(exc: HTTPException) -> BrokerError:
    if exc.status_code == 404:
        return NotFound("no route for this path", reason="route_not_found")
    if exc.status_code == 405:
        return MethodNotAllowed("no route for this method")
    error = BadRequest(f"HTTP {exc.status_code} from the framework", reason=f"http_{exc.status_code}")
    error.status = exc.status_code
    return error


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method, a malformed form): the broker's page or JSON,
    audited, never Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    response = await broker_error(request, _as_broker_error(exc))
    for name, value in (exc.headers or {}).items():  # Allow, on a 405
        response.headers[name] = value
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    error_id = secrets.token_hex(6)
    # The type only: an exception's message may quote input, and input may be a secret.
    log.error("unexpected %s (error_id=%s)", type(exc).__name__, error_id)
    _audit(request, status=500, reason="internal_error", error_id=error_id, detail=type(exc).__name__)
    return error_response(request, 500, "internal_error", BrokerError.public_message, error_id)
