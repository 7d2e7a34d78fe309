"""AssumeRoleWithWebIdentity through the strict front, over real HTTP with boto3: what AWS grants, and each
refusal AWS documents, with the exact error code and HTTP status botocore reports."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.web_identity_checks import KEY_ERROR
from tests.devstack.conftest import (
    ACCOUNT,
    ASSUME,
    CLIENT_ID,
    Issuer,
    MakeRole,
    allow,
    assumed_role_count,
    b64url,
    client,
    new_rsa_key,
    refusal,
    session_credentials,
)


def assume(sts: Any, role_arn: str, token: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="alice",
                                                               WebIdentityToken=token, **extra)
    return result


def refused(sts: Any, role_arn: str, token: str, code: str, status: int = 400, **extra: Any) -> str:
    return refusal(lambda: assume(sts, role_arn, token, **extra), code, status)


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


# --- granted ---------------------------------------------------------------------------------------------


def test_granted_credentials_work_against_moto(aws: LocalAws, issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    role_arn = make_role(allow(issuer, condition={"StringEquals": {f"{issuer.host}:aud": CLIENT_ID},
                                                  "StringLike": {f"{issuer.host}:sub": "user-?"}}), max_session=7200)
    started, calls_before = time.time(), assumed_role_count()
    result = assume(sts, role_arn, issuer.token(), DurationSeconds=1800)
    assert assumed_role_count() == calls_before + 1  # the counter `refusal` relies on does move
    assert (result["SubjectFromWebIdentityToken"], result["Audience"], result["Provider"]) == (
        "user-1", CLIENT_ID, issuer.url)
    expiration = result["Credentials"]["Expiration"].timestamp()
    assert started + 1800 - 5 <= expiration <= time.time() + 1800 + 5  # DurationSeconds honoured
    creds = session_credentials(result["Credentials"])
    role_name = role_arn.rsplit("/", 1)[1]
    identity = client(aws, "sts", creds).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/alice"
    assert identity["Account"] == ACCOUNT
    s3 = client(aws, "s3", creds)
    s3.create_bucket(Bucket=f"granted-{role_name}")
    assert f"granted-{role_name}" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_es256_token_with_list_audience(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    result = assume(sts, trusted_role, issuer.token(kid="ec-1", aud=["someone-else", CLIENT_ID]))
    assert result["Audience"] == CLIENT_ID


def test_tags_and_source_identity_granted_when_trusted(issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    role_arn = make_role(allow(issuer, actions=[ASSUME, "sts:TagSession", "sts:SetSourceIdentity"]))
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": {"principal_tags": {"team": ["blue"], "Équipe": ["été"]},
                                                              "transitive_tag_keys": ["team"]},
                              "https://aws.amazon.com/source_identity": "alice@example.com"}
    token = issuer.token(**claims)
    assert assume(sts, role_arn, token)["SourceIdentity"] == "alice@example.com"


def test_sts_wildcard_action_allows_tag_session(issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    role_arn = make_role(allow(issuer, actions=["sts:*"]))
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": {"principal_tags": {"team": ["blue"]}}}
    token = issuer.token(**claims)
    assert assume(sts, role_arn, token)["Credentials"]["AccessKeyId"]


def test_query_string_get_form(aws: LocalAws, issuer: Issuer, trusted_role: str) -> None:
    params = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": trusted_role,
              "RoleSessionName": "via-get", "WebIdentityToken": issuer.token()}
    granted = httpx.get(aws.endpoint_url, params=params, trust_env=False)
    assert granted.status_code == 200 and "<AccessKeyId>" in granted.text
    refused_get = httpx.get(aws.endpoint_url, params={**params, "WebIdentityToken": "x.y.z"}, trust_env=False)
    assert refused_get.status_code == 400 and "<Code>InvalidIdentityToken</Code>" in refused_get.text


# --- the token -------------------------------------------------------------------------------------------


def test_wrong_signing_key(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, issuer.token(key=new_rsa_key()), "InvalidIdentityToken")


def test_alg_none(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    token = unsigned({"alg": "none", "kid": "rsa-1"}, issuer.claims())
    refused(sts, trusted_role, token, "InvalidIdentityToken")


def test_hs256_signed_with_the_public_key(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    pem = issuer.keys["rsa-1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = unsigned({"alg": "HS256", "kid": "rsa-1"}, issuer.claims()).rsplit(".", 1)[0]
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    refused(sts, trusted_role, f"{signing_input}.{b64url(mac)}", "InvalidIdentityToken")


def test_unknown_kid(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    token = issuer.token(kid="not-published", key=issuer.keys["rsa-1"])
    assert refused(sts, trusted_role, token, "InvalidIdentityToken") == KEY_ERROR


def test_not_a_jwt(sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, "an-opaque-access-token", "InvalidIdentityToken")


def test_unregistered_issuer(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    message = refused(sts, trusted_role, issuer.token(iss="http://localhost:7"), "InvalidIdentityToken")
    assert message == "No OpenIDConnect provider found in your account for http://localhost:7"


def test_wrong_audience(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    assert refused(sts, trusted_role, issuer.token(aud="other-client"), "InvalidIdentityToken") == (
        "Incorrect token audience")


def test_expired(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    now = int(time.time())
    message = refused(sts, trusted_role, issuer.token(iat=now - 600, exp=now - 10), "ExpiredTokenException")
    assert message.startswith("Token expired: current date/time ")
    assert message.endswith(f" must be before the expiration date/time {now - 10}")


def test_iat_in_the_future(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    now = int(time.time())
    refused(sts, trusted_role, issuer.token(iat=now + 3600, exp=now + 7200), "InvalidIdentityToken")


def test_iat_too_old(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    now = int(time.time())
    assert refused(sts, trusted_role, issuer.token(iat=now - 2 * 86400, exp=now + 300),
                   "InvalidIdentityToken") == "Token too old"


def test_missing_sub(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, issuer.token(sub=None), "InvalidIdentityToken")


def test_non_integer_exp(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, issuer.token(exp=time.time() + 300.5), "InvalidIdentityToken")


def test_provider_id_with_an_oidc_token(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, issuer.token(), "InvalidIdentityToken", ProviderId="www.amazon.com")


# --- request parameters ----------------------------------------------------------------------------------


def test_bad_role_session_name(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    message = refusal(lambda: sts.assume_role_with_web_identity(
        RoleArn=trusted_role, RoleSessionName="bad name!", WebIdentityToken=issuer.token()), "ValidationError", 400)
    assert message == ("1 validation error detected: Value 'bad name!' at 'roleSessionName' failed to satisfy "
                       r"constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*")


@pytest.mark.parametrize(("duration", "constraint"), [
    (899, "Member must have value greater than or equal to 900"),
    (43201, "Member must have value less than or equal to 43200"),
])
def test_duration_out_of_range(issuer: Issuer, sts: Any, trusted_role: str, duration: int, constraint: str) -> None:
    message = refused(sts, trusted_role, issuer.token(), "ValidationError", DurationSeconds=duration)
    assert message == (f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy "
                       f"constraint: {constraint}")


def test_duration_above_role_maximum(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    message = refused(sts, trusted_role, issuer.token(), "ValidationError", DurationSeconds=3601)
    assert message == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."


def test_several_violations_are_counted(sts: Any, trusted_role: str) -> None:
    message = refusal(lambda: sts.assume_role_with_web_identity(
        RoleArn=trusted_role, RoleSessionName="x", WebIdentityToken="abc"), "ValidationError", 400)
    assert message.startswith("2 validation errors detected: ")


def test_policy_too_long(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [], "Pad": "x" * 2100})
    refused(sts, trusted_role, issuer.token(), "ValidationError", Policy=policy)


def test_policy_not_json(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    refused(sts, trusted_role, issuer.token(), "MalformedPolicyDocument", Policy="{not json")


def test_more_than_ten_policy_arns(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    arns = [{"arn": f"arn:aws:iam::aws:policy/P{i}"} for i in range(11)]
    refused(sts, trusted_role, issuer.token(), "ValidationError", PolicyArns=arns)


def test_role_that_does_not_exist(issuer: Issuer, sts: Any) -> None:
    refused(sts, f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole", issuer.token(), "AccessDenied", 403)


def test_malformed_role_arn(issuer: Issuer, sts: Any) -> None:
    refused(sts, "arn:aws:s3:::not-a-role-at-all", issuer.token(), "ValidationError")


# --- trust policy ----------------------------------------------------------------------------------------


def test_trust_policy_naming_another_provider(issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    other = {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/other.example.com"}
    message = refused(sts, make_role(allow(issuer, principal=other)), issuer.token(), "AccessDenied", 403)
    assert message == "Not authorized to perform sts:AssumeRoleWithWebIdentity"


def test_trust_condition_on_sub_not_matching(issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    role_arn = make_role(allow(issuer, condition={"StringEquals": {f"{issuer.host}:sub": "user-2"}}))
    refused(sts, role_arn, issuer.token(), "AccessDenied", 403)


def test_explicit_deny_wins(issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    role_arn = make_role(allow(issuer), allow(issuer, effect="Deny", principal="*",
                                              condition={"StringLike": {f"{issuer.host}:sub": "user-*"}}))
    refused(sts, role_arn, issuer.token(), "AccessDenied", 403)


def test_tags_without_tag_session(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": {"principal_tags": {"team": ["blue"]}}}
    token = issuer.token(**claims)
    refused(sts, trusted_role, token, "AccessDenied", 403)


def test_source_identity_without_set_source_identity(issuer: Issuer, sts: Any, trusted_role: str) -> None:
    claims: dict[str, Any] = {"https://aws.amazon.com/source_identity": "alice"}
    token = issuer.token(**claims)
    refused(sts, trusted_role, token, "AccessDenied", 403)


# --- session tags ----------------------------------------------------------------------------------------


@pytest.fixture
def tagging_role(issuer: Issuer, make_role: MakeRole) -> str:
    return make_role(allow(issuer, actions=[ASSUME, "sts:TagSession"]))


@pytest.mark.parametrize("tags", [
    {"principal_tags": {"aws:x": ["v"]}},
    {"principal_tags": {f"k{i}": ["v"] for i in range(51)}},
    {"principal_tags": {"team": ["a", "b"]}},
    {"principal_tags": {"team": ["v" * 257]}},
    {"principal_tags": {"team": ["blue"]}, "transitive_tag_keys": ["dept"]},
], ids=["aws-prefix", "51-tags", "two-values", "long-value", "transitive-not-a-tag"])
def test_invalid_session_tags(issuer: Issuer, sts: Any, tagging_role: str, tags: dict[str, Any]) -> None:
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": tags}
    refused(sts, tagging_role, issuer.token(**claims), "InvalidIdentityToken")


def test_fifty_tags_are_accepted(issuer: Issuer, sts: Any, tagging_role: str) -> None:
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": {"principal_tags": {f"k{i}": ["v"] for i in range(50)}}}
    assert assume(sts, tagging_role, issuer.token(**claims))["Credentials"]


# --- issuer URL rules and the loopback relaxation -------------------------------------------------------


@pytest.mark.parametrize("iss", ["http://issuer.example.test", "https://issuer.example.test:8443"])
def test_non_loopback_http_or_port_issuer_refused(aws: LocalAws, issuer: Issuer, sts: Any, make_role: MakeRole,
                                                  iss: str) -> None:
    # moto's IAM registers such a URL without complaint; AWS's STS would never match a token to it.
    provider = client(aws, "iam").create_open_id_connect_provider(
        Url=iss, ClientIDList=[CLIENT_ID], ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    role_arn = make_role(allow(issuer, principal={"Federated": provider}))
    message = refused(sts, role_arn, issuer.token(iss=iss), "InvalidIdentityToken")
    assert message == f"No OpenIDConnect provider found in your account for {iss}"


def test_loopback_http_issuer_refused_without_the_relaxation(issuer: Issuer, trusted_role: str) -> None:
    # moto's state is per process and account: this second front sees the same provider and role.
    with run_local_aws(account_id=ACCOUNT, allow_http_loopback_issuers=False) as strict:
        sts = client(strict, "sts", parameter_validation=False)
        message = refused(sts, trusted_role, issuer.token(), "InvalidIdentityToken")
    assert message == f"No OpenIDConnect provider found in your account for {issuer.url}"


def test_unreachable_issuer_keys(aws: LocalAws, issuer: Issuer, sts: Any, make_role: MakeRole) -> None:
    dead = Issuer(url="http://127.0.0.1:9", keys=issuer.keys)  # port 9 (discard): nothing listens
    iam = client(aws, "iam")
    iam.create_open_id_connect_provider(Url=dead.url, ClientIDList=[CLIENT_ID], ThumbprintList=["0" * 40])
    try:
        assert refused(sts, make_role(allow(dead)), dead.token(), "InvalidIdentityToken") == KEY_ERROR
    finally:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=dead.provider_arn())
