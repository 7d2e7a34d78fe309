"""Role chaining against the strict local AWS: a web identity hub session (the way the broker gets one) calls
AssumeRole into a target role. One hour at most, SourceIdentity carried and fixed, transitive tags carried and
not overridable; cross-account targets; expired sessions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.web_identity_checks import SOURCE_IDENTITY_CLAIM, TAGS_CLAIM
from tests.devstack.conftest import (
    ACCOUNT,
    Issuer,
    MakeRole,
    allow,
    client,
    identity_policy,
    refused_everywhere,
    session_credentials,
    trust_aws,
    user_arn,
    user_credentials,
)

ALL = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
HUB_ACTIONS = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"]
TAGS = {"principal_tags": {"team": ["blue"], "cc": ["42"]}, "transitive_tag_keys": ["team"]}
OTHER_ACCOUNT = "444455556666"


@pytest.fixture
def hub_role(make_role: MakeRole, issuer: Issuer) -> str:
    return make_role(allow(issuer, actions=HUB_ACTIONS), max_session=43200)


@pytest.fixture
def hub(sts: Any, issuer: Issuer, hub_role: str, aws: LocalAws) -> Any:
    """An STS client signed with the hub session: web identity with tags (team transitive) and a source identity."""
    claims: dict[str, Any] = {TAGS_CLAIM: TAGS, SOURCE_IDENTITY_CLAIM: "alice"}
    token = issuer.token(**claims)
    session = sts.assume_role_with_web_identity(RoleArn=hub_role, RoleSessionName="alice", WebIdentityToken=token,
                                                DurationSeconds=43200)
    return client(aws, "sts", session_credentials(session["Credentials"]), parameter_validation=False)


def test_chained_session(hub: Any, hub_role: str, make_role: MakeRole, aws: LocalAws) -> None:
    target = make_role(trust_aws(hub_role, actions=ALL), max_session=43200)
    result = hub.assume_role(RoleArn=target, RoleSessionName="alice-spoke", DurationSeconds=3600)
    assert result["SourceIdentity"] == "alice"  # carried from the first hop
    who = client(aws, "sts", session_credentials(result["Credentials"])).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{target.rsplit('/', 1)[-1]}/alice-spoke"


def test_chained_duration_is_capped_at_one_hour(hub: Any, hub_role: str, make_role: MakeRole) -> None:
    target = make_role(trust_aws(hub_role, actions=ALL), max_session=43200)  # the role would allow 12 hours
    message = refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x1", DurationSeconds=7200),
                                 "ValidationError", 400)
    assert message == ("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
                       "chaining.")


def test_source_identity_cannot_change(hub: Any, hub_role: str, make_role: MakeRole) -> None:
    target = make_role(trust_aws(hub_role, actions=ALL))
    refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x1", SourceIdentity="mallory"),
                       "AccessDenied", 403)
    assert hub.assume_role(RoleArn=target, RoleSessionName="x1", SourceIdentity="alice")["SourceIdentity"] == "alice"


@pytest.mark.parametrize("key", ["team", "TEAM"])
def test_transitive_tags_cannot_be_overridden(hub: Any, hub_role: str, make_role: MakeRole, key: str) -> None:
    target = make_role(trust_aws(hub_role, actions=ALL))
    refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x1",
                                               Tags=[{"Key": key, "Value": "red"}]), "InvalidParameterValue", 400)


@pytest.mark.parametrize("missing", ["sts:TagSession", "sts:SetSourceIdentity"])
def test_carried_values_need_their_actions(hub: Any, hub_role: str, make_role: MakeRole, missing: str) -> None:
    target = make_role(trust_aws(hub_role, actions=[a for a in ALL if a != missing]))
    refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x1"), "AccessDenied", 403)


def test_only_transitive_tags_travel(hub: Any, hub_role: str, make_role: MakeRole, aws: LocalAws) -> None:
    middle = make_role(trust_aws(hub_role, actions=ALL))
    second = session_credentials(hub.assume_role(RoleArn=middle, RoleSessionName="x1")["Credentials"])
    second_sts = client(aws, "sts", second, parameter_validation=False)
    carried = make_role(trust_aws(middle, actions=ALL, condition={"StringEquals": {"aws:PrincipalTag/team": "blue"}}))
    assert second_sts.assume_role(RoleArn=carried, RoleSessionName="x2")["SourceIdentity"] == "alice"
    dropped = make_role(trust_aws(middle, actions=ALL, condition={"StringEquals": {"aws:PrincipalTag/cc": "42"}}))
    refused_everywhere(lambda: second_sts.assume_role(RoleArn=dropped, RoleSessionName="x2"), "AccessDenied", 403)


def test_principal_tags_of_the_hub_session(hub: Any, hub_role: str, make_role: MakeRole) -> None:
    role = make_role(trust_aws(hub_role, actions=ALL, condition={"StringEquals": {"aws:PrincipalTag/cc": "42"}}))
    assert hub.assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"]
    wrong = make_role(trust_aws(hub_role, actions=ALL, condition={"StringEquals": {"aws:PrincipalTag/cc": "43"}}))
    refused_everywhere(lambda: hub.assume_role(RoleArn=wrong, RoleSessionName="x1"), "AccessDenied", 403)


def test_a_role_trusting_another_role_does_not_trust_this_one(hub: Any, make_role: MakeRole, issuer: Issuer) -> None:
    other_hub = make_role(allow(issuer))
    target = make_role(trust_aws(other_hub, actions=ALL))
    refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x1"), "AccessDenied", 403)


def _other_account_iam(aws: LocalAws) -> Any:
    iam = client(aws, "iam")
    iam.meta.events.register_first("before-sign", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", OTHER_ACCOUNT))
    return iam


def test_cross_account_target(hub: Any, hub_role: str, aws: LocalAws) -> None:
    name = f"spoke-{uuid.uuid4().hex[:8]}"
    document = {"Version": "2012-10-17", "Statement": [trust_aws(hub_role, actions=ALL)]}
    created = _other_account_iam(aws).create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))
    arn = created["Role"]["Arn"]
    assert arn == f"arn:aws:iam::{OTHER_ACCOUNT}:role/{name}"
    # Another account's role: the hub role's own policy must allow the call too, whatever the trust policy says.
    refused_everywhere(lambda: hub.assume_role(RoleArn=arn, RoleSessionName="alice-spoke"), "AccessDenied", 403)
    client(aws, "iam").put_role_policy(RoleName=hub_role.rsplit("/", 1)[-1], PolicyName="spokes",
                                       PolicyDocument=json.dumps(identity_policy(*ALL, resource=arn)))
    result = hub.assume_role(RoleArn=arn, RoleSessionName="alice-spoke")
    who = client(aws, "sts", session_credentials(result["Credentials"])).get_caller_identity()
    assert who["Account"] == OTHER_ACCOUNT
    assert who["Arn"] == f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/{name}/alice-spoke"
    console = {"sessionId": result["Credentials"]["AccessKeyId"], "sessionKey": result["Credentials"][
        "SecretAccessKey"], "sessionToken": result["Credentials"]["SessionToken"]}
    for duration, status in (("3600", 200), ("3601", 400)):  # chained: the console is capped at one hour too
        answer = httpx.get(aws.federation_url, params={"Action": "getSigninToken", "Session": json.dumps(console),
                                                       "SessionDuration": duration}, trust_env=False)
        assert answer.status_code == status
    wrong_account = f"arn:aws:iam::{ACCOUNT}:role/{name}"  # same name, wrong account: no such role
    refused_everywhere(lambda: hub.assume_role(RoleArn=wrong_account, RoleSessionName="x1"), "AccessDenied", 403)


def test_chained_session_from_user_keys_is_not_chained(aws: LocalAws, make_role: MakeRole) -> None:
    """An IAM user's AssumeRole is not role chaining: up to the role's maximum."""
    user = user_credentials(aws)
    role = make_role(trust_aws(user_arn(user, aws)), max_session=7200)
    sts = client(aws, "sts", user)
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="x1", DurationSeconds=7200)["Credentials"]
    console = json.dumps({"sessionId": credentials["AccessKeyId"], "sessionKey": credentials["SecretAccessKey"],
                          "sessionToken": credentials["SessionToken"]})
    answer = httpx.get(aws.federation_url, params={"Action": "getSigninToken", "Session": console,
                                                   "SessionDuration": "43200"}, trust_env=False)
    assert answer.status_code == 200  # not chained: the console may last 12 hours


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def clocked() -> Iterator[tuple[LocalAws, Clock]]:
    clock = Clock()
    with run_local_aws(account_id="777788889999", clock=clock) as local:
        yield local, clock


def test_expired_session_and_stale_signatures(clocked: tuple[LocalAws, Clock]) -> None:
    aws, clock = clocked
    user = user_credentials(aws)
    trust = {"Version": "2012-10-17", "Statement": [trust_aws(user_arn(user, aws))]}
    role = client(aws, "iam").create_role(RoleName="clocked", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    chained_trust = {"Version": "2012-10-17", "Statement": [trust_aws(role)]}
    target = client(aws, "iam").create_role(RoleName="clocked-target",
                                            AssumeRolePolicyDocument=json.dumps(chained_trust))["Role"]["Arn"]
    session = client(aws, "sts", user).assume_role(RoleArn=role, RoleSessionName="x1", DurationSeconds=900)
    hub = client(aws, "sts", session_credentials(session["Credentials"]))
    clock.offset = 901  # the session has expired by the front's clock
    message = refused_everywhere(lambda: hub.assume_role(RoleArn=target, RoleSessionName="x2"), "ExpiredToken", 403)
    assert message == "The security token included in the request is expired"
    clock.offset = 16 * 60  # a request signed 16 minutes ago
    message = refused_everywhere(lambda: client(aws, "sts", user).assume_role(RoleArn=role, RoleSessionName="x3"),
                                 "SignatureDoesNotMatch", 403)
    assert message.startswith("Signature expired")
    clock.offset = 0
    assert client(aws, "sts", user).assume_role(RoleArn=role, RoleSessionName="x3")["Credentials"]
