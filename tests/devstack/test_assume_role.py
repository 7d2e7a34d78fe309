"""AssumeRole against the strict local AWS, built for real with botocore: who may call it (credentials the local
AWS issued, proven by a SigV4 signature made with the issued secret), what the trust policy must allow, and the
parameter checks, each refusal with AWS's code before moto issues anything."""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime
from typing import Any

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

ALL = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]


@pytest.fixture
def user(aws: LocalAws) -> dict[str, str]:
    return user_credentials(aws)


@pytest.fixture
def role(aws: LocalAws, make_role: MakeRole, user: dict[str, str]) -> str:
    return make_role(trust_aws(user_arn(user, aws), actions=ALL))


def sts_as(aws: LocalAws, credentials: dict[str, str]) -> Any:
    # botocore's own checks are off, so that the server's are the ones tested.
    return client(aws, "sts", credentials, parameter_validation=False)


def test_user_keys_assume_a_role_that_names_the_user(aws: LocalAws, user: dict[str, str], role: str) -> None:
    result = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="alice@example.com",
                                           SourceIdentity="alice", Tags=[{"Key": "team", "Value": "blue"}])
    name = role.rsplit("/", 1)[-1]
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/alice@example.com"
    assert result["AssumedRoleUser"]["AssumedRoleId"].endswith(":alice@example.com")
    assert result["SourceIdentity"] == "alice" and 0 < result["PackedPolicySize"] <= 100
    lifetime = (result["Credentials"]["Expiration"] - datetime.now(UTC)).total_seconds()
    assert 3000 < lifetime <= 3600
    who = client(aws, "sts", session_credentials(result["Credentials"])).get_caller_identity()
    assert who["Arn"] == result["AssumedRoleUser"]["Arn"] and who["Account"] == ACCOUNT


def test_duration_up_to_the_role_maximum(aws: LocalAws, make_role: MakeRole, user: dict[str, str]) -> None:
    role = make_role(trust_aws(user_arn(user, aws)), max_session=43200)
    result = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="long", DurationSeconds=43200)
    assert (result["Credentials"]["Expiration"] - datetime.now(UTC)).total_seconds() > 43000
    message = refused_everywhere(lambda: sts_as(aws, user).assume_role(
        RoleArn=role, RoleSessionName="long", DurationSeconds=43201), "ValidationError", 400)
    assert "less than or equal to 43200" in message


# --- who is calling -------------------------------------------------------------------------------------------

def test_dummy_keys_are_not_credentials(aws: LocalAws, role: str) -> None:
    message = refused_everywhere(lambda: sts_as(aws, {"aws_access_key_id": "testing", "aws_secret_access_key":
                                                      "testing"}).assume_role(RoleArn=role, RoleSessionName="x1"),
                                 "InvalidClientTokenId", 403)
    assert message == "The security token included in the request is invalid."


def test_wrong_secret(aws: LocalAws, user: dict[str, str], role: str) -> None:
    secret = user["aws_secret_access_key"]
    forged = {**user, "aws_secret_access_key": ("y" if secret[0] == "x" else "x") + secret[1:]}  # one char off
    message = refused_everywhere(lambda: sts_as(aws, forged).assume_role(RoleArn=role, RoleSessionName="x1"),
                                 "SignatureDoesNotMatch", 403)
    assert message.startswith("The request signature we calculated does not match")


def test_caller_identity_of_issued_keys_is_verified(aws: LocalAws, user: dict[str, str]) -> None:
    secret = user["aws_secret_access_key"]
    forged = {**user, "aws_secret_access_key": ("y" if secret[0] == "x" else "x") + secret[1:]}
    refused_everywhere(lambda: client(aws, "sts", forged).get_caller_identity(), "SignatureDoesNotMatch", 403)
    assert client(aws, "sts", user).get_caller_identity()["Arn"].startswith(f"arn:aws:iam::{ACCOUNT}:user/")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _tamper(sts: Any, change: Any) -> Any:
    def handler(request: Any, **_: Any) -> None:
        change(request)  # after signing: what arrives differs from what was signed

    sts.meta.events.register_last("before-send.sts.AssumeRole", handler)
    return sts


@pytest.mark.parametrize("change", [
    lambda r: setattr(r, "body", _text(r.body).replace("RoleSessionName=alice", "RoleSessionName=admin").encode()),
    lambda r: r.headers.__setitem__("Authorization", _text(r.headers["Authorization"])[:-4] + "0000"),
    lambda r: r.headers.__setitem__("X-Amz-Date", "20250101T000000Z"),
    lambda r: setattr(r, "url", r.url + "?Action=GetCallerIdentity"),
], ids=["body", "signature", "date", "query"])
def test_tampered_requests(aws: LocalAws, user: dict[str, str], role: str, change: Any) -> None:
    sts = _tamper(sts_as(aws, user), change)
    refused_everywhere(lambda: sts.assume_role(RoleArn=role, RoleSessionName="alice"), "SignatureDoesNotMatch", 403)


def test_unsigned_request(aws: LocalAws, role: str) -> None:
    from botocore import UNSIGNED

    sts = client(aws, "sts", signature_version=UNSIGNED)
    refused_everywhere(lambda: sts.assume_role(RoleArn=role, RoleSessionName="x1"), "MissingAuthenticationToken", 403)


def test_signature_scoped_to_another_service(aws: LocalAws, user: dict[str, str], role: str) -> None:
    sts = sts_as(aws, user)
    sts.meta.events.register_first("choose-signer.sts.AssumeRole", lambda **_: None)
    sts.meta.events.register_first("before-sign.sts.AssumeRole",
                                   lambda request, **_: request.context.setdefault("signing", {}).update(
                                       {"signing_name": "iam"}))
    message = refused_everywhere(lambda: sts.assume_role(RoleArn=role, RoleSessionName="x1"),
                                 "SignatureDoesNotMatch", 403)
    assert "scoped to correct service" in message


def test_long_term_key_with_a_session_token(aws: LocalAws, user: dict[str, str], role: str) -> None:
    refused_everywhere(lambda: sts_as(aws, {**user, "aws_session_token": "made-up"}).assume_role(
        RoleArn=role, RoleSessionName="x1"), "InvalidClientTokenId", 403)


@pytest.mark.parametrize("status", ["Inactive", "deleted"])
def test_revoked_user_keys(aws: LocalAws, user: dict[str, str], role: str, status: str) -> None:
    iam = client(aws, "iam")
    name = user_arn(user, aws).rsplit("/", 1)[-1]
    if status == "deleted":
        iam.delete_access_key(UserName=name, AccessKeyId=user["aws_access_key_id"])
    else:
        iam.update_access_key(UserName=name, AccessKeyId=user["aws_access_key_id"], Status=status)
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "InvalidClientTokenId", 403)


@pytest.mark.parametrize("token", ["forged", None], ids=["wrong-token", "no-token"])
def test_session_keys_need_their_own_token(aws: LocalAws, user: dict[str, str], role: str,
                                           make_role: MakeRole, token: str | None) -> None:
    session = session_credentials(sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="hub")["Credentials"])
    target = make_role(trust_aws(role))
    if token is None:
        session.pop("aws_session_token")
    else:
        session["aws_session_token"] = token
    refused_everywhere(lambda: sts_as(aws, session).assume_role(RoleArn=target, RoleSessionName="x1"),
                       "InvalidClientTokenId", 403)


# --- what the trust policy allows -----------------------------------------------------------------------------

def test_role_that_does_not_trust_the_caller(aws: LocalAws, make_role: MakeRole, user: dict[str, str]) -> None:
    other = make_role(trust_aws(f"arn:aws:iam::{ACCOUNT}:user/someone-else"))
    message = refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=other, RoleSessionName="x1"),
                                 "AccessDenied", 403)
    assert message == f"User: {user_arn(user, aws)} is not authorized to perform: sts:AssumeRole on resource: {other}"


def test_unknown_role_is_refused_like_an_untrusting_one(aws: LocalAws, user: dict[str, str]) -> None:
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole",
                                                             RoleSessionName="x1"), "AccessDenied", 403)


@pytest.mark.parametrize(("actions", "extra"), [
    (["sts:AssumeRole"], {"Tags": [{"Key": "team", "Value": "blue"}]}),
    (["sts:AssumeRole"], {"SourceIdentity": "alice"}),
    (["sts:AssumeRole", "sts:TagSession"], {"SourceIdentity": "alice"}),
    (["sts:AssumeRoleWithWebIdentity"], {}),
], ids=["tags-without-TagSession", "source-without-SetSourceIdentity", "source-with-TagSession-only",
        "other-action"])
def test_every_needed_action(aws: LocalAws, make_role: MakeRole, user: dict[str, str], actions: list[str],
                             extra: dict[str, Any]) -> None:
    role = make_role(trust_aws(user_arn(user, aws), actions=actions))
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", **extra),
                       "AccessDenied", 403)


@pytest.mark.parametrize(("external_id", "allowed"), [("ext-4711", True), ("ext-4712", False), (None, False)])
def test_external_id_condition(aws: LocalAws, make_role: MakeRole, user: dict[str, str], external_id: str | None,
                               allowed: bool) -> None:
    role = make_role(trust_aws(user_arn(user, aws), condition={"StringEquals": {"sts:ExternalId": "ext-4711"}}))
    extra = {"ExternalId": external_id} if external_id else {}
    if allowed:
        assert sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", **extra)["Credentials"]
    else:
        refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", **extra),
                           "AccessDenied", 403)


def test_principal_tag_condition_reads_the_users_tags(aws: LocalAws, make_role: MakeRole) -> None:
    tagged, untagged = user_credentials(aws), user_credentials(aws)
    client(aws, "iam").tag_user(UserName=user_arn(tagged, aws).rsplit("/", 1)[-1],
                                Tags=[{"Key": "dept", "Value": "eng"}])
    role = make_role(trust_aws([user_arn(tagged, aws), user_arn(untagged, aws)],
                               condition={"StringEquals": {"aws:PrincipalTag/dept": "eng"}}))
    assert sts_as(aws, tagged).assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"]
    refused_everywhere(lambda: sts_as(aws, untagged).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "AccessDenied", 403)


@pytest.mark.parametrize(("source", "allowed"), [("alice@corp", True), ("mallory@evil", False), (None, False)])
def test_source_identity_condition(aws: LocalAws, make_role: MakeRole, user: dict[str, str], source: str | None,
                                   allowed: bool) -> None:
    role = make_role(trust_aws(user_arn(user, aws), actions=ALL,
                               condition={"StringLike": {"sts:SourceIdentity": "*@corp"}}))
    extra = {"SourceIdentity": source} if source else {}
    if allowed:
        assert sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", **extra)["SourceIdentity"] == source
    else:
        refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", **extra),
                           "AccessDenied", 403)


def test_deny_wins(aws: LocalAws, make_role: MakeRole, user: dict[str, str]) -> None:
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:RoleSessionName": "root-ish"}}}
    role = make_role(trust_aws(user_arn(user, aws)), deny)
    assert sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="fine")["Credentials"]
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="root-ish"),
                       "AccessDenied", 403)


# --- parameters -----------------------------------------------------------------------------------------------

def _random_text(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


BIG_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::bucket/{_random_text(1900)}"}]})


@pytest.mark.parametrize(("extra", "code"), [
    ({"RoleSessionName": "has space"}, "ValidationError"),
    ({"RoleSessionName": "x" * 65}, "ValidationError"),
    ({"RoleSessionName": "a"}, "ValidationError"),
    ({"ExternalId": "a"}, "ValidationError"),
    ({"ExternalId": "no spaces allowed"}, "ValidationError"),
    ({"DurationSeconds": 899}, "ValidationError"),
    ({"DurationSeconds": 7200}, "ValidationError"),  # above the role's MaxSessionDuration (3600)
    ({"SourceIdentity": "has space"}, "ValidationError"),
    ({"SourceIdentity": "aws:reserved"}, "ValidationError"),  # the pattern has no colon
    ({"Tags": [{"Key": f"k{n}", "Value": "v"} for n in range(51)]}, "ValidationError"),
    ({"Tags": [{"Key": "k" * 129, "Value": "v"}]}, "ValidationError"),
    ({"Tags": [{"Key": "k", "Value": "v" * 257}]}, "ValidationError"),
    ({"Tags": [{"Key": "bad!", "Value": "v"}]}, "ValidationError"),
    ({"Tags": [{"Key": "Team", "Value": "a"}, {"Key": "team", "Value": "b"}]}, "InvalidParameterValue"),
    ({"Tags": [{"Key": "team", "Value": "a"}], "TransitiveTagKeys": ["other"]}, "InvalidParameterValue"),
    ({"PolicyArns": [{"arn": f"arn:aws:iam::aws:policy/P{n}"} for n in range(11)]}, "ValidationError"),
    ({"Policy": "{not json"}, "MalformedPolicyDocument"),
    ({"Policy": BIG_POLICY + " " * 200}, "PackedPolicyTooLarge"),
    ({"Tags": [{"Key": _random_text(128), "Value": _random_text(256)} for _ in range(40)]}, "PackedPolicyTooLarge"),
], ids=lambda v: str(v)[:60])
def test_parameter_refusals(aws: LocalAws, user: dict[str, str], role: str, extra: dict[str, Any],
                            code: str) -> None:
    call = {"RoleArn": role, "RoleSessionName": "alice", **extra}
    refused_everywhere(lambda: sts_as(aws, user).assume_role(**call), code, 400)


def test_max_session_duration_message(aws: LocalAws, user: dict[str, str], role: str) -> None:
    message = refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1",
                                                                       DurationSeconds=3601), "ValidationError", 400)
    assert message == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."


def test_a_large_policy_within_the_limits(aws: LocalAws, user: dict[str, str], role: str) -> None:
    result = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", Policy=BIG_POLICY)
    assert 50 < result["PackedPolicySize"] <= 100


# --- the caller's own policies --------------------------------------------------------------------------------

@pytest.mark.parametrize("principal", [f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT], ids=["root-arn", "account-id"])
def test_trusting_the_account_defers_to_the_callers_policy(aws: LocalAws, make_role: MakeRole,
                                                           principal: str) -> None:
    role = make_role(trust_aws(principal))
    without = user_credentials(aws)
    refused_everywhere(lambda: sts_as(aws, without).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "AccessDenied", 403)
    allowed = user_credentials(aws, policy=identity_policy("sts:AssumeRole", resource=role))
    assert sts_as(aws, allowed).assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"]
    other_role = user_credentials(aws, policy=identity_policy("sts:AssumeRole", resource=role + "-other"))
    refused_everywhere(lambda: sts_as(aws, other_role).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "AccessDenied", 403)


def test_an_attached_managed_policy_counts_and_a_deny_wins(aws: LocalAws, make_role: MakeRole) -> None:
    role = make_role(trust_aws(ACCOUNT))
    iam = client(aws, "iam")
    managed = iam.create_policy(PolicyName=f"assume-{role.rsplit('/', 1)[-1]}",
                                PolicyDocument=json.dumps(identity_policy("sts:AssumeRole")))["Policy"]["Arn"]
    user = user_credentials(aws)
    name = user_arn(user, aws).rsplit("/", 1)[-1]
    iam.attach_user_policy(UserName=name, PolicyArn=managed)
    assert sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1")["Credentials"]
    iam.put_user_policy(UserName=name, PolicyName="deny", PolicyDocument=json.dumps(
        identity_policy("sts:*", effect="Deny")))
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1"),
                       "AccessDenied", 403)


def test_a_session_policy_limits_the_session(aws: LocalAws, make_role: MakeRole, user: dict[str, str],
                                             role: str) -> None:
    target = make_role(trust_aws(role))
    s3_only = json.dumps(identity_policy("s3:GetObject"))
    narrowed = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="narrow", Policy=s3_only)
    narrowed_sts = sts_as(aws, session_credentials(narrowed["Credentials"]))
    refused_everywhere(lambda: narrowed_sts.assume_role(RoleArn=target, RoleSessionName="x1"), "AccessDenied", 403)
    # ... unless the trust policy names that very session.
    by_session = make_role(trust_aws(narrowed["AssumedRoleUser"]["Arn"]))
    assert narrowed_sts.assume_role(RoleArn=by_session, RoleSessionName="x1")["Credentials"]
    wide = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="wide")
    assert sts_as(aws, session_credentials(wide["Credentials"])).assume_role(RoleArn=target, RoleSessionName="x1")


def test_managed_session_policies_limit_the_session_too(aws: LocalAws, make_role: MakeRole, user: dict[str, str],
                                                        role: str) -> None:
    target = make_role(trust_aws(role))
    iam = client(aws, "iam")
    suffix = role.rsplit("-", 1)[-1]
    s3_only = iam.create_policy(PolicyName=f"s3-{suffix}", PolicyDocument=json.dumps(
        identity_policy("s3:GetObject")))["Policy"]["Arn"]
    chain = iam.create_policy(PolicyName=f"chain-{suffix}", PolicyDocument=json.dumps(
        identity_policy("sts:AssumeRole")))["Policy"]["Arn"]
    narrowed = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="narrow", PolicyArns=[{"arn": s3_only}])
    refused_everywhere(lambda: sts_as(aws, session_credentials(narrowed["Credentials"])).assume_role(
        RoleArn=target, RoleSessionName="x1"), "AccessDenied", 403)
    allowed = sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="chain",
                                            PolicyArns=[{"arn": s3_only}, {"arn": chain}])
    assert sts_as(aws, session_credentials(allowed["Credentials"])).assume_role(RoleArn=target, RoleSessionName="x1")


def test_mfa_cannot_be_satisfied_locally(aws: LocalAws, user: dict[str, str], role: str) -> None:
    refused_everywhere(lambda: sts_as(aws, user).assume_role(
        RoleArn=role, RoleSessionName="x1", SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/alice", TokenCode="123456"),
        "AccessDenied", 403)
    refused_everywhere(lambda: sts_as(aws, user).assume_role(RoleArn=role, RoleSessionName="x1", TokenCode="12ab56"),
                       "ValidationError", 400)


def test_a_sessions_principal_tags_are_its_roles_tags_overridden_by_session_tags(
        aws: LocalAws, make_role: MakeRole, user: dict[str, str]) -> None:
    hub = make_role(trust_aws(user_arn(user, aws), actions=ALL))
    client(aws, "iam").tag_role(RoleName=hub.rsplit("/", 1)[-1], Tags=[{"Key": "tier", "Value": "gold"},
                                                                       {"Key": "Team", "Value": "red"}])
    plain = session_credentials(sts_as(aws, user).assume_role(RoleArn=hub, RoleSessionName="x1")["Credentials"])
    tagged = session_credentials(sts_as(aws, user).assume_role(
        RoleArn=hub, RoleSessionName="x1", Tags=[{"Key": "team", "Value": "blue"}])["Credentials"])
    gold = make_role(trust_aws(hub, condition={"StringEquals": {"aws:PrincipalTag/tier": "gold"}}))
    assert sts_as(aws, plain).assume_role(RoleArn=gold, RoleSessionName="x2")["Credentials"]
    blue = make_role(trust_aws(hub, condition={"StringEquals": {"aws:PrincipalTag/team": "blue"}}))
    assert sts_as(aws, tagged).assume_role(RoleArn=blue, RoleSessionName="x2")["Credentials"]
    refused_everywhere(lambda: sts_as(aws, plain).assume_role(RoleArn=blue, RoleSessionName="x2"),
                       "AccessDenied", 403)  # the role's own Team=red is what the plain session carries
