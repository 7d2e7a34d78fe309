"""The pure token and parameter checks, and the JWKS cache against a real loopback issuer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker.devstack import web_identity_checks as checks
from broker.devstack.sts_front import JwksCache
from broker.devstack.web_identity_checks import StsError
from tests.devstack.conftest import Issuer, running_issuer

VALID = {"RoleArn": "arn:aws:iam::111122223333:role/R", "RoleSessionName": "alice", "WebIdentityToken": "a.b.c"}


@pytest.mark.parametrize(("issuer", "relaxed", "expected"), [
    ("https://idp.example.com", False, "idp.example.com"),
    ("https://idp.example.com/tenant/v2", False, "idp.example.com/tenant/v2"),
    ("https://idp.example.com:8443", True, None),  # a port only for loopback
    ("https://idp.example.com?x=1", True, None),
    ("https://idp.example.com/#f", True, None),
    ("http://idp.example.com", True, None),
    ("http://127.0.0.1:8080", True, "127.0.0.1:8080"),
    ("http://localhost:8080/realms/dev", True, "localhost:8080/realms/dev"),
    ("http://127.0.0.1:8080", False, None),
    ("https://user@idp.example.com", True, None),
    ("ftp://idp.example.com", True, None),
], ids=str)
def test_provider_url(issuer: str, relaxed: bool, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(StsError) as info:
            checks.provider_url(issuer, allow_http_loopback=relaxed)
        assert info.value.message == f"No OpenIDConnect provider found in your account for {issuer}"
    else:
        assert checks.provider_url(issuer, allow_http_loopback=relaxed) == expected


def tags_claim(principal: dict[str, Any], transitive: list[Any] | None = None) -> dict[str, Any]:
    return {checks.TAGS_CLAIM: {"principal_tags": principal, "transitive_tag_keys": transitive or []}}


@pytest.mark.parametrize("key", ["Équipe", "部署", "cost center", "a_b.c:d/e=f+g-h@i", "x" * 128, "awsome", "١٢"])
def test_tag_keys_accepted(key: str) -> None:
    assert checks.session_tags(tags_claim({key: ["v"]})).tags == {key: "v"}


@pytest.mark.parametrize("key", ["aws:x", "AWS:x", "Aws:", "", "x" * 129, "emoji🙂", "semi;colon", "tab\tkey"])
def test_tag_keys_refused(key: str) -> None:
    with pytest.raises(StsError, match="InvalidIdentityToken"):
        checks.session_tags(tags_claim({key: ["v"]}))


@pytest.mark.parametrize("claim", [
    tags_claim({"Team": ["a"], "team": ["b"]}),  # keys are unique case-insensitively
    tags_claim({"team": "blue"}),
    tags_claim({"team": []}),
    tags_claim({"team": [1]}),
    tags_claim({"team": ["v" * 257]}),
    tags_claim({"team": ["blue"]}, ["team", "other"]),
    {checks.TAGS_CLAIM: ["not", "an", "object"]},
    {checks.TAGS_CLAIM: {"principal_tags": ["team"]}},
], ids=str)
def test_tag_claims_refused(claim: dict[str, Any]) -> None:
    with pytest.raises(StsError, match="InvalidIdentityToken"):
        checks.session_tags(claim)


def test_transitive_keys_match_case_insensitively() -> None:
    assert checks.session_tags(tags_claim({"Team": ["blue"]}, ["team"])).transitive == ("team",)


@pytest.mark.parametrize(("value", "ok"), [
    ("alice@example.com", True), ("a", False), ("x" * 65, False), ("aws:alice", False), ("al ice", False),
    ("älice", False), (42, False),
], ids=str)
def test_source_identity(value: Any, ok: bool) -> None:
    claims = {checks.SOURCE_IDENTITY_CLAIM: value}
    if ok:
        assert checks.source_identity(claims) == value
    else:
        with pytest.raises(StsError, match="InvalidIdentityToken"):
            checks.source_identity(claims)


@pytest.mark.parametrize(("claims", "code"), [
    ({"exp": 2000, "iat": 900}, None),
    ({"exp": 1000, "iat": 900}, "ExpiredTokenException"),
    ({"exp": 2000.0, "iat": 900}, "InvalidIdentityToken"),
    ({"exp": True, "iat": 900}, "InvalidIdentityToken"),
    ({"exp": 2000}, "InvalidIdentityToken"),
    ({"exp": 2000, "iat": 1301}, "InvalidIdentityToken"),  # beyond the 300 s skew
    ({"exp": 2000, "iat": 1300}, None),
    ({"exp": 2000, "iat": 900, "nbf": 1500}, "InvalidIdentityToken"),
], ids=str)
def test_times(claims: dict[str, Any], code: str | None) -> None:
    if code is None:
        checks.check_times(claims, now=1000)
    else:
        with pytest.raises(StsError) as info:
            checks.check_times(claims, now=1000)
        assert info.value.code == code


def test_parameters_valid_and_defaults() -> None:
    request = checks.validate_request(VALID)
    assert (request.duration, request.session_name) == (3600, "alice")


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"RoleSessionName": "a"}, "Member must have length greater than or equal to 2"),
    ({"RoleSessionName": "a" * 65}, "Member must have length less than or equal to 64"),
    ({"RoleSessionName": "älice"}, "Member must satisfy regular expression pattern"),
    ({"WebIdentityToken": "abc"}, "at 'webIdentityToken'"),
    ({"WebIdentityToken": "a" * 20001}, "at 'webIdentityToken'"),
    ({"RoleArn": "arn:short"}, "at 'roleArn'"),
    ({"RoleArn": None}, "Value null at 'roleArn'"),
    ({"DurationSeconds": "ten"}, "Member must be an integer"),
], ids=str)
def test_parameter_violations(changes: dict[str, Any], fragment: str) -> None:
    params = {k: v for k, v in {**VALID, **changes}.items() if v is not None}
    with pytest.raises(StsError) as info:
        checks.validate_request(params)
    assert info.value.code == "ValidationError" and fragment in info.value.message


@pytest.fixture
def fresh_issuer() -> Iterator[Issuer]:
    with running_issuer() as issuer:
        yield issuer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_jwks_cached_then_refetched_for_unknown_kid_at_most_once_per_gap(fresh_issuer: Issuer) -> None:
    clock = Clock()
    cache = JwksCache(allow_http_loopback=True, ttl=60, refetch_gap=5, clock=clock)
    try:
        cache.key_for(fresh_issuer.url, "rsa-1")
        cache.key_for(fresh_issuer.url, "ec-1")
        assert fresh_issuer.jwks_requests == 1
        fresh_issuer.keys["rsa-2"] = fresh_issuer.keys["rsa-1"]  # the issuer rotates in a new key
        with pytest.raises(StsError):
            cache.key_for(fresh_issuer.url, "rsa-2")  # too soon after the last fetch: no refetch
        clock.now += 5
        assert cache.key_for(fresh_issuer.url, "rsa-2")["kid"] == "rsa-2"
        assert fresh_issuer.jwks_requests == 2
        clock.now += 61
        cache.key_for(fresh_issuer.url, "rsa-1")
        assert fresh_issuer.jwks_requests == 3  # the cache expired
    finally:
        cache.close()


def test_oversized_jwks_refused(fresh_issuer: Issuer) -> None:
    fresh_issuer.jwks_padding = 70 * 1024
    cache = JwksCache(allow_http_loopback=True)
    try:
        with pytest.raises(StsError) as info:
            cache.key_for(fresh_issuer.url, "rsa-1")
        assert info.value.message == checks.KEY_ERROR
    finally:
        cache.close()


def test_http_jwks_refused_without_the_relaxation(fresh_issuer: Issuer) -> None:
    cache = JwksCache(allow_http_loopback=False)
    try:
        with pytest.raises(StsError):
            cache.key_for(fresh_issuer.url, "rsa-1")
        assert fresh_issuer.jwks_requests == 0
    finally:
        cache.close()


def test_key_with_a_different_alg_is_refused(fresh_issuer: Issuer) -> None:
    token = checks.parse_token(fresh_issuer.token(kid="rsa-1", alg="RS384", exp=int(time.time()) + 60))
    jwk = {**checks_jwk(fresh_issuer, "rsa-1"), "alg": "RS256"}
    with pytest.raises(StsError):
        checks.verify_signature(token, jwk)
    checks.verify_signature(token, {**jwk, "alg": "RS384"})


def checks_jwk(issuer: Issuer, kid: str) -> dict[str, Any]:
    return next(k for k in issuer.jwks()["keys"] if k["kid"] == kid)
