"""AssumeRole and GetFederationToken on both STS transports (the event-loop client and boto3), against the
strict local AWS, which recomputes each SigV4 signature with the secret it issued: credentials that work, and
the same refusal from both for a wrong secret, a wrong ExternalId and a role session asking for a federation
token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from broker.devstack.iam_paths import broker_user_arn, iam_in, trust_principal
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.stack import aws_client
from broker.errors import BrokerError
from broker.grants import RoleGrant
from broker.issuers.credentials import CallerKeys, Credentials
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.settings import AwsConfig

ACCOUNT = "700000000001"
TARGET = f"arn:aws:iam::{ACCOUNT}:role/Target"
POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
# The session policy limits the session, so a chain from it needs sts:AssumeRole (and the carried tag and
# SourceIdentity their actions) there.
CHAIN_POLICY = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","sts:AssumeRole",'
                '"sts:TagSession","sts:SetSourceIdentity"],"Resource":"*"}]}')
GRANT = RoleGrant(TARGET, "assume_role", None, "alice@example.com", "alice@example.com", timedelta(hours=1),
                  tags={"team": "platform"}, transitive_tags=("team",), policy=CHAIN_POLICY, external_id="ext-42")
FEDERATED = RoleGrant(f"arn:aws:iam::{ACCOUNT}:role/Console", "federation_token", None, "alice", None,
                      timedelta(hours=2), policy=POLICY)
Transport = Callable[[AwsConfig], HttpStsClient | StsClient]
TRANSPORTS: list[Transport] = [lambda aws: HttpStsClient(aws, max_connections=2), StsClient]


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[LocalAws, CallerKeys]]:
    with run_local_aws(account_id=ACCOUNT) as local:
        iam = iam_in(local)
        iam.create_user(UserName="sts-broker")
        iam.put_user_policy(UserName="sts-broker", PolicyName="broker", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:GetFederationToken",
                                                    "Resource": "*"}]}))
        key = iam.create_access_key(UserName="sts-broker")["AccessKey"]
        iam.create_role(RoleName="Target", AssumeRolePolicyDocument=trust_principal(
            broker_user_arn(ACCOUNT), condition={"StringEquals": {"sts:ExternalId": "ext-42"}}))
        iam.create_role(RoleName="Spoke", AssumeRolePolicyDocument=trust_principal(TARGET))  # a chain's next hop
        yield local, CallerKeys(key["AccessKeyId"], key["SecretAccessKey"])


def call(transport: Transport, local: LocalAws,
         work: Callable[[HttpStsClient | StsClient], Awaitable[Credentials]]) -> Credentials | BrokerError:
    async def run() -> Credentials | BrokerError:
        client = transport(AwsConfig(sts_endpoint_url=local.endpoint_url))
        try:
            return await work(client)
        except BrokerError as exc:
            return exc
        finally:
            await client.close()
    return asyncio.run(asyncio.wait_for(run(), 30))


def identity_of(local: LocalAws, creds: Credentials) -> dict[str, Any]:
    sts = aws_client(local, "sts", aws_access_key_id=creds.access_key_id,
                     aws_secret_access_key=creds.secret_access_key, aws_session_token=creds.session_token)
    found: dict[str, Any] = sts.get_caller_identity()
    return found


@pytest.mark.parametrize("transport", TRANSPORTS, ids=["event_loop", "boto3"])
def test_assume_role_and_a_federation_token_signed_with_the_callers_keys(
        aws: tuple[LocalAws, CallerKeys], transport: Transport) -> None:
    local, keys = aws
    creds = call(transport, local, lambda sts: sts.assume_role(GRANT, keys, source_identity="alice@example.com"))
    assert isinstance(creds, Credentials), creds
    assert identity_of(local, creds)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Target/alice@example.com"
    assert creds.assumed_role_arn.endswith("assumed-role/Target/alice@example.com")
    assert creds.caller_key_id == keys.access_key_id and not creds.chained  # an IAM user's keys: no chain
    # AssumeRole signed by that role session is a chain: into Spoke (which trusts Target) it works, carrying the
    # SourceIdentity and the transitive tag; Target itself trusts the user only.
    spoke = replace(GRANT, role_arn=f"arn:aws:iam::{ACCOUNT}:role/Spoke", tags={}, transitive_tags=(),
                    external_id=None, policy=None)
    chained = call(transport, local, lambda sts: sts.assume_role(spoke, CallerKeys.of(creds), source_identity=None))
    assert isinstance(chained, Credentials), chained
    assert chained.chained and chained.caller_key_id == creds.access_key_id
    assert identity_of(local, chained)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Spoke/alice@example.com"
    again = call(transport, local, lambda sts: sts.assume_role(
        replace(GRANT, tags={}, transitive_tags=()), CallerKeys.of(creds), source_identity=None))
    assert isinstance(again, BrokerError) and again.reason == "sts_access_denied"
    federated = call(transport, local, lambda sts: sts.get_federation_token(FEDERATED, keys))
    assert isinstance(federated, Credentials), federated
    assert federated.assumed_role_arn == identity_of(local, federated)["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:federated-user/alice"


@pytest.mark.parametrize(("name", "work"), [
    ("wrong secret", lambda sts, keys: sts.assume_role(GRANT, replace(keys, secret_access_key="x" * 40),
                                                       source_identity=None)),
    ("wrong ExternalId", lambda sts, keys: sts.assume_role(replace(GRANT, external_id="ext-43"), keys,
                                                           source_identity=None)),
    ("federation token with a made-up key", lambda sts, keys: sts.get_federation_token(
        FEDERATED, CallerKeys("AKIAIOSFODNN7EXAMPLE", "y" * 40))),
])
def test_both_transports_refuse_alike(aws: tuple[LocalAws, CallerKeys], name: str,
                                      work: Callable[[Any, CallerKeys], Awaitable[Credentials]]) -> None:
    local, keys = aws
    ours, boto = (call(t, local, lambda sts: work(sts, keys)) for t in TRANSPORTS)
    assert isinstance(ours, BrokerError) and isinstance(boto, BrokerError), name
    assert (type(ours), ours.reason, ours.public_message, ours.detail) == (
        type(boto), boto.reason, boto.public_message, boto.detail)
    assert ours.reason in {"sts_signature_does_not_match", "sts_access_denied", "sts_invalid_client_token_id"}
    assert keys.secret_access_key not in ours.detail
