"""Trust policy evaluation on its own: IAM's condition operators, missing-key rules, Deny, and actions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from broker.devstack.trust_policy import (
    ASSUME,
    TAG_SESSION,
    TrustRequest,
    glob_match,
    is_allowed,
    load_document,
    web_identity_context,
)

PROVIDER = "arn:aws:iam::111122223333:oidc-provider/idp.example.com"
HOST = "idp.example.com"


def request(actions: tuple[str, ...] = (ASSUME,), **claims: Any) -> TrustRequest:
    context = web_identity_context(HOST, audience="client-1", claims={"sub": "user-1", **claims},
                                   session_name="alice", tags={}, source_identity=None)
    return TrustRequest(PROVIDER, actions, context)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def statement(condition: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": ASSUME}
    return {**base, **({"Condition": condition} if condition else {}), **fields}


@pytest.mark.parametrize(("condition", "allowed"), [
    ({"StringEquals": {f"{HOST}:sub": "user-1"}}, True),
    ({"StringEquals": {f"{HOST.upper()}:SUB": "user-1"}}, True),  # condition keys are case-insensitive
    ({"StringEquals": {f"{HOST}:sub": "USER-1"}}, False),  # values are not
    ({"StringEqualsIgnoreCase": {f"{HOST}:sub": "USER-1"}}, True),
    ({"StringEquals": {f"{HOST}:sub": ["user-2", "user-1"]}}, True),
    ({"StringLike": {f"{HOST}:sub": "user-?"}}, True),
    ({"StringLike": {f"{HOST}:sub": "user-??"}}, False),
    ({"StringLike": {f"{HOST}:sub": "*"}}, True),
    ({"StringNotEquals": {f"{HOST}:sub": "user-1"}}, False),
    ({"StringNotLike": {f"{HOST}:sub": "admin-*"}}, True),
    ({"StringEquals": {f"{HOST}:sub": "user-1", f"{HOST}:aud": "client-2"}}, False),  # keys are ANDed
    ({"StringEquals": {f"{HOST}:aud": "client-1"}, "StringLike": {f"{HOST}:sub": "x*"}}, False),  # operators too
], ids=str)
def test_string_operators(condition: dict[str, Any], allowed: bool) -> None:
    assert is_allowed(policy(statement(condition)), request()) is allowed


@pytest.mark.parametrize(("condition", "allowed"), [
    ({"StringEquals": {f"{HOST}:amr": "mfa"}}, False),  # key absent from the token
    ({"StringNotEquals": {f"{HOST}:amr": "mfa"}}, True),  # negated operators hold on a missing key
    ({"StringEqualsIfExists": {f"{HOST}:amr": "mfa"}}, True),
    ({"ForAnyValue:StringEquals": {f"{HOST}:amr": "mfa"}}, False),
    ({"ForAllValues:StringEquals": {f"{HOST}:amr": "mfa"}}, True),  # vacuously true
], ids=str)
def test_missing_keys(condition: dict[str, Any], allowed: bool) -> None:
    assert is_allowed(policy(statement(condition)), request()) is allowed


@pytest.mark.parametrize(("condition", "allowed"), [
    ({"ForAnyValue:StringEquals": {f"{HOST}:amr": "mfa"}}, True),
    ({"ForAnyValue:StringLike": {f"{HOST}:amr": "p*"}}, True),
    ({"ForAnyValue:StringEquals": {f"{HOST}:amr": "otp"}}, False),
    ({"ForAllValues:StringEquals": {f"{HOST}:amr": ["mfa", "pwd", "otp"]}}, True),
    ({"ForAllValues:StringEquals": {f"{HOST}:amr": ["mfa"]}}, False),
    ({"StringNotEquals": {f"{HOST}:amr": "pwd"}}, False),  # a negated plain operator: no value may match
], ids=str)
def test_set_operators_on_amr(condition: dict[str, Any], allowed: bool) -> None:
    assert is_allowed(policy(statement(condition)), request(amr=["mfa", "pwd"])) is allowed


def test_unknown_operator_refuses() -> None:
    assert not is_allowed(policy(statement({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})),
                          request())


@pytest.mark.parametrize(("principal", "allowed"), [
    ({"Federated": PROVIDER}, True),
    ({"Federated": ["arn:aws:iam::111122223333:oidc-provider/other", PROVIDER]}, True),
    ({"Federated": "arn:aws:iam::111122223333:oidc-provider/other"}, False),
    ({"AWS": "arn:aws:iam::111122223333:root"}, False),
    ("*", False),  # an Allow must name the provider
], ids=str)
def test_principal(principal: Any, allowed: bool) -> None:
    assert is_allowed(policy(statement(Principal=principal)), request()) is allowed


def test_deny_with_any_principal_wins() -> None:
    deny = statement({"StringEquals": {f"{HOST}:sub": "user-1"}}, Effect="Deny", Principal="*")
    assert not is_allowed(policy(statement(), deny), request())


def test_deny_whose_condition_fails_does_not_apply() -> None:
    deny = statement({"StringEquals": {f"{HOST}:sub": "user-2"}}, Effect="Deny")
    assert is_allowed(policy(statement(), deny), request())


@pytest.mark.parametrize(("action", "allowed"), [
    (ASSUME, False), ([ASSUME, TAG_SESSION], True), ("sts:*", True),
    (["STS:assumerolewithwebidentity", "sts:tagsession"], True),  # action names are case-insensitive
    (["sts:AssumeRole*", "sts:Tag*"], True),
], ids=str)
def test_every_needed_action_must_be_allowed(action: Any, allowed: bool) -> None:
    assert is_allowed(policy(statement(Action=action)), request((ASSUME, TAG_SESSION))) is allowed


def test_actions_may_come_from_separate_statements() -> None:
    assert is_allowed(policy(statement(), statement(Action=TAG_SESSION)), request((ASSUME, TAG_SESSION)))


def test_not_action() -> None:
    only = {k: v for k, v in statement().items() if k != "Action"}
    assert is_allowed(policy({**only, "NotAction": "iam:*"}), request())
    assert not is_allowed(policy({**only, "NotAction": "sts:*"}), request())


def test_google_azp_is_the_aud_key() -> None:
    context = web_identity_context("accounts.google.com", audience="web-client", session_name="s",
                                   claims={"sub": "1", "azp": "android-client"}, tags={}, source_identity=None)
    assert context["accounts.google.com:aud"] == ("android-client",)
    assert context["accounts.google.com:oaud"] == ("web-client",)


def test_request_tags_are_condition_keys() -> None:
    context = web_identity_context(HOST, audience="a", claims={"sub": "1"}, session_name="s",
                                   tags={"Team": "blue"}, source_identity="alice")
    assert context["aws:requesttag/team"] == ("blue",) and context["sts:sourceidentity"] == ("alice",)


@pytest.mark.parametrize("form", ["dict", "json", "url-encoded"])
def test_load_document_forms(form: str) -> None:
    document = policy(statement())
    raw: Any = {"dict": document, "json": json.dumps(document), "url-encoded": quote(json.dumps(document))}[form]
    assert load_document(raw) == document


def test_glob_match() -> None:
    assert glob_match("a*c?", "abbbcd") and not glob_match("a*c?", "abbbc") and glob_match("a.b", "a.b")
    assert not glob_match("a.b", "axb")  # regex metacharacters are literal


ROLE = "arn:aws:iam::111122223333:role/hub"
SESSION = "arn:aws:sts::111122223333:assumed-role/hub/alice"


def aws_request(*, with_account: bool) -> TrustRequest:
    names = {ROLE, SESSION} | ({"arn:aws:iam::111122223333:root", "111122223333"} if with_account else set())
    return TrustRequest("", ("sts:AssumeRole",), {"aws:principaltag/team": ("blue",)}, aws_principals=frozenset(names))


@pytest.mark.parametrize(("principal", "by_name", "by_account"), [
    ({"AWS": ROLE}, True, True),  # a role ARN matches every session of that role
    ({"AWS": SESSION}, True, True),
    ({"AWS": ["arn:aws:iam::111122223333:role/other", ROLE]}, True, True),
    ({"AWS": "arn:aws:iam::111122223333:root"}, False, True),  # the account: identity policies decide
    ({"AWS": "111122223333"}, False, True),
    ({"AWS": "arn:aws:iam::999999999999:root"}, False, False),
    ({"AWS": "*"}, True, True),
    ("*", True, True),
    ({"Federated": PROVIDER}, False, False),  # a federated principal never matches an AWS caller
    ({"Service": "ec2.amazonaws.com"}, False, False),
], ids=str)
def test_aws_principals(principal: Any, by_name: bool, by_account: bool) -> None:
    document = policy({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})
    assert is_allowed(document, aws_request(with_account=False)) is by_name
    assert is_allowed(document, aws_request(with_account=True)) is by_account


def test_an_aws_principal_never_matches_a_federated_call() -> None:
    document = policy(statement(Principal={"AWS": "*"}))
    assert not is_allowed(document, request())


def test_principal_tag_condition_on_an_aws_caller() -> None:
    allowed = {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sts:AssumeRole",
               "Condition": {"StringEquals": {"aws:PrincipalTag/Team": "blue"}}}
    assert is_allowed(policy(allowed), aws_request(with_account=False))
    allowed["Condition"] = {"StringEquals": {"aws:PrincipalTag/team": "red"}}
    assert not is_allowed(policy(allowed), aws_request(with_account=False))
