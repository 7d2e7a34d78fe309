"""The OpenAPI pieces of the device authorization grant (RFC 8628) and container credentials, merged into
/openapi.json by openapi.py: paths and schemas."""

from __future__ import annotations

from typing import Any

from broker.device_codes import ALPHABET, GRANT_TYPE

NO_STORE = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}}
RETRY = {"Retry-After": {"schema": {"type": "integer"}}, **NO_STORE}
OAUTH_ERROR = "#/components/schemas/OAuthError"
BROKER_ERROR = "#/components/schemas/Error"  # openapi_cli.py's
CLIENT_ID = {"type": "string", "const": "sts-broker-cli"}
DEVICE_ERRORS = ["authorization_pending", "slow_down", "access_denied", "expired_token"]  # RFC 8628 3.5


def _answer(ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "headers": headers or NO_STORE,
            "content": {"application/json": {"schema": {"$ref": ref}}}}


SCHEMAS: dict[str, Any] = {
    "DeviceAuthorizationRequest": {
        "type": "object", "required": ["client_id"],
        "properties": {"client_id": CLIENT_ID,
                       "device_name": {"type": "string", "maxLength": 64,
                                       "description": "Shown on the confirmation page as untrusted text."}},
    },
    "DeviceAuthorizationResponse": {
        "type": "object",
        "required": ["device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in",
                     "interval"],
        "properties": {
            "device_code": {"type": "string", "description": "Secret: poll /oauth2/token with it."},
            "user_code": {"type": "string", "pattern": f"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$",
                          "description": "What the person types at verification_uri (the dash is optional)."},
            "verification_uri": {"type": "string", "format": "uri"},
            "verification_uri_complete": {"type": "string", "format": "uri"},
            "expires_in": {"type": "integer", "description": "Seconds (device_authorization.lifetime)."},
            "interval": {"type": "integer", "description": "Seconds between polls; faster ones get slow_down."},
        },
    },
    "DeviceCodeTokenRequest": {
        "type": "object", "required": ["grant_type", "device_code", "client_id"],
        "properties": {"grant_type": {"type": "string", "const": GRANT_TYPE}, "device_code": {"type": "string"},
                       "client_id": CLIENT_ID},
        "description": f"POST /oauth2/token with grant_type={GRANT_TYPE} (RFC 8628 3.4). Success: a CLI "
                       "session ({access_token, token_type: Bearer, expires_in, session_id}); until approved, "
                       f"400 with error one of {', '.join(DEVICE_ERRORS)}; a redeemed, unknown or another "
                       "client's device code: invalid_grant.",
    },
    "ContainerTokenRequest": {
        "type": "object", "required": ["role"],
        "properties": {"role": {"type": "string", "description": "Role ARN, alias ACCOUNT/ROLE or unique name."}},
    },
    "ContainerTokenResponse": {
        "type": "object", "required": ["token", "token_id", "role_arn", "expires_at", "full_uri"],
        "properties": {
            "token": {"type": "string", "description": "Secret: AWS_CONTAINER_AUTHORIZATION_TOKEN."},
            "token_id": {"type": "string", "description": "Public id (listing, revocation on /sessions)."},
            "role_arn": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time",
                           "description": "When its CLI session ends (it stops earlier if that is revoked)."},
            "full_uri": {"type": "string", "format": "uri", "description": "AWS_CONTAINER_CREDENTIALS_FULL_URI."},
        },
    },
    "ContainerCredentials": {
        "type": "object", "required": ["AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"],
        "properties": {"AccessKeyId": {"type": "string"}, "SecretAccessKey": {"type": "string"},
                       "Token": {"type": "string"}, "Expiration": {"type": "string", "format": "date-time"},
                       "RoleArn": {"type": "string"}, "AccountId": {"type": "string"}},
    },
}


def _device_authorization() -> dict[str, Any]:
    return {"post": {
        "summary": "Start a device login (RFC 8628 3.1): a device code to poll with, a user code to approve",
        "operationId": "deviceAuthorization",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"$ref": "#/components/schemas/DeviceAuthorizationRequest"}}}},
        "responses": {
            "200": _answer("#/components/schemas/DeviceAuthorizationResponse", "The code pair"),
            "400": _answer(OAUTH_ERROR, "invalid_request (form, device_name)"),
            "401": _answer(OAUTH_ERROR, "invalid_client: only sts-broker-cli"),
            "429": _answer(OAUTH_ERROR, "rate_limits.device_authorizations per client address", RETRY),
        },
    }}


def _container_tokens() -> dict[str, Any]:
    return {"post": {
        "summary": "A container credential token for one role, bound to this CLI session",
        "operationId": "createContainerToken", "security": [{"cliSession": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ContainerTokenRequest"}}}},
        "responses": {
            "200": _answer("#/components/schemas/ContainerTokenResponse", "The token (shown once)"),
            "400": _answer(BROKER_ERROR, "Malformed body, or an ambiguous role name"),
            "401": _answer(BROKER_ERROR, "No live CLI session: log in again"),
            "403": _answer(BROKER_ERROR, "role_not_granted"),
        },
    }}


def _container_credentials() -> dict[str, Any]:
    return {"get": {
        "summary": "Credentials for AWS_CONTAINER_CREDENTIALS_FULL_URI (the SDKs' container provider)",
        "description": "Authorization: the container token, raw (as the SDKs send "
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN) or as `Bearer <token>`. Each call re-checks the token, "
                       "its CLI session and the rules; keys come from the credential cache while more than "
                       "container_credentials.refresh_before of their life is left, else are re-issued.",
        "operationId": "containerCredentials", "security": [{"containerToken": []}],
        "responses": {
            "200": _answer("#/components/schemas/ContainerCredentials", "Credentials in botocore's shape"),
            "401": _answer(BROKER_ERROR, "container_auth_missing, container_auth_malformed, "
                           "container_token_invalid (revoked, unknown), container_session_ended"),
            "403": _answer(BROKER_ERROR, "The rules no longer grant the role"),
            "503": _answer(BROKER_ERROR, "STS or the state store unavailable"),
        },
    }}


PATHS: dict[str, Any] = {
    "/oauth2/device_authorization": _device_authorization(),
    "/cli/container-tokens": _container_tokens(),
    "/container-credentials": _container_credentials(),
}
SECURITY_SCHEMES: dict[str, Any] = {
    "containerToken": {"type": "apiKey", "in": "header", "name": "Authorization"},
}
