"""The console federation endpoint: getSigninToken only for credentials the local STS really issued, then a
login page; everything else is HTTP 400, as at signin.aws.amazon.com."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from broker.devstack.federation import CredentialLedger, FederationEndpoint, IssuedCredentials
from broker.devstack.local_aws import LocalAws
from tests.devstack.conftest import Issuer, MakeRole, client, session_credentials


def get(aws: LocalAws, **params: str) -> httpx.Response:
    return httpx.get(aws.federation_url, params=params, trust_env=False)


def session(credentials: dict[str, Any], **changes: Any) -> str:
    values = {"sessionId": credentials["AccessKeyId"], "sessionKey": credentials["SecretAccessKey"],
              "sessionToken": credentials["SessionToken"], **changes}
    return json.dumps({k: v for k, v in values.items() if v is not None})


@pytest.fixture
def granted(issuer: Issuer, sts: Any, trusted_role: str) -> dict[str, Any]:
    result: dict[str, Any] = sts.assume_role_with_web_identity(RoleArn=trusted_role, RoleSessionName="console-user",
                                                               WebIdentityToken=issuer.token())
    return result


def test_signin_token_then_login_page(aws: LocalAws, granted: dict[str, Any]) -> None:
    answer = get(aws, Action="getSigninToken", Session=session(granted["Credentials"]), SessionDuration="43200")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    page = get(aws, Action="login", Issuer="https://broker.example/<b>", SigninToken=answer.json()["SigninToken"],
               Destination="https://console.aws.amazon.com/?x=<script>")
    assert page.status_code == 200
    assert f"Signed in to the AWS console (local) as {granted['AssumedRoleUser']['Arn']}" in page.text
    assert "https://broker.example/&lt;b&gt;" in page.text and "x=&lt;script&gt;" in page.text
    assert "<script>" not in page.text


def test_post_form_is_accepted(aws: LocalAws, granted: dict[str, Any]) -> None:
    answer = httpx.post(aws.federation_url, data={"Action": "getSigninToken", "Session": session(
        granted["Credentials"])}, trust_env=False)
    assert answer.status_code == 200 and answer.json()["SigninToken"]


@pytest.mark.parametrize("changes", [
    {"sessionId": "ASIAFAKEFAKEFAKEFAKE", "sessionKey": "fake", "sessionToken": "fake"},
    {"sessionKey": "not-the-secret"},
    {"sessionToken": "not-the-token"},
    {"sessionToken": None},
], ids=["invented", "wrong-secret", "wrong-token", "missing-token"])
def test_credentials_that_were_not_issued(aws: LocalAws, granted: dict[str, Any], changes: dict[str, Any]) -> None:
    answer = get(aws, Action="getSigninToken", Session=session(granted["Credentials"], **changes))
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/plain")


def test_long_term_user_keys_are_refused(aws: LocalAws) -> None:
    iam = client(aws, "iam")
    iam.create_user(UserName="console-user-keys")
    key = iam.create_access_key(UserName="console-user-keys")["AccessKey"]
    fake = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"], "SessionToken": "none"}
    assert get(aws, Action="getSigninToken", Session=session(fake)).status_code == 400


@pytest.mark.parametrize("duration", ["899", "43201", "3600s", "-900"])
def test_session_duration_out_of_range(aws: LocalAws, granted: dict[str, Any], duration: str) -> None:
    answer = get(aws, Action="getSigninToken", Session=session(granted["Credentials"]), SessionDuration=duration)
    assert answer.status_code == 400


def test_session_not_json(aws: LocalAws) -> None:
    assert get(aws, Action="getSigninToken", Session="{not json").status_code == 400


def test_garbage_token_at_login(aws: LocalAws) -> None:
    answer = get(aws, Action="login", SigninToken="garbage", Destination="https://console.aws.amazon.com/")
    assert answer.status_code == 400


@pytest.mark.parametrize("destination", [
    "/console", "javascript:alert(1)", "", "http://console.aws.amazon.com/", "https://evil.example/",
    "https://console.aws.amazon.com.evil.example/", "https://console.aws.amazon.com:8443/",
    "https://user@console.aws.amazon.com/", "https://CONSOLE.aws.amazon.com/", "https://evil.console.aws.amazon.com/",
    "https://console.amazonaws-us-gov.com/", "https://console.amazonaws.cn/", "https:\\\\console.aws.amazon.com/",
    "https://console.aws.amazon.com/\\evil", "https://console.aws.amazon.com/\r\nX: y", "//console.aws.amazon.com/",
])
def test_destination_must_be_the_partitions_console(aws: LocalAws, granted: dict[str, Any], destination: str) -> None:
    """An https URL of the console of the session's partition (here aws), its global or a regional host; the
    refused login is not recorded."""
    token = get(aws, Action="getSigninToken", Session=session(granted["Credentials"])).json()["SigninToken"]
    before = aws.federation_logins()
    answer = get(aws, Action="login", SigninToken=token, Destination=destination)
    assert answer.status_code == 400 and "https URL of the aws console" in answer.text
    assert aws.federation_logins() == before


@pytest.mark.parametrize("destination", ["https://console.aws.amazon.com/ec2/home",
                                         "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"])
def test_the_login_records_the_destination_it_received(aws: LocalAws, granted: dict[str, Any],
                                                       destination: str) -> None:
    token = get(aws, Action="getSigninToken", Session=session(granted["Credentials"])).json()["SigninToken"]
    page = get(aws, Action="login", SigninToken=token, Destination=destination, Issuer="https://broker.example/")
    assert page.status_code == 200
    last = aws.federation_logins()[-1]
    assert (last.arn, last.destination, last.issuer) == (granted["AssumedRoleUser"]["Arn"], destination,
                                                          "https://broker.example/")


def test_unknown_action(aws: LocalAws) -> None:
    assert get(aws, Action="getFederationToken").status_code == 400


def test_role_chaining_caps_the_console_at_one_hour(aws: LocalAws, granted: dict[str, Any], trusted_role: str,
                                                    make_role: MakeRole) -> None:
    # AssumeRole signed with the web identity session's credentials is role chaining; the front notes the chain.
    target = make_role({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": trusted_role}})
    sts = client(aws, "sts", session_credentials(granted["Credentials"]))
    chained = sts.assume_role(RoleArn=target, RoleSessionName="hop")["Credentials"]
    assert get(aws, Action="getSigninToken", Session=session(chained), SessionDuration="7200").status_code == 400
    assert get(aws, Action="getSigninToken", Session=session(chained), SessionDuration="3600").status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_signin_token_lasts_fifteen_minutes() -> None:
    clock = FakeClock()
    ledger = CredentialLedger(clock)
    issued = IssuedCredentials("ASIAEXAMPLE", "secret", "token", clock.now + 3600,
                               "arn:aws:sts::210987654321:assumed-role/R/s")
    ledger.record(issued)
    endpoint = FederationEndpoint(ledger, lambda creds: creds.arn, clock)
    reply = endpoint.handle({"Action": "getSigninToken", "Session": json.dumps(
        {"sessionId": "ASIAEXAMPLE", "sessionKey": "secret", "sessionToken": "token"})})
    login = {"Action": "login", "SigninToken": json.loads(reply.body)["SigninToken"],
             "Destination": "https://console.aws.amazon.com/"}
    clock.now += 899
    assert endpoint.handle(login).status == 200
    clock.now += 2
    assert endpoint.handle(login).status == 400


def test_expired_credentials_get_no_token() -> None:
    clock = FakeClock()
    ledger = CredentialLedger(clock)
    ledger.record(IssuedCredentials("ASIAEXAMPLE", "secret", "token", clock.now + 10,
                                    "arn:aws:sts::210987654321:assumed-role/R/s"))
    endpoint = FederationEndpoint(ledger, lambda creds: creds.arn, clock)
    clock.now += 11
    reply = endpoint.handle({"Action": "getSigninToken", "Session": json.dumps(
        {"sessionId": "ASIAEXAMPLE", "sessionKey": "secret", "sessionToken": "token"})})
    assert reply.status == 400


@pytest.mark.parametrize(("partition", "accepted", "refused"), [
    ("aws-us-gov", "https://us-gov-west-1.console.amazonaws-us-gov.com/ec2/home", "https://console.aws.amazon.com/"),
    ("aws-cn", "https://console.amazonaws.cn/s3/home", "https://console.amazonaws-us-gov.com/"),
])
def test_other_partitions_land_on_their_own_console(partition: str, accepted: str, refused: str) -> None:
    clock = FakeClock()
    ledger = CredentialLedger(clock)
    ledger.record(IssuedCredentials("ASIAEXAMPLE", "secret", "token", clock.now + 3600,
                                    f"arn:{partition}:sts::210987654321:assumed-role/R/s"))
    endpoint = FederationEndpoint(ledger, lambda creds: creds.arn, clock)

    def login(destination: str) -> int:
        reply = endpoint.handle({"Action": "getSigninToken", "Session": json.dumps(
            {"sessionId": "ASIAEXAMPLE", "sessionKey": "secret", "sessionToken": "token"})})
        token = json.loads(reply.body)["SigninToken"]
        return endpoint.handle({"Action": "login", "SigninToken": token, "Destination": destination}).status

    assert (login(refused), login(accepted)) == (400, 200)
    assert [entry.destination for entry in endpoint.logins()] == [accepted]
