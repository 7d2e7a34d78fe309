"""Console sign-in through the AWS federation endpoint: getSigninToken, then a login URL.

The partition comes from the role ARN, so a GovCloud or China role never goes to the commercial endpoint.
SessionDuration (the console session's length) follows the grant, except: never above 1 h for credentials
from a role chain (AWS caps those), and never sent for federation-token credentials (the call fails with it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from broker.errors import StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import Credentials
from broker.outputs.console_links import HOME, ConsoleLink, destination_url
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


def regional(partition: str, region: str | None) -> Partition:
    """The partition's endpoints; in the aws partition a region has its own sign-in and console hosts
    (https://REGION.signin.aws.amazon.com/federation). GovCloud and China keep theirs, the region in the query."""
    if partition == "aws" and region is not None:
        return Partition(f"https://{region}.signin.aws.amazon.com/federation",
                         f"https://{region}.console.aws.amazon.com/")
    return PARTITIONS[partition]


MIN_SESSION, MAX_SESSION = 900, 43200
# What a person reads when getSigninToken fails (the error page adds the error id; the audit log the detail).
FEDERATION_REFUSED = ("AWS sign-in refused to open a console session for this role (its federation endpoint "
                      "did not accept the role's temporary credentials). Try again; if it fails again, ask your "
                      "platform team and quote the error id.")
FEDERATION_DOWN = ("AWS sign-in (the console's federation endpoint) is not answering right now, so no console "
                   "session could be opened. Try again in a minute; the error id identifies this attempt.")
CHAINED_MAX = 3600


def session_duration(creds: Credentials, grant: RoleGrant) -> str | None:
    """The SessionDuration to ask for, or None to send none."""
    if creds.via == "federation_token":
        return None
    seconds = min(max(int(grant.duration.total_seconds()), MIN_SESSION), MAX_SESSION)
    return str(min(seconds, CHAINED_MAX) if creds.chained else seconds)


class ConsoleSignIn:
    def __init__(
        self, http: httpx.AsyncClient, *, issuer_url: str,
        federation_url: str | None = None, console_url: str | None = None,
    ) -> None:
        self._http, self._issuer = http, issuer_url
        self._federation_override, self._console_override = federation_url, console_url

    def _partition(self, grant: RoleGrant, region: str | None) -> Partition:
        default = regional(grant.partition, region)
        return Partition(
            self._federation_override or default.federation_url, self._console_override or default.console_url
        )

    async def signin_url(self, creds: Credentials, grant: RoleGrant, link: ConsoleLink = HOME) -> str:
        """`link`: where in the console (checked against the settings by console_links.console_link)."""
        partition = self._partition(grant, link.region)
        token = await self._signin_token(partition.federation_url, creds, grant)
        query = urlencode({
            "Action": "login", "Issuer": self._issuer,
            "Destination": destination_url(partition.console_url, link),
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
            raise StsUnavailable("federation endpoint timed out", reason="federation_timeout",
                                 public=FEDERATION_DOWN) from None
        except httpx.HTTPError as exc:
            raise StsUnavailable(f"federation endpoint: {type(exc).__name__}",
                                 reason="federation_unreachable", public=FEDERATION_DOWN) from None
        if response.status_code >= 500:
            raise StsUnavailable(f"federation endpoint answered {response.status_code}",
                                 reason="federation_unavailable", public=FEDERATION_DOWN)
        if response.status_code != 200:
            raise StsRefused(f"federation endpoint answered {response.status_code}",
                             reason="federation_refused", public=FEDERATION_REFUSED)
        try:
            token = loads_object(response.content)["SigninToken"]  # bounded depth: AWS is outside too
        except (ValueError, KeyError, TypeError):
            raise StsUnavailable("federation endpoint answered without a SigninToken",
                                 reason="federation_bad_answer", public=FEDERATION_DOWN) from None
        if not isinstance(token, str) or not token:
            raise StsUnavailable("empty SigninToken", reason="federation_bad_answer", public=FEDERATION_DOWN)
        return token
