from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.devstack.stack import SAML_PROVIDER_NAME, DevStack, aws_client, run_stack, saml_trust_policy
from tests.support.token_issuer import TokenIssuer, running_issuer

FLOW_RULES = Path(__file__).with_name("rules.yaml")
UNTRUSTED_ROLE = "arn:aws:iam::123456789012:role/Untrusted"
ADMIN_TOKEN = secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def handmade_idp() -> Iterator[TokenIssuer]:
    """An OIDC provider whose token endpoint returns whatever token a test put there."""
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, handmade_idp: TokenIssuer) -> Iterator[DevStack]:
    handmade = {"id": "handmade", "type": "oidc", "name": "Hand-made IdP", "issuer": handmade_idp.url,
                "client_id": "client-1", "client_secret": "handmade-client-secret"}
    with run_stack(tmp_path_factory.mktemp("stack"), rules=FLOW_RULES, extra_idps={"handmade": handmade},
                   overrides={"rate_limits": {"login_starts": 100000},
                                              "admin": {"token": ADMIN_TOKEN}}) as stack:
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/other.example.com"}}]}
        aws_client(stack.aws, "iam").create_role(RoleName="Untrusted", AssumeRolePolicyDocument=json.dumps(trust))
        # Granted via saml in rules.yaml; trusts the broker's IAM SAML provider (registered by run_stack).
        aws_client(stack.aws, "iam").create_role(RoleName="SamlOnly", AssumeRolePolicyDocument=saml_trust_policy(
            f"arn:aws:iam::{stack.aws.account_id}:saml-provider/{SAML_PROVIDER_NAME}"))
        yield stack


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]
