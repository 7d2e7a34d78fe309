"""SigV4 verification on its own: requests signed by botocore's signer, then changed the ways an attacker (or a
broken client) would change them; and the identity-policy evaluator the signed calls use."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker.devstack.identity_policy import Question, allows, session_policy_allows
from broker.devstack.sigv4_check import ReceivedRequest, SignedCall, parse_authorization, verify
from broker.devstack.web_identity_checks import StsError

URL = "http://127.0.0.1:4566/"
BODY = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FR&RoleSessionName=a1"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def signed(*, service: str = "sts", token: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(extra or {})})
    SigV4Auth(Credentials("AKIAEXAMPLE000000001", SECRET, token), service, "us-east-1").add_auth(request)
    return {**dict(request.headers.items()), "Host": "127.0.0.1:4566"}


def check(headers: dict[str, str], *, body: bytes = BODY, secret: str = SECRET, url: str = URL) -> SignedCall:
    call = parse_authorization(headers)
    verify(call, ReceivedRequest("POST", url, headers, body), secret, service="sts",
           now=datetime.now(UTC).timestamp())
    return call


def code_of(headers: dict[str, str], **changes: Any) -> str:
    with pytest.raises(StsError) as info:
        check(headers, **changes)
    return info.value.code


def test_a_botocore_signature_verifies() -> None:
    call = check(signed(token="session-token"))
    assert (call.access_key_id, call.service, call.region, call.session_token) == (
        "AKIAEXAMPLE000000001", "sts", "us-east-1", "session-token")


def test_an_unsigned_extra_header_does_not_matter() -> None:
    assert check({**signed(), "User-Agent": "something else"})


@pytest.mark.parametrize(("change", "expected"), [
    ({"body": BODY.replace(b"a1", b"a2")}, "SignatureDoesNotMatch"),
    ({"secret": SECRET[:-1] + "X"}, "SignatureDoesNotMatch"),
    ({"url": URL + "?x=1"}, "SignatureDoesNotMatch"),
    ({"url": "http://127.0.0.1:4566/other"}, "SignatureDoesNotMatch"),
], ids=["body", "secret", "query", "path"])
def test_changed_requests(change: dict[str, Any], expected: str) -> None:
    assert code_of(signed(), **change) == expected


def test_a_signed_header_changed_or_dropped() -> None:
    headers = signed()
    assert code_of({**headers, "Content-Type": "text/plain"}) == "SignatureDoesNotMatch"
    assert code_of({k: v for k, v in headers.items() if k != "Content-Type"}) == "SignatureDoesNotMatch"


def test_a_content_hash_header_must_match_the_body() -> None:
    lying = signed(extra={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
    assert code_of(lying) == "SignatureDoesNotMatch"
    honest = signed(extra={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    assert check(honest)


def test_scope_must_name_sts() -> None:
    assert code_of(signed(service="iam")) == "SignatureDoesNotMatch"


@pytest.mark.parametrize("authorization", [
    "AWS AKIAEXAMPLE:signature",
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/sts/aws4_request, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/sts/aws4_request, SignedHeaders=x-amz-date, "
    "Signature=" + "0" * 64,
], ids=["v2", "no-signed-headers", "host-not-signed"])
def test_incomplete_signatures(authorization: str) -> None:
    with pytest.raises(StsError) as info:
        parse_authorization({**signed(), "Authorization": authorization})
    assert info.value.code == "IncompleteSignature"


def test_missing_authorization() -> None:
    with pytest.raises(StsError) as info:
        parse_authorization({"Host": "127.0.0.1"})
    assert (info.value.code, info.value.status) == ("MissingAuthenticationToken", 403)


ROLE = "arn:aws:iam::111122223333:role/R"


def question(*actions: str) -> Question:
    return Question(actions or ("sts:AssumeRole",), ROLE, {"aws:principaltag/team": ("blue",)})


def doc(**statement: Any) -> dict[str, Any]:
    base = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*", **statement}
    return {"Version": "2012-10-17", "Statement": [{k: v for k, v in base.items() if v is not None}]}


@pytest.mark.parametrize(("documents", "allowed"), [
    ([doc()], True),
    ([doc(Resource="arn:aws:iam::111122223333:role/*")], True),
    ([doc(Resource="arn:aws:iam::111122223333:role/Other")], False),
    ([doc(NotResource=ROLE, Resource=None)], False),
    ([doc(Condition={"StringEquals": {"aws:PrincipalTag/team": "blue"}})], True),
    ([doc(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "300"}})], False),  # unknown operator refuses
    ([doc(Principal="*")], False),  # an identity policy naming a principal counts for nothing
    ([doc(), doc(Effect="Deny")], False),
    ([], False),
], ids=str)
def test_identity_policies(documents: list[dict[str, Any]], allowed: bool) -> None:
    assert allows(documents, question()) is allowed


def test_every_action_is_needed() -> None:
    assert not allows([doc()], question("sts:AssumeRole", "sts:TagSession"))
    assert allows([doc(Action=["sts:AssumeRole", "sts:TagSession"])], question("sts:AssumeRole", "sts:TagSession"))


def test_no_session_policy_keeps_the_roles_permissions() -> None:
    assert session_policy_allows([], question())
    assert not session_policy_allows([doc(Action="s3:*")], question())
    assert session_policy_allows([doc(Action="s3:*"), doc()], question())  # inline and managed: their union
