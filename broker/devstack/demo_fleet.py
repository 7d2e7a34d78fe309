"""The demo's many accounts: enough roles for the picker to be worth a filter (alice: 40 roles in 12
accounts). Each fleet role is granted `via: assume_role` in the rules file and trusts the broker's own IAM
user, so every one of them really issues on the strict local AWS.

The roles are read from the rules file (grants via assume_role without `from:` in accounts other than the
stack's own), so the file stays the one list. moto's accounts are per process: a second stack in the same
process finds the roles there already and points their trust at its own broker user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from broker.devstack.iam_paths import broker_user_arn, iam_in, trust_principal
from broker.devstack.local_aws import LocalAws

FLEET_MAX_SECONDS = 12 * 3600


def fleet_roles(rules: Path, own_accounts: set[str]) -> list[str]:
    """Role ARNs granted via assume_role (no chain) outside `own_accounts`, in file order, once each."""
    data: dict[str, Any] = yaml.safe_load(rules.read_text())
    defaults = data.get("defaults") or {}
    found: list[str] = []
    for rule in data.get("rules") or []:
        for grant in rule.get("grant") or []:
            role, via = grant.get("role"), grant.get("via", defaults.get("via"))
            if (role and via == "assume_role" and "from" not in grant and role.split(":")[4] not in own_accounts
                    and role not in found):
                found.append(role)
    return found


def register_fleet(aws: LocalAws, rules: Path, spoke: str) -> int:
    """Create (or re-trust) every fleet role; returns how many."""
    trust = trust_principal(broker_user_arn(aws.account_id))
    roles = fleet_roles(rules, {aws.account_id, spoke})
    clients: dict[str, Any] = {}
    for arn in roles:
        account, name = arn.split(":")[4], arn.rsplit("/", 1)[-1]
        iam = clients.setdefault(account, iam_in(aws, account))
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, MaxSessionDuration=FLEET_MAX_SECONDS)
        except iam.exceptions.EntityAlreadyExistsException:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    return len(roles)
