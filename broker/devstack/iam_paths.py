"""What a platform team sets up in IAM for the AssumeRole and GetFederationToken paths, on the strict local AWS:

- the broker's own IAM user with an access key (the broker finds it as any SDK would: a shared credentials
  file and a profile, written into the work directory and named in broker.yaml), allowed to call
  sts:AssumeRole and sts:GetFederationToken;
- spoke roles in another account that trust a hub role (a role chain), and the hub role's identity policy
  allowing it to assume them (cross-account AssumeRole needs both sides).

Everything goes through the front, so the front learns the access key's secret and verifies the broker's
SigV4 signatures with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from broker.devstack.local_aws import LocalAws

BROKER_USER = "sts-broker"
BROKER_PROFILE = "sts-broker"
CREDENTIALS_FILE = "aws-credentials"
CHAIN_ACTIONS = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]


def _pin(account: str, request: Any, **_: Any) -> None:
    request.headers["x-moto-account-id"] = account


def iam_in(aws: LocalAws, account: str | None = None) -> Any:
    """An IAM client for `account` (default: the stack's), through the front, with setup-only dummy keys."""
    client = boto3.client("iam", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.meta.events.register_first("before-sign", partial(_pin, account or aws.account_id))
    return client


def spoke_account(account: str) -> str:
    """The demo's spoke account for a stack's (hub) account: its digits reversed (123456789012 -> 210987654321),
    so stacks with different accounts in one process never share a spoke."""
    return account[::-1]


def register_broker_user(aws: LocalAws, workdir: Path) -> dict[str, str]:
    """The broker's IAM user and access key, written as a shared credentials file; the broker.yaml `aws` keys
    that point at it."""
    iam = iam_in(aws)
    iam.create_user(UserName=BROKER_USER)
    iam.put_user_policy(UserName=BROKER_USER, PolicyName="broker", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": [*CHAIN_ACTIONS, "sts:GetFederationToken"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName=BROKER_USER)["AccessKey"]
    path = workdir / CREDENTIALS_FILE
    path.write_text(f"[{BROKER_PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\n"
                    f"aws_secret_access_key = {key['SecretAccessKey']}\n")
    path.chmod(0o600)
    return {"credentials_profile": BROKER_PROFILE, "credentials_file": CREDENTIALS_FILE}


def broker_user_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:user/{BROKER_USER}"


def trust_principal(principal_arn: str, actions: Iterable[str] = CHAIN_ACTIONS,
                    condition: dict[str, Any] | None = None) -> str:
    """A trust policy allowing one AWS principal (the hub role: every session of it; or the broker's user)."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def register_spoke(aws: LocalAws, hub_role: str, account: str, name: str, *, max_seconds: int = 3600) -> str:
    """A role in `account` that trusts `hub_role` (in the stack's account), and the hub's identity policy
    allowing it to assume the new role."""
    spoke = iam_in(aws, account).create_role(RoleName=name, AssumeRolePolicyDocument=trust_principal(hub_role),
                                             MaxSessionDuration=max_seconds)["Role"]["Arn"]
    iam_in(aws).put_role_policy(RoleName=hub_role.rsplit("/", 1)[-1], PolicyName=f"chain-to-{account}-{name}",
                                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                                    "Effect": "Allow", "Action": CHAIN_ACTIONS, "Resource": spoke}]}))
    return str(spoke)
