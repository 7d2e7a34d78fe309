"""Credentials in the formats AWS tools read."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Literal

from broker.issuers.credentials import Credentials, isoformat

Format = Literal["json", "credential_process", "env", "ini"]
FORMATS: tuple[Format, ...] = ("json", "credential_process", "env", "ini")


def expiration_text(creds: Credentials) -> str:
    # SDKs refresh only with a timezone-aware ISO 8601 Expiration.
    return isoformat(creds.expiration).replace("+00:00", "Z")


def as_json(creds: Credentials) -> str:
    return json.dumps({
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": expiration_text(creds),
        "RoleArn": creds.role_arn,
        "AssumedRoleArn": creds.assumed_role_arn,
    }, indent=2)


def as_credential_process(creds: Credentials) -> str:
    return json.dumps({
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": expiration_text(creds),
    })


def as_env(creds: Credentials) -> str:
    pairs = {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_SESSION_TOKEN": creds.session_token,
        "AWS_CREDENTIAL_EXPIRATION": expiration_text(creds),
    }
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in pairs.items())


def as_ini(creds: Credentials, profile: str) -> str:
    return (
        f"[{profile}]\n"
        f"aws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
        f"aws_session_token = {creds.session_token}\n"
    )


MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "credential_process": "application/json",
    "env": "text/plain; charset=utf-8",
    "ini": "text/plain; charset=utf-8",
}


def render(creds: Credentials, fmt: Format, profile: str) -> str:
    renderers: dict[Format, Callable[[Credentials], str]] = {
        "json": as_json,
        "credential_process": as_credential_process,
        "env": as_env,
        "ini": lambda c: as_ini(c, profile),
    }
    return renderers[fmt](creds)
