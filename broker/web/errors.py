"""The one error handler: every BrokerError becomes its status (HTTP_STATUS, the one table from reason or
error class to HTTP status), public message and error id, and an audit event with the reason code and the
private detail. Anything unexpected is a 500 with an error id."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.errors import (
    BadRequest,
    BrokerError,
    ConfigError,
    CsrfFailed,
    GrantInvalid,
    LoginRefused,
    LoginStateInvalid,
    MethodNotAllowed,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    OriginNotAllowed,
    PayloadTooLarge,
    RateLimited,
    ServerBusy,
    StoreUnavailable,
    StsRefused,
    StsUnavailable,
    TokenInvalid,
    UnknownIdp,
    UpstreamUnavailable,
    ViaNotAvailable,
    XmlRejected,
)
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, page, wants_json
from broker.web.request_id import request_id_of

log = logging.getLogger("broker.errors")
T = TypeVar("T")
ErrorKey = str | type[BrokerError]
# Machine-facing paths: refused in JSON whatever the Accept header (a browser page is no use to a program).
JSON_ONLY = ("/.well-known", "/cli/", "/admin/")
JSON_PATHS = frozenset({"/oauth2/token", "/oauth2/revoke", "/oauth2/device_authorization", "/openapi.json",
                        "/healthz", "/readyz", "/metrics"})

# The HTTP status of every refusal: a reason code, else the nearest error class (subclasses inherit).
# A reason key holds whatever class raises it; tests/test_err_tables.py checks that every reason raised in
# broker/ lands on an entry below the BrokerError catch-all.
HTTP_STATUS: Mapping[ErrorKey, int] = {
    BrokerError: 500,
    ConfigError: 500,
    BadRequest: 400,
    XmlRejected: 400,
    LoginStateInvalid: 400,
    GrantInvalid: 400,
    LoginRefused: 401,
    TokenInvalid: 401,
    NotAuthenticated: 401,
    CsrfFailed: 403,
    NotAuthorized: 403,
    OriginNotAllowed: 403,
    StsRefused: 403,
    NotFound: 404,
    UnknownIdp: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    RateLimited: 429,
    ViaNotAvailable: 501,
    UpstreamUnavailable: 502,
    StsUnavailable: 503,
    StoreUnavailable: 503,
    ServerBusy: 503,
    "sts_timeout": 504,  # STS did not answer in time (a gateway timeout, not STS saying it is down)
    # The console's federation endpoint down or answering nonsense: a bad gateway, not AWS refusing the role.
    "federation_unreachable": 502,
    "federation_unavailable": 502,
    "federation_bad_answer": 502,
    "federation_timeout": 504,
}


# The 401s of bearer tokens (CLI sessions, container tokens) and their RFC 6750 3.1 challenge.
BEARER_CHALLENGES: Mapping[str, str] = {
    "cli_session_invalid": 'Bearer error="invalid_token"',
    "container_token_invalid": 'Bearer error="invalid_token"',
    "container_session_ended": 'Bearer error="invalid_token"',
    "container_auth_malformed": 'Bearer error="invalid_request"',
    "container_auth_missing": "Bearer",
}


def entry_for(table: Mapping[ErrorKey, T], kind: type[BrokerError], reason: str) -> ErrorKey:
    """The key of `table` that decides for an error: its reason, else its nearest class in the table."""
    if reason in table:
        return reason
    return next(k for k in kind.__mro__ if k in table)


def lookup(table: Mapping[ErrorKey, T], exc: BrokerError) -> T:
    return table[entry_for(table, type(exc), exc.reason)]


def http_status(exc: BrokerError) -> int:
    return lookup(HTTP_STATUS, exc)


def _audit(request: Request, **fields: str | int | None) -> None:
    idp = request.path_params.get("idp")
    client = client_host(request.scope)
    context_of(request).audit.event("request_failed", method=request.method, path=request.url.path[:300],
                               idp=idp, client=client, **fields)


def error_response(request: Request, status: int, reason: str, message: str, error_id: str) -> Response:
    request_id = request_id_of(request.scope)
    path = request.url.path
    if wants_json(request) or path.startswith(JSON_ONLY) or path in JSON_PATHS:
        body = {"error": reason, "message": message, "error_id": error_id, "request_id": request_id}
        response: Response = JSONResponse(body, status_code=status, headers=NO_STORE)
    else:
        context = {"status": status, "message": message, "error_id": error_id, "request_id": request_id}
        response = page(request, "error.html", context, status=status)
    if request_id is not None:  # also when answered outside the middleware that adds it to the others
        response.headers["X-Request-Id"] = request_id
    return response


async def broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BrokerError)
    return _refusal(request, exc, http_status(exc))


def _refusal(request: Request, exc: BrokerError, status: int) -> Response:
    _audit(request, status=status, reason=exc.reason, error_id=exc.error_id, detail=exc.detail[:500])
    response = error_response(request, status, exc.reason, exc.public_message, exc.error_id)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    challenge = BEARER_CHALLENGES.get(exc.reason)
    if challenge is not None:  # RFC 6750 3.1: what was wrong with the bearer token
        response.headers["WWW-Authenticate"] = challenge
    return response


def _as_broker_error(exc: HTTPException) -> BrokerError:
    if exc.status_code == 404:
        return NotFound("no route for this path", reason="route_not_found",
                        public="There is no page at this address.")
    if exc.status_code == 405:
        return MethodNotAllowed("no route for this method",
                                public="This address does not accept this kind of request.")
    return BadRequest(f"HTTP {exc.status_code} from the framework", reason=f"http_{exc.status_code}")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method, a malformed form): the broker's page or JSON,
    audited, never Starlette's plain text. The framework chose the status: it is kept."""
    assert isinstance(exc, HTTPException)
    response = _refusal(request, _as_broker_error(exc), exc.status_code)
    for name, value in (exc.headers or {}).items():  # Allow, on a 405
        response.headers[name] = value
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    error_id = secrets.token_hex(6)
    # The type only: an exception's message may quote input, and input may be a secret.
    log.error("unexpected %s (error_id=%s)", type(exc).__name__, error_id)
    _audit(request, status=500, reason="internal_error", error_id=error_id, detail=type(exc).__name__)
    return error_response(request, 500, "internal_error", BrokerError.public_message, error_id)
