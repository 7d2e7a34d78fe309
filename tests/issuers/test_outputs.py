from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from broker.errors import StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import Credentials
from broker.issuers.sts_client import map_client_error, map_transport_error
from broker.outputs.console import ConsoleSignIn
from broker.outputs.console_links import ConsoleLink
from broker.outputs.formats import as_credential_process
from broker.web.errors import http_status

CREDS = Credentials("ASIAEXAMPLE", "secret-key-value", "session-token-value",
                    datetime(2030, 1, 1, tzinfo=UTC), "arn:aws:iam::1:role/R", "arn:aws:sts::1:assumed-role/R/x")


def grant(arn: str) -> RoleGrant:
    return RoleGrant(arn, "web_identity", None, "alice", None, timedelta(hours=13))


def test_credentials_repr_hides_secrets() -> None:
    assert "secret-key-value" not in repr(CREDS) and "session-token-value" not in repr(CREDS)


def test_credential_process_shape() -> None:
    body = json.loads(as_credential_process(CREDS))
    assert body == {"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret-key-value",
                    "SessionToken": "session-token-value", "Expiration": "2030-01-01T00:00:00Z"}


@pytest.mark.parametrize(("arn", "federation", "console"), [
    ("arn:aws:iam::111122223333:role/R", "https://signin.aws.amazon.com/federation",
     "https://console.aws.amazon.com/"),
    ("arn:aws-us-gov:iam::111122223333:role/R", "https://signin.amazonaws-us-gov.com/federation",
     "https://console.amazonaws-us-gov.com/"),
    ("arn:aws-cn:iam::111122223333:role/R", "https://signin.amazonaws.cn/federation",
     "https://console.amazonaws.cn/"),
])
def test_console_partition_from_role_arn(arn: str, federation: str, console: str) -> None:
    seen: list[httpx.Request] = []

    def federation_endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"SigninToken": "tok"})

    async def run() -> str:
        # The edge nothing real can stand in for (AWS's public endpoints): a strict transport that
        # answers only the exact partition URL.
        async with httpx.AsyncClient(transport=httpx.MockTransport(federation_endpoint)) as http:
            return await ConsoleSignIn(http, issuer_url="https://broker.example.com").signin_url(CREDS, grant(arn))

    url = asyncio.run(run())
    assert str(seen[0].url) == federation
    form = parse_qs(seen[0].content.decode())
    assert form["Action"] == ["getSigninToken"] and form["SessionDuration"] == ["43200"]
    assert json.loads(form["Session"][0]) == {"sessionId": "ASIAEXAMPLE", "sessionKey": "secret-key-value",
                                              "sessionToken": "session-token-value"}
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(federation + "?") and query["Destination"] == [console] and query["SigninToken"] == ["tok"]


@pytest.mark.parametrize(("arn", "link", "federation", "destination"), [
    ("arn:aws:iam::111122223333:role/R", ConsoleLink("/ec2/home", "eu-west-1"),
     "https://eu-west-1.signin.aws.amazon.com/federation",
     "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1"),
    ("arn:aws:iam::111122223333:role/R", ConsoleLink("/ec2/home?x=1#Instances:", "us-west-2"),
     "https://us-west-2.signin.aws.amazon.com/federation",
     "https://us-west-2.console.aws.amazon.com/ec2/home?x=1&region=us-west-2#Instances:"),
    ("arn:aws:iam::111122223333:role/R", ConsoleLink("/s3/home"), "https://signin.aws.amazon.com/federation",
     "https://console.aws.amazon.com/s3/home"),
    ("arn:aws-us-gov:iam::111122223333:role/R", ConsoleLink("/s3/home", "us-gov-west-1"),
     "https://signin.amazonaws-us-gov.com/federation",
     "https://console.amazonaws-us-gov.com/s3/home?region=us-gov-west-1"),
    ("arn:aws-cn:iam::111122223333:role/R", ConsoleLink("/ec2/home", "cn-north-1"),
     "https://signin.amazonaws.cn/federation", "https://console.amazonaws.cn/ec2/home?region=cn-north-1"),
])
def test_console_deep_link_goes_to_the_regions_endpoints(arn: str, link: ConsoleLink, federation: str,
                                                         destination: str) -> None:
    """In the aws partition a region has its own sign-in and console hosts (the sign-in token is used at the
    endpoint that made it); GovCloud and China keep theirs and carry the region in the query."""
    seen: list[str] = []

    def federation_endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"SigninToken": "tok"})

    async def run() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(federation_endpoint)) as http:
            return await ConsoleSignIn(http, issuer_url="https://broker.example.com").signin_url(
                CREDS, grant(arn), link)

    url = asyncio.run(run())
    assert seen == [federation] and url.startswith(federation + "?")
    assert parse_qs(urlsplit(url).query)["Destination"] == [destination]


@pytest.mark.parametrize(("answer", "reason", "status", "says"), [
    (httpx.Response(400, text="The credentials in Session are not valid"), "federation_refused", 403,
     "AWS sign-in refused to open a console session"),
    (httpx.Response(200, json={"NoToken": 1}), "federation_bad_answer", 502, "AWS sign-in (the console's"),
    (httpx.Response(200, text="<html>"), "federation_bad_answer", 502, "is not answering right now"),
])
def test_federation_failures_say_what_failed(answer: httpx.Response, reason: str, status: int, says: str) -> None:
    """What getSigninToken's failures become: the reason (audit), the status and a message a person can act
    on (the error page adds the error id); the endpoint's own text stays out of both."""
    async def run() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer)) as http:
            return await ConsoleSignIn(http, issuer_url="https://broker.example.com").signin_url(
                CREDS, grant("arn:aws:iam::111122223333:role/R"))

    with pytest.raises((StsRefused, StsUnavailable)) as raised:
        asyncio.run(run())
    error = raised.value
    assert (error.reason, http_status(error)) == (reason, status) and says in error.public_message
    assert "Session" not in error.detail and "error id" in error.public_message


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "AssumeRoleWithWebIdentity")


def test_sts_errors_map_to_the_tree() -> None:
    denied = map_client_error(_client_error("AccessDenied"))
    assert isinstance(denied, StsRefused) and denied.reason == "sts_access_denied" and http_status(denied) == 403
    expired = map_client_error(_client_error("ExpiredTokenException"))
    assert expired.reason == "sts_expired_token"
    throttled = map_client_error(_client_error("Throttling"))
    assert isinstance(throttled, StsUnavailable) and http_status(throttled) == 503
    timeout = map_transport_error(ConnectTimeoutError(endpoint_url="http://x"))
    assert http_status(timeout) == 504 and timeout.reason == "sts_timeout"
    assert map_transport_error(EndpointConnectionError(endpoint_url="http://x")).reason == "sts_unreachable"
