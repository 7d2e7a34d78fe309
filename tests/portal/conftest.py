"""The portal suite's stack: the devstack in its own moto account (373737373737), with a console allow-list
that has a fragment destination and a region of another partition (so both refusals are reachable)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.devstack.iam_paths import broker_user_arn, iam_in, trust_principal
from broker.devstack.stack import DevStack, run_stack

ACCOUNT = "373737373737"
RULES = Path(__file__).with_name("rules.yaml")
DEVELOPER = f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper"
BROKERED = f"arn:aws:iam::{ACCOUNT}:role/PortalBrokered"
CONSOLE = {"destinations": {"ec2": "/ec2/home", "s3": "/s3/home", "ec2-instances": "/ec2/home#Instances:"},
           "regions": ["us-east-1", "eu-west-1", "us-gov-west-1"]}
JSON = {"Accept": "application/json"}


@dataclass(frozen=True)
class Portal:
    dev: DevStack

    @property
    def url(self) -> str:
        return self.dev.broker_url

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.dev.audit_path.read_text().splitlines()]

    def issued(self) -> int:
        return sum(e["event"] in ("credentials_issued", "console_issued") for e in self.events())


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    workdir = tmp_path_factory.mktemp("portal")
    overrides = {"console": CONSOLE, "rate_limits": {"login_starts": 100000}}
    with run_stack(workdir, rules=RULES, account_id=ACCOUNT, overrides=overrides) as dev:
        iam_in(dev.aws).create_role(RoleName="PortalBrokered",
                                    AssumeRolePolicyDocument=trust_principal(broker_user_arn(ACCOUNT)))
        yield Portal(dev)
