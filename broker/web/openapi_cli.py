"""The CLI endpoints in /openapi.json (`sts-broker login` and what it calls afterwards): schemas and paths,
merged into the document by openapi.py."""

from __future__ import annotations

from typing import Any

from broker.cli_authorize import CLI_CLIENT_ID

BEARER: list[dict[str, list[str]]] = [{"cliSession": []}]
ERROR = "#/components/schemas/Error"
SECURITY_SCHEMES = {"cliSession": {"type": "http", "scheme": "bearer",
                                   "description": "A CLI session token from POST /oauth2/token."}}


def _str(description: str = "", **more: Any) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {}), **more}


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


ROLE_ENTRY = _object(["role_arn", "role_name", "account_id", "alias", "duration_seconds", "rule"],
                     role_arn=_str(), role_name=_str(), account_id=_str(),
                     account_name={"type": ["string", "null"]},
                     alias=_str("ACCOUNT_NAME/ROLE_NAME: what `--role` may name, besides the ARN or a "
                                "role name only one granted role has."),
                     duration_seconds={"type": "integer"}, rule=_str("The rule that granted it."))

CLI_SCHEMAS: dict[str, Any] = {
    "AuthorizationCodeRequest": _object(
        ["grant_type", "code", "redirect_uri", "client_id", "code_verifier"],
        grant_type=_str(const="authorization_code"), code=_str("From the loopback redirect (single use, 60 s)."),
        redirect_uri=_str("Exactly the authorization request's."), client_id=_str(const=CLI_CLIENT_ID),
        code_verifier=_str("RFC 7636: 43-128 characters; its S256 is the request's code_challenge.")),
    "CliSessionToken": _object(
        ["access_token", "token_type", "expires_in", "session_id"],
        access_token=_str("The CLI session's bearer token (opaque)."), token_type=_str(const="Bearer"),
        expires_in={"type": "integer", "description": "Seconds left: never past the browser session's end."},
        session_id=_str("The session's public id (listed and revocable at /sessions).")),
    "CliSession": _object(
        ["session_id", "idp", "subject", "device_name", "created_at", "expires_at"],
        session_id=_str(), idp=_str(), subject=_str(), email={"type": ["string", "null"]}, device_name=_str(),
        created_at=_str(format="date-time"), expires_at=_str(format="date-time")),
    "CliRoles": _object(["roles", "notices"], roles={"type": "array", "items": ROLE_ENTRY},
                        notices={"type": "array", "items": {"type": "object"}}),
    "CliRoleRequest": _object(
        ["role"], role=_str("A role ARN, an alias (ACCOUNT_NAME/ROLE_NAME) or a role name only one grant has."),
        duration_seconds={"type": "integer", "minimum": 900, "maximum": 43200,
                          "description": "Shorter than the grant's duration (never longer)."},
        destination=_str("POST /cli/console only: a console destination the broker offers (console.destinations): "
                         "a name such as s3, or its path such as /s3/home."),
        region=_str("POST /cli/console only: a region the broker offers (console.regions).")),
    "CredentialProcess": _object(
        ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "RoleArn", "AccountId"],
        Version={"type": "integer", "const": 1}, AccessKeyId=_str(), SecretAccessKey=_str(), SessionToken=_str(),
        Expiration=_str(format="date-time"), RoleArn=_str(), AccountId=_str()),
    "ConsoleUrl": _object(["url"], url=_str("The AWS federation sign-in URL (single use, short-lived).")),
    "Error": _object(["error", "message", "error_id", "request_id"], error=_str("The reason code."), message=_str(),
                     error_id=_str("Find the audit event by it."),
                     request_id=_str("The request's id (also in X-Request-Id and its audit events).")),
}


def _answer(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _bearer_operation(summary: str, ok: str, body: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "security": BEARER, "responses": {
        "200": _answer(f"#/components/schemas/{ok}", "OK"),
        "401": _answer(ERROR, "cli_session_invalid: the CLI session ended (revoked, expired): log in again"),
    }}
    if body:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
        operation["responses"]["400"] = _answer(ERROR, "malformed body, an ambiguous role name, a bad duration")
        operation["responses"]["403"] = _answer(ERROR, "role_not_granted, or AWS refused (sts_refused)")
    return operation


def _authorize() -> dict[str, Any]:
    query = [{"name": n, "in": "query", "required": n != "device_name", "schema": {"type": "string"}}
             for n in ("response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method",
                       "state", "device_name")]
    return {
        "get": {"summary": "The browser step of `sts-broker login` (RFC 6749 4.1 + RFC 7636 S256 + RFC 8252): "
                           "redirect_uri is http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH. Shows the "
                           "consent page (signing in first when needed); a bad request is a 400 page, never "
                           "a redirect.", "parameters": query,
                "responses": {"200": {"description": "The consent (or sign-in) page", "content": {"text/html": {}}},
                              "400": {"description": "The request is refused", "content": {"text/html": {}}}}},
        "post": {"summary": "The person's answer (form: csrf_token, request, decision=allow|deny): 303 to "
                            "redirect_uri?code=...&state=... or ?error=access_denied&state=...",
                 "responses": {"303": {"description": "To the CLI's loopback listener"},
                               "403": {"description": "CSRF token missing or wrong"}}},
    }


def cli_paths() -> dict[str, Any]:
    return {
        "/oauth2/authorize": _authorize(),
        "/oauth2/revoke": {"post": {
            "summary": "RFC 7009: end a CLI session (form: token=<CLI session token>). 200 whatever the token.",
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": _object(
                ["token"], token=_str(), token_type_hint=_str())}}},
            "responses": {"200": {"description": "Revoked, or there was nothing to revoke"},
                          "400": {"description": "invalid_request (RFC 6749 5.2 shape)"}}}},
        "/cli/session": {"get": _bearer_operation("The CLI session: who, which device, until when", "CliSession")},
        "/cli/roles": {"get": _bearer_operation("The roles the rules grant this person", "CliRoles")},
        "/cli/credentials": {"post": _bearer_operation(
            "Fresh AWS credentials for one role, in the credential_process shape (Version 1)", "CredentialProcess",
            "CliRoleRequest")},
        "/cli/console": {"post": _bearer_operation("An AWS console sign-in URL for one role", "ConsoleUrl",
                                                   "CliRoleRequest")},
        "/sessions": {"get": {"summary": "The signed-in person's CLI sessions (browser session; HTML, or JSON "
                                         "with Accept: application/json); POST /sessions/revoke (form "
                                         "csrf_token, kind=cli, id) ends one.",
                              "responses": {"200": {"description": "OK", "content": {"text/html": {},
                                                                                      "application/json": {}}}}}},
    }
