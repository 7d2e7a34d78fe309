"""The event-loop STS client (sts_http) and the boto3 client (sts_client) decide alike on STS's error answers.

sts_http once built a botocore ClientError by hand to reuse boto3's mapping; now both map STS's code and
message through `sts_error`. Here one loopback HTTP server answers every AssumeRoleWithWebIdentity with the
same STS error document, and each client, through its real stack (botocore's own parser for boto3), must
refuse with the same error class, reason and public message: for the unsigned web-identity call and the
signed AssumeRole and GetFederationToken alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from broker.devstack.servers import http_server
from broker.errors import BrokerError
from broker.grants import RoleGrant
from broker.issuers.credentials import CallerKeys
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.settings import AwsConfig

GRANT = RoleGrant(role_arn="arn:aws:iam::111122223333:role/R", via="web_identity", provider_arn=None,
                  session_name="alice", source_identity=None, duration=timedelta(hours=1))
# (HTTP status, STS error code): refusals, throttling, STS's own failures, a code neither client knows.
ANSWERS = [(403, "AccessDenied"), (400, "InvalidIdentityToken"), (400, "ExpiredTokenException"),
           (403, "IDPRejectedClaim"), (403, "RegionDisabledException"), (400, "ValidationError"),
           (400, "SomethingNew"), (400, "Throttling"), (400, "IDPCommunicationError"),
           # the signed calls' own (AssumeRole, GetFederationToken)
           (403, "ExpiredToken"), (403, "InvalidClientTokenId"), (403, "SignatureDoesNotMatch"),
           (400, "MalformedPolicyDocument"), (400, "PackedPolicyTooLarge"), (400, "InvalidParameterValue"),
           (403, "IncompleteSignature"), (403, "MissingAuthenticationToken")]
CALLER = CallerKeys("AKIAEXAMPLE", "not-a-real-secret")
CALLS: dict[str, Callable[[HttpStsClient | StsClient], Awaitable[object]]] = {
    "web_identity": lambda client: client.assume_role_with_web_identity(GRANT, "t.o.k"),
    "assume_role": lambda client: client.assume_role(GRANT, CALLER, source_identity=None),
    "federation_token": lambda client: client.get_federation_token(GRANT, CALLER),
}
ANSWER: list[tuple[int, str]] = []


def _error_document(code: str) -> bytes:
    return (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>STS says {code}</Message></Error>"
            f"<RequestId>0f6b-test</RequestId></ErrorResponse>").encode()


class _Sts(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, code = ANSWER[0]
        body = _error_document(code)
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def sts_url() -> Iterator[str]:
    with http_server(_Sts) as url:
        yield url


def _refusal(client: HttpStsClient | StsClient, kind: str) -> BrokerError:
    async def call() -> BrokerError:
        try:
            await CALLS[kind](client)
        except BrokerError as exc:
            return exc
        finally:
            await client.close()
        raise AssertionError("an STS error answer was read as credentials")
    return asyncio.run(asyncio.wait_for(call(), 30))


@pytest.mark.parametrize("kind", list(CALLS))
@pytest.mark.parametrize("answer", ANSWERS, ids=[code for _, code in ANSWERS])
def test_both_sts_transports_refuse_an_error_answer_alike(sts_url: str, answer: tuple[int, str], kind: str) -> None:
    ANSWER[:] = [answer]
    aws = AwsConfig(sts_endpoint_url=sts_url, connect_timeout=timedelta(seconds=2), read_timeout=timedelta(seconds=5))
    ours, boto = _refusal(HttpStsClient(aws, max_connections=2), kind), _refusal(StsClient(aws), kind)
    assert (type(ours), ours.reason, ours.public_message, ours.detail) == (
        type(boto), boto.reason, boto.public_message, boto.detail)
    assert ours.reason.startswith("sts_") and ours.detail == f"STS {answer[1]}: STS says {answer[1]}"
