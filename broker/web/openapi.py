"""GET /openapi.json: an OpenAPI 3.1 description of the machine-facing endpoints, built from the settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.token_exchange import CREDENTIALS_TYPE, GRANT_TYPE, ID_TOKEN_TYPE
from broker.web import openapi_device
from broker.web.context import context_of
from broker.web.openapi_cli import CLI_SCHEMAS, SECURITY_SCHEMES, cli_paths

OAUTH_ERROR_CODES = ["invalid_request", "unsupported_grant_type", "invalid_grant", "invalid_client",
                     "unauthorized_client", "invalid_target", "temporarily_unavailable", "server_error",
                     *openapi_device.DEVICE_ERRORS]


def _json(schema_ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/json": {"schema": {"$ref": schema_ref}}}}
    if headers:
        answer["headers"] = headers
    return answer


NO_STORE_HEADER = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}}
OAUTH_ERROR = "#/components/schemas/OAuthError"

SCHEMAS: dict[str, Any] = {
    "TokenExchangeRequest": {
        "type": "object",
        "required": ["grant_type", "subject_token", "subject_token_type"],
        "properties": {
            "grant_type": {"type": "string", "const": GRANT_TYPE},
            "subject_token": {"type": "string", "description": "The ID token the app holds (compact JWS).",
                              "maxLength": 20000},
            "subject_token_type": {"type": "string", "const": ID_TOKEN_TYPE},
            "resource": {"type": "string", "description": "The IAM role ARN wanted. Optional when the rules "
                         "grant exactly one role; required when they grant several."},
            "requested_token_type": {"type": "string", "const": CREDENTIALS_TYPE},
        },
    },
    "TokenExchangeResponse": {
        "type": "object",
        "required": ["access_token", "issued_token_type", "token_type", "expires_in", "role_arn", "Credentials"],
        "properties": {
            "access_token": {"type": "string", "description": "The AWS session token (RFC 8693 requires the "
                             "member; the usable result is `Credentials`)."},
            "issued_token_type": {"type": "string", "const": CREDENTIALS_TYPE},
            "token_type": {"type": "string", "const": "N_A"},
            "expires_in": {"type": "integer", "description": "Seconds until Credentials.Expiration."},
            "role_arn": {"type": "string"},
            "assumed_role_arn": {"type": "string"},
            "Credentials": {
                "type": "object",
                "required": ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"],
                "properties": {"AccessKeyId": {"type": "string"}, "SecretAccessKey": {"type": "string"},
                               "SessionToken": {"type": "string"},
                               "Expiration": {"type": "string", "format": "date-time"}},
            },
        },
    },
    "OAuthError": {
        "type": "object",
        "required": ["error", "error_description", "error_id"],
        "properties": {
            "error": {"type": "string", "enum": OAUTH_ERROR_CODES},
            "error_description": {"type": "string"},
            "error_id": {"type": "string", "description": "Find the audit event (reason code, detail) by it."},
            "request_id": {"type": "string", "description": "The request's id (X-Request-Id, its audit events)."},
            "resources": {"type": "array", "items": {"type": "string"},
                          "description": "With invalid_request when several roles are granted: choose one."},
        },
    },
}


def _token_operation() -> dict[str, Any]:
    retry = {"Retry-After": {"schema": {"type": "integer"}}, **NO_STORE_HEADER}
    return {
        "summary": "Exchange an ID token for AWS credentials (RFC 8693 token exchange); or, for `sts-broker "
                   "login`, an authorization code and its PKCE verifier for a CLI session",
        "description": "The ID token comes from an IdP configured with `type: token` (Google preset or any "
                       "OIDC provider). The rules file decides the role. Browser apps: only origins in "
                       "`token_exchange.cors_origins` (CORS).",
        "operationId": "tokenExchange",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/TokenExchangeRequest"},
            {"$ref": "#/components/schemas/AuthorizationCodeRequest"},
            {"$ref": "#/components/schemas/DeviceCodeTokenRequest"}]}}}},
        "responses": {
            "200": {"description": "AWS credentials for the role (token exchange), or a CLI session "
                                   "(authorization_code)", "headers": NO_STORE_HEADER,
                    "content": {"application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/TokenExchangeResponse"},
                        {"$ref": "#/components/schemas/CliSessionToken"}]}}}},
            "400": _json(OAUTH_ERROR, "RFC 6749 5.2 error (device_code grant: RFC 8628 3.5 authorization_pending, "
                         "slow_down, access_denied, expired_token): invalid_request, unsupported_grant_type, "
                         "invalid_grant (the subject token; an authorization code unknown, used, expired or with "
                         "another redirect_uri or verifier), unauthorized_client (origin), invalid_target (role)",
                         NO_STORE_HEADER),
            "401": _json(OAUTH_ERROR, "invalid_client: authorization_code or device_code with a client_id other "
                         "than the CLI's",
                         NO_STORE_HEADER),
            "413": _json(OAUTH_ERROR, "invalid_request: body too large", NO_STORE_HEADER),
            "429": _json(OAUTH_ERROR, "temporarily_unavailable: rate limit per client address or subject", retry),
            "502": _json(OAUTH_ERROR, "temporarily_unavailable: the IdP's keys are unreachable", NO_STORE_HEADER),
            "503": _json(OAUTH_ERROR, "temporarily_unavailable: STS or the state store", NO_STORE_HEADER),
            "504": _json(OAUTH_ERROR, "temporarily_unavailable: STS timed out", NO_STORE_HEADER),
        },
    }


def _get(summary: str, content: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK", "content": {content: {}}}}}}


def document(public_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "sts-broker", "version": "1", "description": "Machine-facing endpoints of the broker."},
        "servers": [{"url": public_url}],
        "paths": {
            "/oauth2/token": {"post": _token_operation()},
            "/.well-known/openid-configuration": _get("The broker as an OIDC issuer (tokens it mints for STS)"),
            "/.well-known/jwks.json": _get("The broker's public signing keys"),
            "/healthz": _get("Liveness"),
            "/readyz": _get("Readiness: state store, keys and the IdPs fetched over the network, each by name"),
            "/openapi.json": _get("This document"),
            **cli_paths(),
            **openapi_device.PATHS,
        },
        "components": {"schemas": {**SCHEMAS, **CLI_SCHEMAS, **openapi_device.SCHEMAS},
                       "securitySchemes": {**SECURITY_SCHEMES, **openapi_device.SECURITY_SCHEMES}},
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document(context_of(request).service.settings.public_url),
                        headers={"Cache-Control": "public, max-age=300"})
