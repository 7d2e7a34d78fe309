"""AssumeRoleWithSAML through the process's one STS transport: the event-loop client (sts_http) sends what the
boto3 client sends (the same parameters, recorded by one loopback server), reads the same answer, and refuses
the same way: AWS's AccessDenied maps to the same reason; a grant without a provider never reaches STS."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

import pytest

from broker.devstack.servers import http_server
from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.settings import AwsConfig

GRANT = RoleGrant(role_arn="arn:aws:iam::111122223333:role/R", via="saml",
                  provider_arn="arn:aws:iam::111122223333:saml-provider/broker", session_name="alice",
                  source_identity=None, duration=timedelta(hours=1), policy='{"Version":"2012-10-17"}',
                  policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",))
ASSERTION = "PHNhbWxwOlJlc3BvbnNlPg+/=" * 40  # base64 with + / = (percent-encoded on the wire)
XML = (b'<AssumeRoleWithSAMLResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithSAMLResult>'
       b"<Credentials><AccessKeyId>ASIASAML</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
       b"<SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>"
       b"<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/R/alice</Arn></AssumedRoleUser>"
       b"</AssumeRoleWithSAMLResult></AssumeRoleWithSAMLResponse>")
DENIED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
          b"<Code>AccessDenied</Code><Message>Not authorized</Message></Error></ErrorResponse>")


class Recorder:
    def __init__(self, status: int, answer: bytes) -> None:
        self.status, self.answer, self.forms = status, answer, list[dict[str, str]]()
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with recorder.lock:
                    recorder.forms.append(dict(parse_qsl(body.decode(), strict_parsing=True)))
                self.send_response(recorder.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(recorder.answer)))
                self.end_headers()
                self.wfile.write(recorder.answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def aws(url: str) -> AwsConfig:
    return AwsConfig(sts_endpoint_url=url, read_timeout=timedelta(seconds=5), connect_timeout=timedelta(seconds=2))


async def both(url: str, grant: RoleGrant) -> list[object]:
    results: list[object] = []
    for sts in (HttpStsClient(aws(url)), StsClient(aws(url))):
        try:
            results.append(await sts.assume_role_with_saml(grant, ASSERTION))
        except StsRefused as exc:
            results.append(exc)
        finally:
            await sts.close()
    return results


def test_the_event_loop_client_sends_what_boto3_sends_and_reads_the_same_credentials() -> None:
    recorder = Recorder(200, XML)
    with http_server(recorder.handler()) as url:
        fast, stock = asyncio.run(both(url, GRANT))
    ours, theirs = recorder.forms
    assert ours == theirs
    assert ours["Action"] == "AssumeRoleWithSAML" and ours["SAMLAssertion"] == ASSERTION
    assert ours["PrincipalArn"] == GRANT.provider_arn and ours["PolicyArns.member.1.arn"] == GRANT.policy_arns[0]
    assert fast == stock and getattr(fast, "access_key_id", None) == "ASIASAML"
    assert getattr(fast, "assumed_role_arn", "").endswith("assumed-role/R/alice")


def test_aws_refusal_maps_to_the_same_reason() -> None:
    recorder = Recorder(403, DENIED)
    with http_server(recorder.handler()) as url:
        fast, stock = asyncio.run(both(url, GRANT))
    assert isinstance(fast, StsRefused) and isinstance(stock, StsRefused)
    assert fast.reason == stock.reason == "sts_access_denied" and fast.public_message == stock.public_message


@pytest.mark.parametrize("transport", [HttpStsClient, StsClient])
def test_a_grant_without_a_provider_never_reaches_sts(transport: type[HttpStsClient] | type[StsClient]) -> None:
    recorder = Recorder(200, XML)
    grant = RoleGrant(role_arn=GRANT.role_arn, via="saml", provider_arn=None, session_name="alice",
                      source_identity=None, duration=timedelta(hours=1))

    async def call(url: str) -> None:
        sts = transport(aws(url))
        try:
            with pytest.raises(StsRefused) as info:
                await sts.assume_role_with_saml(grant, ASSERTION)
            assert info.value.reason == "saml_no_provider"
        finally:
            await sts.close()

    with http_server(recorder.handler()) as url:
        asyncio.run(call(url))
    assert recorder.forms == []
