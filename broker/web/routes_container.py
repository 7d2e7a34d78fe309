"""Container credentials over HTTP: POST /cli/container-tokens (a CLI session makes a token for one role) and
GET /container-credentials (what AWS_CONTAINER_CREDENTIALS_FULL_URI points SDKs at; they send the token as
AWS_CONTAINER_AUTHORIZATION_TOKEN, raw, in the Authorization header). Core: broker/container_credentials.py."""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import BadRequest, NotAuthenticated
from broker.outputs.formats import expiration_text
from broker.safe_json import JsonRefused, loads_object
from broker.web.context import context_of
from broker.web.proxy import client_host
from broker.web.render import NO_STORE, OrjsonResponse
from broker.web.routes_cli import bearer_token

CONTAINER_PATH = "/container-credentials"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)  # secrets.token_urlsafe(32)
MALFORMED = "Send the container token as the Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)."


def authorization(request: Request) -> str | None:
    """The one Authorization header, or None when there is none. Two are refused: which one a proxy in
    front believed is unknown."""
    values = [value for name, value in request.scope["headers"] if name == b"authorization"]
    if len(values) > 1:
        raise NotAuthenticated("two Authorization headers", reason="container_auth_malformed", public=MALFORMED)
    return values[0].decode("latin-1") if values else None


def container_token(header: str | None) -> str:
    """The token from `Authorization: <token>` (as botocore and the other SDKs send it) or `Bearer <token>`."""
    if header is None:
        raise NotAuthenticated("no Authorization header", reason="container_auth_missing", public=MALFORMED)
    token = header.removeprefix("Bearer ")
    if not TOKEN_SHAPE.fullmatch(token):
        scheme = header.split(" ", 1)[0][:16] if " " in header else "(none)"
        raise NotAuthenticated(f"Authorization header of {len(header)} characters, scheme {scheme!r}",
                               reason="container_auth_malformed", public=MALFORMED)
    return token


async def credentials(request: Request) -> Response:
    """GET /container-credentials: the shape botocore's ContainerProvider reads (AccessKeyId, SecretAccessKey,
    Token, Expiration; AccountId too), plus RoleArn."""
    service = context_of(request).service
    token = container_token(authorization(request))
    issued = await service.containers.credentials(token, client_host(request.scope))
    creds = issued.credentials
    return OrjsonResponse({
        "AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token, "Expiration": expiration_text(creds), "RoleArn": issued.grant.role_arn,
        "AccountId": issued.grant.account_id,
    }, headers=NO_STORE)


async def create_token(request: Request) -> Response:
    """POST /cli/container-tokens {role}: a token for one of the CLI session's person's granted roles."""
    context = context_of(request)
    service = context.service
    session = await service.cli_session(bearer_token(request))
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
        raise BadRequest("content type is not JSON", reason="content_type_unsupported",
                         public="The request body must be application/json.")
    try:
        body = loads_object(await request.body())
    except (JsonRefused, ValueError):
        raise BadRequest("body is not a JSON object", reason="body_invalid",
                         public='The body must be a JSON object: {"role": ...}.') from None
    role = body.get("role")
    if not isinstance(role, str) or not role or len(role) > 2048:
        raise BadRequest("role missing or not text", reason="role_missing", public="Name a role.")
    record, token = await service.containers.create(session, role, client_host(request.scope))
    expires = expiration_text_of(record.expires_at)
    return OrjsonResponse({
        "token": token, "token_id": record.token_id, "role_arn": record.role_arn, "expires_at": expires,
        "full_uri": service.settings.public_url.rstrip("/") + CONTAINER_PATH,
    }, headers=NO_STORE)


def expiration_text_of(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
