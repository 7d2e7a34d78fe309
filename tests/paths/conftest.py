"""A stack of its own for the STS paths (its own account, so moto's process-wide IAM stays apart): the IAM set
up from the policies in examples/iam/ (the account ids and the broker's provider filled in), then the broker
with tests/paths/rules.yaml (written for these account ids)."""

from __future__ import annotations

import configparser
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.devstack.iam_paths import CREDENTIALS_FILE, broker_user_arn, iam_in, trust_principal
from broker.devstack.stack import SAML_PROVIDER_NAME, DevStack, run_stack, saml_trust_policy

ACCOUNT, SPOKE_A, SPOKE_B = "457457457457", "600000000001", "600000000002"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "iam"
HUB = f"arn:aws:iam::{ACCOUNT}:role/PathsHub"


def role(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def example(name: str, **replace: str) -> str:
    """An example policy with the example account, provider and principals replaced by this stack's."""
    text = (EXAMPLES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    json.loads(text)
    return text


def _setup_iam(stack: DevStack) -> None:
    iam = iam_in(stack.aws)
    provider = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    host = provider.split(":oidc-provider/", 1)[1]
    hub_trust = example("hub-trust-policy.json", **{
        "arn:aws:iam::111122223333:oidc-provider/broker.example.com": provider,
        "broker.example.com:": f"{host}:", "okta:*": "dev:*"})
    for name in ("PathsHub", "AdminHub"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=hub_trust)
        iam.put_role_policy(RoleName=name, PolicyName="chain", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                "sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "Resource": "*"}]}))
    iam.create_role(RoleName="SamlHub", AssumeRolePolicyDocument=saml_trust_policy(
        f"arn:aws:iam::{ACCOUNT}:saml-provider/{SAML_PROVIDER_NAME}"))
    iam.put_role_policy(RoleName="SamlHub", PolicyName="chain", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "Resource": "*"}]}))
    iam_in(stack.aws, SPOKE_A).create_role(RoleName="FromSaml", AssumeRolePolicyDocument=trust_principal(
        role(ACCOUNT, "SamlHub")))
    hub = {"arn:aws:iam::111122223333:role/Hub": HUB}
    iam_in(stack.aws, SPOKE_A).create_role(RoleName="Developer",
                                           AssumeRolePolicyDocument=example("spoke-trust-policy.json", **hub))
    iam_in(stack.aws, SPOKE_B).create_role(
        RoleName="Sandbox", AssumeRolePolicyDocument=example("spoke-trust-policy-external-id.json", **hub))
    # Trusts the hub but not for sts:TagSession, which the hub's transitive tag needs when it is carried.
    iam_in(stack.aws, SPOKE_A).create_role(RoleName="ChainNoTag", AssumeRolePolicyDocument=trust_principal(
        HUB, ["sts:AssumeRole", "sts:SetSourceIdentity"]))
    broker_trust = example("broker-assumed-trust-policy.json",
                           **{"arn:aws:iam::111122223333:user/sts-broker": broker_user_arn(ACCOUNT)})
    for name in ("Auditor", "WrongExternalId"):
        iam.create_role(RoleName=name, Path="/brokered/", AssumeRolePolicyDocument=broker_trust,
                        MaxSessionDuration=4 * 3600)
    iam.create_role(RoleName="NoTagSession", AssumeRolePolicyDocument=trust_principal(
        broker_user_arn(ACCOUNT), ["sts:AssumeRole"]))


@pytest.fixture(scope="module")
def paths_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    workdir = tmp_path_factory.mktemp("paths")
    with run_stack(workdir / "stack", rules=Path(__file__).with_name("rules.yaml"), account_id=ACCOUNT,
                   overrides={"rate_limits": {"login_starts": 100000}}) as stack:
        _setup_iam(stack)
        yield stack


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]


def broker_key_id(stack: DevStack) -> str:
    """The access key id of the broker's own IAM user, as the stack wrote it for the broker."""
    parser = configparser.ConfigParser()
    parser.read(stack.workdir / CREDENTIALS_FILE)
    return parser["sts-broker"]["aws_access_key_id"]
