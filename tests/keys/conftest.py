"""A strict local AWS (moto behind the front, its KMS Sign DIGEST as AWS does it) on this suite's account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from broker.devstack.local_aws import LocalAws, run_local_aws

ACCOUNT = "320987654321"
REGION = "eu-west-1"


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAws]:
    with run_local_aws(account_id=ACCOUNT) as local:
        yield local


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's KMS client finds credentials through botocore's chain; the local AWS accepts any."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def client(aws: LocalAws, service: str, region: str = REGION) -> Any:
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}))


def kms_key(aws: LocalAws, spec: str = "RSA_2048", usage: str = "SIGN_VERIFY") -> str:
    key_id: str = client(aws, "kms").create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    return key_id
