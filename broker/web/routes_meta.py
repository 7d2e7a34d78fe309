"""The broker as an OIDC issuer (discovery + JWKS), and health."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.errors import NotAuthenticated
from broker.issuers.saml_idp import idp_metadata
from broker.issuers.signing import ALGORITHM, PUBLISHED_MAX_AGE
from broker.web.context import context_of
from broker.web.errors import broker_error
from broker.web.routes_admin import bearer_ok

PUBLIC_CACHE = {"Cache-Control": f"public, max-age={PUBLISHED_MAX_AGE}"}


async def openid_configuration(request: Request) -> Response:
    service = context_of(request).service
    base = service.settings.public_url
    return JSONResponse({
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": ["sub", "aud", "iss", "iat", "exp", "nbf", "jti", "email",
                             "https://aws.amazon.com/tags", "https://aws.amazon.com/source_identity"],
    }, headers=PUBLIC_CACHE)


async def jwks(request: Request) -> Response:
    service = context_of(request).service
    return JSONResponse(service.keys.jwks(), headers=PUBLIC_CACHE)


async def saml_idp_metadata(request: Request) -> Response:
    """The broker as a SAML IdP: register this document as an IAM SAML provider for the assertions it mints."""
    service = context_of(request).service
    document = idp_metadata(service.settings.public_url, service.keys.saml_keys())
    return Response(document, media_type="application/samlmetadata+xml", headers=PUBLIC_CACHE)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Each dependency by name, `ok` or why not (broker/readiness.py); 503 while any is not ready."""
    readiness = context_of(request).service.readiness
    checks = await readiness.checks()
    ready = readiness.ready(checks)
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503,
                        headers={"Cache-Control": "no-store"})


METRICS_CHALLENGE = 'Bearer realm="sts-broker metrics"'


async def metrics(request: Request) -> Response:
    """Prometheus; with `metrics.token` set, only for a scraper that sends it (401 and an audit event)."""
    service = context_of(request).service
    token = service.settings.metrics.token
    if token is not None and not bearer_ok(request, token):
        response = await broker_error(request, NotAuthenticated("/metrics without the metrics token",
                                                                reason="metrics_token_invalid"))
        response.headers["WWW-Authenticate"] = METRICS_CHALLENGE
        return response
    registry = context_of(request).metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
