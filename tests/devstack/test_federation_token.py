"""GetFederationToken against the strict local AWS (AWS's classic custom-broker call), built with botocore: only an
IAM user's long-term keys may call it; the federated user's credentials answer GetCallerIdentity, reach the console
without SessionDuration, and may call no other IAM or STS operation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from broker.devstack.local_aws import LocalAws
from tests.devstack.conftest import (
    ACCOUNT,
    MakeRole,
    client,
    identity_policy,
    refused_everywhere,
    session_credentials,
    trust_aws,
    user_arn,
    user_credentials,
)

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                             "Resource": "arn:aws:s3:::reports/*"}]})


@pytest.fixture
def user(aws: LocalAws) -> dict[str, str]:
    return user_credentials(aws, policy=identity_policy("sts:GetFederationToken", "sts:TagSession",
                                                        resource=f"arn:aws:sts::{ACCOUNT}:federated-user/*"))


def sts_as(aws: LocalAws, credentials: dict[str, str]) -> Any:
    return client(aws, "sts", credentials, parameter_validation=False)


@pytest.fixture
def federated(aws: LocalAws, user: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = sts_as(aws, user).get_federation_token(Name="bob@corp", Policy=POLICY,
                                                                    DurationSeconds=7200)
    return result


def test_federated_user_and_caller_identity(aws: LocalAws, federated: dict[str, Any]) -> None:
    arn = f"arn:aws:sts::{ACCOUNT}:federated-user/bob@corp"
    assert federated["FederatedUser"] == {"FederatedUserId": f"{ACCOUNT}:bob@corp", "Arn": arn}
    assert 0 < federated["PackedPolicySize"] <= 100
    credentials = federated["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
    assert 7000 < (credentials["Expiration"] - datetime.now(UTC)).total_seconds() <= 7200
    who = client(aws, "sts", session_credentials(credentials)).get_caller_identity()
    assert (who["Arn"], who["UserId"], who["Account"]) == (arn, f"{ACCOUNT}:bob@corp", ACCOUNT)


def test_every_call_gets_its_own_credentials(aws: LocalAws, user: dict[str, str]) -> None:
    first, second = (sts_as(aws, user).get_federation_token(Name="bob", Policy=POLICY)["Credentials"]
                     for _ in range(2))
    assert first["AccessKeyId"] != second["AccessKeyId"] and first["SecretAccessKey"] != second["SecretAccessKey"]
    assert 43000 < (first["Expiration"] - datetime.now(UTC)).total_seconds() <= 43200  # the default, 12 h


def test_thirty_six_hours_at_most(aws: LocalAws, user: dict[str, str]) -> None:
    result = sts_as(aws, user).get_federation_token(Name="bob", Policy=POLICY, DurationSeconds=129600)
    assert (result["Credentials"]["Expiration"] - datetime.now(UTC)).total_seconds() > 129000


@pytest.mark.parametrize(("extra", "code"), [
    ({"Name": "b"}, "ValidationError"),
    ({"Name": "x" * 33}, "ValidationError"),
    ({"Name": "bob smith"}, "ValidationError"),
    ({"DurationSeconds": 899}, "ValidationError"),
    ({"DurationSeconds": 129601}, "ValidationError"),
    ({"Policy": POLICY + " " * 2048}, "ValidationError"),
    ({"Policy": "[]"}, "MalformedPolicyDocument"),
    ({"Tags": [{"Key": f"k{n}", "Value": "v"} for n in range(51)]}, "ValidationError"),
    ({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}]}, "InvalidParameterValue"),
], ids=lambda v: str(v)[:50])
def test_parameter_refusals(aws: LocalAws, user: dict[str, str], extra: dict[str, Any], code: str) -> None:
    call = {"Name": "bob", "Policy": POLICY, **extra}
    refused_everywhere(lambda: sts_as(aws, user).get_federation_token(**call), code, 400)


@pytest.mark.parametrize(("policy", "extra"), [
    (None, {}),
    (identity_policy("sts:GetFederationToken"), {"Tags": [{"Key": "team", "Value": "blue"}]}),
    (identity_policy("sts:GetFederationToken", resource=f"arn:aws:sts::{ACCOUNT}:federated-user/alice"), {}),
    (identity_policy("sts:AssumeRole"), {}),
], ids=["no-policy", "tags-without-TagSession", "other-name", "other-action"])
def test_the_users_policy_must_allow_it(aws: LocalAws, policy: dict[str, Any] | None, extra: dict[str, Any]) -> None:
    user = user_credentials(aws, policy=policy)
    message = refused_everywhere(lambda: sts_as(aws, user).get_federation_token(Name="bob", Policy=POLICY, **extra),
                                 "AccessDenied", 403)
    assert message == (f"User: {user_arn(user, aws)} is not authorized to perform: sts:GetFederationToken on "
                       f"resource: arn:aws:sts::{ACCOUNT}:federated-user/bob")


def test_a_group_policy_counts(aws: LocalAws) -> None:
    user = user_credentials(aws)
    iam = client(aws, "iam")
    iam.create_group(GroupName="federators")
    iam.put_group_policy(GroupName="federators", PolicyName="p", PolicyDocument=json.dumps(
        identity_policy("sts:GetFederationToken")))
    iam.add_user_to_group(GroupName="federators", UserName=user_arn(user, aws).rsplit("/", 1)[-1])
    assert sts_as(aws, user).get_federation_token(Name="bob", Policy=POLICY)["FederatedUser"]


def test_role_sessions_cannot_call_it(aws: LocalAws, user: dict[str, str], make_role: MakeRole) -> None:
    role = make_role(trust_aws(user_arn(user, aws)))
    session = session_credentials(sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"])
    message = refused_everywhere(lambda: sts_as(aws, session).get_federation_token(Name="bob", Policy=POLICY),
                                 "AccessDenied", 403)
    assert message == "Cannot call GetFederationToken with session credentials"


def test_role_sessions_cannot_get_a_session_token(aws: LocalAws, user: dict[str, str], make_role: MakeRole) -> None:
    role = make_role(trust_aws(user_arn(user, aws)))
    session = session_credentials(sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"])
    message = refused_everywhere(lambda: sts_as(aws, session).get_session_token(), "AccessDenied", 403)
    assert message == "Cannot call GetSessionToken with session credentials"


def test_federated_users_cannot_call_it_again(aws: LocalAws, federated: dict[str, Any]) -> None:
    again = sts_as(aws, session_credentials(federated["Credentials"]))
    refused_everywhere(lambda: again.get_federation_token(Name="bob", Policy=POLICY), "AccessDenied", 403)


def test_dummy_keys_cannot_call_it(aws: LocalAws) -> None:
    dummy = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    refused_everywhere(lambda: sts_as(aws, dummy).get_federation_token(Name="bob", Policy=POLICY),
                       "InvalidClientTokenId", 403)


def test_wrong_secret(aws: LocalAws, user: dict[str, str]) -> None:
    secret = user["aws_secret_access_key"]
    forged = {**user, "aws_secret_access_key": ("y" if secret[0] == "x" else "x") + secret[1:]}
    refused_everywhere(lambda: sts_as(aws, forged).get_federation_token(Name="bob", Policy=POLICY),
                       "SignatureDoesNotMatch", 403)


def test_federated_credentials_cannot_call_iam_or_assume_roles(aws: LocalAws, federated: dict[str, Any],
                                                               user: dict[str, str], make_role: MakeRole) -> None:
    credentials = session_credentials(federated["Credentials"])
    role = make_role(trust_aws("*"))
    refused_everywhere(lambda: sts_as(aws, credentials).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "AccessDenied", 403)
    refused_everywhere(lambda: client(aws, "iam", credentials).list_users(), "AccessDenied", 403)


def test_wrong_session_token(aws: LocalAws, federated: dict[str, Any]) -> None:
    credentials = {**session_credentials(federated["Credentials"]), "aws_session_token": "forged"}
    refused_everywhere(lambda: client(aws, "sts", credentials).get_caller_identity(), "InvalidClientTokenId", 403)


def _signin(aws: LocalAws, credentials: dict[str, Any], **extra: str) -> httpx.Response:
    session = json.dumps({"sessionId": credentials["AccessKeyId"], "sessionKey": credentials["SecretAccessKey"],
                          "sessionToken": credentials["SessionToken"]})
    return httpx.get(aws.federation_url, params={"Action": "getSigninToken", "Session": session, **extra},
                     trust_env=False)


def test_console_sign_in_without_session_duration(aws: LocalAws, federated: dict[str, Any]) -> None:
    answer = _signin(aws, federated["Credentials"])
    assert answer.status_code == 200
    page = httpx.get(aws.federation_url, params={"Action": "login", "SigninToken": answer.json()["SigninToken"],
                                                 "Destination": "https://console.aws.amazon.com/"}, trust_env=False)
    assert f"as arn:aws:sts::{ACCOUNT}:federated-user/bob@corp" in page.text
    assert _signin(aws, federated["Credentials"], SessionDuration="3600").status_code == 400


def test_console_refuses_a_forged_federated_session(aws: LocalAws, federated: dict[str, Any]) -> None:
    forged = {**federated["Credentials"], "SecretAccessKey": "x" * 40}
    assert _signin(aws, forged).status_code == 400
