"""Credentials in the formats AWS tools read. Federation-token credentials say what they cannot do (call IAM,
or STS beyond GetCallerIdentity) wherever the format has room for a note: the JSON ("Note") and the env and
ini files (a comment); credential_process output is read by SDKs and stays exactly their format."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Literal

from broker.issuers.credentials import Credentials, isoformat

Format = Literal["json", "credential_process", "env", "ini"]
FORMATS: tuple[Format, ...] = ("json", "credential_process", "env", "ini")


FEDERATION_NOTE = ("Federation-token credentials (GetFederationToken): they cannot call IAM, and of STS only "
                   "GetCallerIdentity.")


def note(creds: Credentials) -> str | None:
    return FEDERATION_NOTE if creds.via == "federation_token" else None


def _comment(creds: Credentials) -> str:
    text = note(creds)
    return "" if text is None else f"# {text}\n"


def expiration_text(creds: Credentials) -> str:
    # SDKs refresh only with a timezone-aware ISO 8601 Expiration.
    return isoformat(creds.expiration).replace("+00:00", "Z")


def as_json(creds: Credentials) -> str:
    document = {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": expiration_text(creds),
        "RoleArn": creds.role_arn,
        "AssumedRoleArn": creds.assumed_role_arn,
    }
    text = note(creds)
    if text is not None:
        document["Note"] = text
    return json.dumps(document, indent=2)


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
    return _comment(creds) + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in pairs.items())


def as_ini(creds: Credentials, profile: str) -> str:
    return _comment(creds) + (
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
