"""POST /oauth2/token: the RFC 8693 token exchange (told apart first: it takes the load), the other grants
of web/token_grants.py (authorization_code for `sts-broker login`), its CORS preflight; POST /oauth2/revoke
(RFC 7009, CLI sessions).

Every answer is JSON with `Cache-Control: no-store`. Refusals follow RFC 6749 5.2 (`error`,
`error_description`, plus `error_id` to find the audit event); the mapping from the broker's error tree
(OAUTH_ERRORS below; the statuses it leaves open come from web/errors.py HTTP_STATUS):

| refusal                                                                   | error                   | status |
|---------------------------------------------------------------------------|-------------------------|--------|
| content type not a UTF-8 form, malformed or repeated fields, missing or    | invalid_request         | 400    |
|   unsupported token types, actor tokens, no `resource` among several roles |                         |        |
| body over the size cap                                                    | invalid_request         | 413    |
| grant_type not one of token exchange, authorization_code (token_grants.py) | unsupported_grant_type  | 400    |
| client_id of a code grant not the CLI's                                   | invalid_client          | 401    |
| authorization code unknown, used, expired, other redirect_uri/verifier     | invalid_grant           | 400    |
| subject token not acceptable: signature, alg, kid, key in header, iss,     | invalid_grant           | 400    |
|   aud, azp, exp/iat/nbf, hd, email_verified, size, replayed (`once`),      |                         |        |
|   crit/b64 header, JSON malformed (too deep, duplicate names, NaN)         |                         |        |
| web origin not allowed (CORS)                                             | unauthorized_client     | 400    |
| no role granted, `resource` not granted or not a role ARN, AWS refuses     | invalid_target          | 400    |
| rate limit per client address or per subject                          | temporarily_unavailable | 429 (Retry-After) |
| JWKS/discovery, STS or the state store unavailable                        | temporarily_unavailable | 502/503/504 |
| anything else                                                             | server_error            | 500    |

RFC 8693 2.2.2 asks for invalid_request when the subject token is invalid; the broker answers invalid_grant
(RFC 6749 5.2: "invalid, expired, revoked ... or was issued to another client"), which is what the subject
token is, and which tells an app "get a fresh ID token" apart from "fix the request".
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import (
    BadRequest,
    BrokerError,
    GrantInvalid,
    NotAuthorized,
    OriginNotAllowed,
    PayloadTooLarge,
    RateLimited,
    RoleChoiceNeeded,
    StoreUnavailable,
    StsRefused,
    StsUnavailable,
    TokenInvalid,
    UpstreamUnavailable,
)
from broker.outputs.formats import expiration_text
from broker.token_exchange import CREDENTIALS_TYPE, GRANT_TYPE, Exchanged, ExchangeTrace, exchange_request, read_form
from broker.web.context import context_of
from broker.web.errors import HTTP_STATUS, ErrorKey, http_status, lookup
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, OrjsonResponse
from broker.web.request_id import request_id_of
from broker.web.token_grants import GRANTS, Grant

log = logging.getLogger("broker.errors")
FORM_TYPE = "application/x-www-form-urlencoded"
PREFLIGHT_HEADERS = frozenset({"content-type", "accept"})
PREFLIGHT_MAX_AGE = "600"

# The OAuth error (RFC 6749 5.2) of every refusal, and its status (None: the web status, HTTP_STATUS): a
# reason code, else the nearest error class. What is in neither is a server_error.
OAUTH_ERRORS: Mapping[ErrorKey, tuple[str, int | None]] = {
    BrokerError: ("server_error", 500),
    "unsupported_grant_type": ("unsupported_grant_type", 400),
    RateLimited: ("temporarily_unavailable", 429),
    PayloadTooLarge: ("invalid_request", 413),
    BadRequest: ("invalid_request", 400),
    TokenInvalid: ("invalid_grant", 400),
    GrantInvalid: ("invalid_grant", 400),
    "client_unknown": ("invalid_client", 401),
    OriginNotAllowed: ("unauthorized_client", 400),
    NotAuthorized: ("invalid_target", 400),
    StsRefused: ("invalid_target", 400),
    UpstreamUnavailable: ("temporarily_unavailable", None),
    StsUnavailable: ("temporarily_unavailable", None),
    StoreUnavailable: ("temporarily_unavailable", None),
    # RFC 8628 3.5: the device_code grant's own errors (DeviceGrantError, a GrantInvalid, carries them as
    # reasons; its others are invalid_grant).
    "authorization_pending": ("authorization_pending", 400),
    "slow_down": ("slow_down", 400),
    "access_denied": ("access_denied", 400),
    "expired_token": ("expired_token", 400),
}
DESCRIPTIONS = {
    "token_expired": "The subject token has expired.",
    "token_replayed": "The subject token has already been exchanged.",
}


def oauth_endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Another OAuth endpoint (RFC 8628 device authorization): its refusals in the token endpoint's shape."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BrokerError as exc:
            return _refusal(request, exc, ExchangeTrace(), {})
    return endpoint


def oauth_error(exc: BrokerError) -> tuple[str, int]:
    error, status = lookup(OAUTH_ERRORS, exc)
    return error, status if status is not None else http_status(exc)


@functools.lru_cache(maxsize=64)
def _is_utf8_form(content_type: str) -> bool:
    """Judged once per distinct header value: apps send the same one with every request."""
    media, _, params = content_type.partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    return media.strip().lower() == FORM_TYPE and (not params.strip() or charset in {"utf-8", "utf8"})


def _cors(request: Request, origin: str | None) -> dict[str, str]:
    """CORS headers for an allowed browser origin; none for non-browser clients (no Origin header)."""
    if origin is None:
        return {}
    if not context_of(request).service.exchange_origin_allowed(origin):
        raise OriginNotAllowed(f"origin {origin[:100]!r} is not in token_exchange.cors_origins")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _first_headers(request: Request) -> tuple[str, str | None]:
    """The Content-Type and the first Origin header in one pass over the ASGI scope's headers (the server
    has lower-cased their names). Two Content-Type headers are no content type at all: which one a
    proxy in front believed is unknown (RFC 9110 8.3 allows one)."""
    content_type: bytes | None = None
    origin: bytes | None = None
    repeated = False
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            repeated, content_type = content_type is not None, value
        elif name == b"origin" and origin is None:
            origin = value
    return ("" if content_type is None or repeated else content_type.decode("latin-1"),
            None if origin is None else origin.decode("latin-1"))


def _form_content_type(content_type: str) -> None:
    if not _is_utf8_form(content_type):
        raise BadRequest("content type is not a UTF-8 form", reason="content_type_unsupported",
                         public=f"The request body must be {FORM_TYPE} (UTF-8).")


def success_body(result: Exchanged) -> dict[str, Any]:
    creds = result.credentials
    return {
        # RFC 8693 2.2.1. The issued "token" is a set of AWS credentials, not an OAuth access token:
        # access_token carries the session token and token_type is N_A (RFC 8693 2.2.1).
        "access_token": creds.session_token,
        "issued_token_type": CREDENTIALS_TYPE,
        "token_type": "N_A",
        "expires_in": max(0, int(creds.expiration.timestamp() - time.time())),
        "role_arn": result.grant.role_arn,
        "assumed_role_arn": creds.assumed_role_arn,
        "Credentials": {
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "SessionToken": creds.session_token,
            "Expiration": expiration_text(creds),
        },
    }


async def token(request: Request) -> Response:
    if request.method == "OPTIONS":
        return preflight(request)
    trace, cors, client = ExchangeTrace(), {}, client_host(request.scope)
    content_type, origin = _first_headers(request)
    try:
        cors = _cors(request, origin)
        service = context_of(request).service
        try:
            _form_content_type(content_type)
            form = read_form(await request.body())
            grant_type = form.get("grant_type")
            # The token exchange is told apart first, by one comparison; the other grants by GRANTS.
            other = GRANTS.get(grant_type) if grant_type != GRANT_TYPE and grant_type else None
            exchanged = exchange_request(form, client) if other is None else None
        except BrokerError:
            # Refused before the exchange counts it: counted here, so a flood of malformed requests meets the
            # client's limit (429) like any other; the exchange counts the rest.
            await service.limit_exchange_client(client)
            raise
        if exchanged is None:
            assert other is not None
            return await _other_grant(request, other, form, client, cors)
        result = await service.exchange_token(exchanged, trace)
    except BrokerError as exc:
        return _refusal(request, exc, trace, cors)
    except Exception as exc:  # the OAuth shape even for the unexpected; the type only, never the message
        error_id = secrets.token_hex(6)
        log.error("unexpected %s in token exchange (error_id=%s)", type(exc).__name__, error_id)
        return _refusal(request, BrokerError(type(exc).__name__), trace, cors, error_id=error_id)
    return OrjsonResponse(success_body(result), headers={**NO_STORE, **cors})


async def _other_grant(request: Request, grant: Grant, form: dict[str, str], client: str,
                       cors: dict[str, str]) -> Response:
    """A grant of GRANTS, counted against the client address's limit before anything is looked up."""
    service = context_of(request).service
    await service.limit_exchange_client(client)
    body = await grant(service, form, client)
    return OrjsonResponse(body, headers={**NO_STORE, **cors})


def _refusal(request: Request, exc: BrokerError, trace: ExchangeTrace, cors: dict[str, str],
             error_id: str | None = None) -> Response:
    error, status = oauth_error(exc)
    error_id = error_id or exc.error_id
    context_of(request).audit.event(
        "request_failed", method=request.method, path=request.url.path, client=client_host(request.scope),
        status=status, reason=exc.reason, oauth_error=error, error_id=error_id, detail=exc.detail[:500], idp=trace.idp,
        subject=trace.subject, role=trace.role,
    )
    body: dict[str, Any] = {"error": error, "error_description": DESCRIPTIONS.get(exc.reason, exc.public_message),
                            "error_id": error_id, "request_id": request_id_of(request.scope)}
    headers = {**NO_STORE, **cors}
    if isinstance(exc, RoleChoiceNeeded):
        body["resources"] = list(exc.roles)  # the caller's own verified grants: pick one as `resource`
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sts-broker"'  # RFC 6749 5.2: invalid_client with a 401
    return OrjsonResponse(body, status_code=status, headers=headers)


def preflight(request: Request) -> Response:
    origin = request.headers.get("origin", "")
    method = request.headers.get("access-control-request-method", "")
    asked = {h.strip().lower() for h in request.headers.get("access-control-request-headers", "").split(",")
             if h.strip()}
    context = context_of(request)
    if not context.service.exchange_origin_allowed(origin) or method != "POST" or not asked <= PREFLIGHT_HEADERS:
        context.audit.event("request_failed", method="OPTIONS", path=request.url.path,
                            client=client_host(request.scope), status=HTTP_STATUS[OriginNotAllowed],
                            reason=OriginNotAllowed.reason,
                            detail=f"preflight from {origin[:100]!r} for {method[:16]!r}")
        return Response(status_code=HTTP_STATUS[OriginNotAllowed], headers={"Vary": "Origin", **NO_STORE})
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type, Accept", "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin",
    })


async def revoke(request: Request) -> Response:
    """RFC 7009: form token=<CLI session token>. 200 whether or not the token named a session (2.2: the
    caller learns nothing); refusals (a malformed request, a rate limit) in the RFC 6749 5.2 shape."""
    client = client_host(request.scope)
    context = context_of(request)
    try:
        _form_content_type(_first_headers(request)[0])
        form = read_form(await request.body())
        await context.service.limit_exchange_client(client)
        if not form.get("token"):
            raise BadRequest("revocation without token", reason="token_missing", public="token is required.")
        await context.service.revoke_cli_token(form["token"], client)
    except BrokerError as exc:
        return _refusal(request, exc, ExchangeTrace(), {})
    return Response(status_code=200, headers=NO_STORE)
