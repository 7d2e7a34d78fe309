"""The admin API: explain the current rules for an identity. Off unless `admin.token` is configured."""

from __future__ import annotations

import hmac

from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.errors import BadRequest, NotAuthenticated, NotFound
from broker.rules.schema import IdentitySpec
from broker.service import BrokerService
from broker.web.context import context_of
from broker.web.render import NO_STORE


def bearer_ok(request: Request, token: SecretStr) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    sent = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(sent.encode(), expected.encode())


def _authorize(request: Request, service: BrokerService) -> None:
    token = service.settings.admin.token
    if token is None:
        raise NotFound("admin API is not enabled", reason="admin_disabled")
    if not bearer_ok(request, token):
        raise NotAuthenticated("admin API without the admin token", reason="admin_token_invalid")


async def explain(request: Request) -> Response:
    service = context_of(request).service
    _authorize(request, service)
    try:
        spec = IdentitySpec.model_validate_json(await request.body())
    except ValidationError as exc:
        raise BadRequest(f"identity: {exc.error_count()} problem(s)", reason="identity_invalid",
                         public="The body must be an identity: {subject, idp, email, groups, claims, ...}.") from None
    return JSONResponse(service.explain(spec), headers=NO_STORE)
