"""Console sign-in through the AWS federation endpoint: getSigninToken, then a login URL.

The partition comes from the role ARN, so a GovCloud or China role never goes to the commercial endpoint.
SessionDuration (the console session's length) follows the grant, except: never above 1 h for credentials
from a role chain (AWS caps those), and never sent for federation-token credentials (the call fails with it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from broker.errors import BadRequest, StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import Credentials
from broker.safe_json import loads_object


@dataclass(frozen=True, slots=True)
class Partition:
    federation_url: str
    console_url: str


PARTITIONS = {
    "aws": Partition("https://signin.aws.amazon.com/federation", "https://console.aws.amazon.com/"),
    "aws-us-gov": Partition(
        "https://signin.amazonaws-us-gov.com/federation", "https://console.amazonaws-us-gov.com/"
    ),
    "aws-cn": Partition("https://signin.amazonaws.cn/federation", "https://console.amazonaws.cn/"),
}
MIN_SESSION, MAX_SESSION = 900, 43200
CHAINED_MAX = 3600


def session_duration(creds: Credentials, grant: RoleGrant) -> str | None:
    """The SessionDuration to ask for, or None to send none."""
    if creds.via == "federation_token":
        return None
    seconds = min(max(int(grant.duration.total_seconds()), MIN_SESSION), MAX_SESSION)
    return str(min(seconds, CHAINED_MAX) if creds.chained else seconds)


# A path within the console: never another host (`//evil.example`, `/\\evil`, `@`), never a scheme.
DESTINATION = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:%?#-]*)*", re.ASCII)


def console_destination(path: str) -> str:
    """"/" for none; else the path, when it stays in the console (BadRequest otherwise)."""
    if not path:
        return "/"
    if len(path) > 512 or path.startswith("//") or not DESTINATION.fullmatch(path):
        raise BadRequest(f"console destination {path[:100]!r}", reason="destination_invalid",
                         public="destination must be a path in the AWS console, such as /s3/home.")
    return path


class ConsoleSignIn:
    def __init__(
        self, http: httpx.AsyncClient, *, issuer_url: str,
        federation_url: str | None = None, console_url: str | None = None,
    ) -> None:
        self._http, self._issuer = http, issuer_url
        self._federation_override, self._console_override = federation_url, console_url

    def _partition(self, grant: RoleGrant) -> Partition:
        default = PARTITIONS[grant.partition]
        return Partition(
            self._federation_override or default.federation_url, self._console_override or default.console_url
        )

    async def signin_url(self, creds: Credentials, grant: RoleGrant, destination: str = "") -> str:
        """`destination`: a path in the console (`/s3/home`), checked by console_destination; "" the home."""
        partition = self._partition(grant)
        token = await self._signin_token(partition.federation_url, creds, grant)
        query = urlencode({
            "Action": "login", "Issuer": self._issuer,
            "Destination": partition.console_url.rstrip("/") + console_destination(destination),
            "SigninToken": token,
        })
        return f"{partition.federation_url}?{query}"

    async def _signin_token(self, federation_url: str, creds: Credentials, grant: RoleGrant) -> str:
        session = json.dumps({
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
        })
        # POST keeps the credentials out of any access log that records query strings.
        form = {"Action": "getSigninToken", "Session": session}
        duration = session_duration(creds, grant)
        if duration is not None:
            form["SessionDuration"] = duration
        try:
            response = await self._http.post(federation_url, data=form)
        except httpx.TimeoutException:
            raise StsUnavailable("federation endpoint timed out", reason="federation_timeout") from None
        except httpx.HTTPError as exc:
            raise StsUnavailable(f"federation endpoint: {type(exc).__name__}",
                                 reason="federation_unreachable") from None
        if response.status_code >= 500:
            raise StsUnavailable(f"federation endpoint answered {response.status_code}",
                                 reason="federation_unavailable")
        if response.status_code != 200:
            raise StsRefused(f"federation endpoint answered {response.status_code}",
                             reason="federation_refused",
                             public="AWS refused to create a console session for this role.")
        try:
            token = loads_object(response.content)["SigninToken"]  # bounded depth: AWS is outside too
        except (ValueError, KeyError, TypeError):
            raise StsUnavailable("federation endpoint answered without a SigninToken",
                                 reason="federation_bad_answer") from None
        if not isinstance(token, str) or not token:
            raise StsUnavailable("empty SigninToken", reason="federation_bad_answer")
        return token
