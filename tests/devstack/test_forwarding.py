"""Everything the front does not judge reaches moto unchanged: IAM, S3 bodies and HEAD, signed STS calls."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from werkzeug.test import Client

from broker.devstack.federation import CredentialLedger, FederationEndpoint
from broker.devstack.local_aws import LocalAws
from broker.devstack.sts_front import JwksCache, RoleInfo, StsFront
from tests.devstack.conftest import ACCOUNT, client


def test_loopback_only(aws: LocalAws) -> None:
    assert urlsplit(aws.endpoint_url).hostname == "127.0.0.1"
    assert aws.federation_url == f"{aws.endpoint_url}/federation" and aws.account_id == ACCOUNT


def test_dummy_credentials_land_in_the_local_account(aws: LocalAws) -> None:
    assert client(aws, "sts").get_caller_identity()["Account"] == ACCOUNT
    iam = client(aws, "iam")
    iam.create_user(UserName="forwarding-user")
    assert iam.get_user(UserName="forwarding-user")["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/forwarding-user"


def test_s3_bodies_and_head_pass_through(aws: LocalAws) -> None:
    s3 = client(aws, "s3")
    s3.create_bucket(Bucket="forwarding-bucket")
    body = os.urandom(300_000)  # binary, and large enough for botocore to stream it
    key = "dir/with space/ü+%2F.bin"
    s3.put_object(Bucket="forwarding-bucket", Key=key, Body=body)
    assert s3.get_object(Bucket="forwarding-bucket", Key=key)["Body"].read() == body
    assert s3.head_object(Bucket="forwarding-bucket", Key=key)["ContentLength"] == len(body)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="forwarding-bucket")["Contents"]] == [key]


def test_moto_errors_pass_through(aws: LocalAws) -> None:
    iam = client(aws, "iam")
    try:
        iam.get_role(RoleName="NoSuchRoleHere")
    except iam.exceptions.NoSuchEntityException as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    else:
        raise AssertionError("moto should not know this role")


class BrokenIam:
    def role(self, name: str) -> RoleInfo | None:
        raise RuntimeError("IAM is down")

    def client_ids(self, provider_arn: str) -> list[str] | None:
        raise RuntimeError("IAM is down")

    def saml_metadata(self, provider_arn: str) -> str | None:
        raise RuntimeError("IAM is down")


def test_unexpected_failure_is_an_aws_shaped_500() -> None:
    ledger = CredentialLedger()
    front = StsFront(moto_url="http://127.0.0.1:9", account_id=ACCOUNT, iam=BrokenIam(), ledger=ledger,
                     jwks=JwksCache(allow_http_loopback=True), allow_http_loopback=True,
                     federation=FederationEndpoint(ledger, lambda creds: None))
    form = {"Action": "AssumeRoleWithWebIdentity", "RoleSessionName": "alice",
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/R", "WebIdentityToken": "a.b.c"}
    try:
        answer = Client(front).post("/", data=form)
    finally:
        front.close()
    assert answer.status_code == 500
    assert "<Type>Receiver</Type><Code>InternalFailure</Code>" in answer.get_data(as_text=True)


def test_bogus_saml_call_is_refused_not_passed_to_moto() -> None:
    """The front judges AssumeRoleWithSAML itself (tests/saml_aws has the full contract); a made-up call for a role
    that does not exist is refused before moto, which would have accepted it."""
    import boto3
    import pytest
    from botocore.exceptions import ClientError

    from broker.devstack.local_aws import run_local_aws

    with run_local_aws(account_id="345678901234") as aws:
        sts = boto3.client("sts", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        with pytest.raises(ClientError) as err:
            sts.assume_role_with_saml(RoleArn="arn:aws:iam::345678901234:role/R",
                                      PrincipalArn="arn:aws:iam::345678901234:saml-provider/P",
                                      SAMLAssertion="PHNhbWw+bm90IGEgcmVhbCBhc3NlcnRpb248L3NhbWw+")
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
