"""ID token verification against a real issuer on loopback, with tokens built by PyJWT."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from broker.connectors.id_token import Expectations, verify_id_token
from broker.connectors.jwks import JwksCache
from broker.errors import TokenInvalid
from broker.web.errors import http_status
from tests.support.token_issuer import TokenIssuer, new_key, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    with running_issuer() as issuer:
        yield issuer


def expect(issuer: TokenIssuer, **overrides: Any) -> Expectations:
    fields: dict[str, Any] = {"issuers": (issuer.url,), "audiences": ("client-1",), "algorithms": ("RS256",),
                              "leeway": 30, "max_bytes": 16384, "nonce": None}
    fields.update(overrides)
    return Expectations(**fields)


def verify(issuer: TokenIssuer, token: str, **overrides: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            cache = JwksCache(http, f"{issuer.url}/jwks", timeout=3)
            return await verify_id_token(token, cache, expect(issuer, **overrides))
    return asyncio.run(run())


def refused(issuer: TokenIssuer, token: str, reason: str, **overrides: Any) -> None:
    with pytest.raises(TokenInvalid) as err:
        verify(issuer, token, **overrides)
    assert err.value.reason == reason
    assert http_status(err.value) == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_valid_token(issuer: TokenIssuer) -> None:
    claims = verify(issuer, issuer.token(nonce="n1"), nonce="n1")
    assert claims["sub"] == "user-1"


def test_wrong_key(issuer: TokenIssuer) -> None:
    refused(issuer, issuer.sign(issuer.claims(), key=new_key()), "signature_invalid")


def test_alg_none(issuer: TokenIssuer) -> None:
    header = _b64(json.dumps({"alg": "none", "kid": issuer.kid}).encode())
    payload = _b64(json.dumps(issuer.claims()).encode())
    refused(issuer, f"{header}.{payload}.", "alg_not_allowed")


def test_hmac_signed_with_the_public_key(issuer: TokenIssuer) -> None:
    public_pem = issuer.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(issuer.claims()).encode())
    import hashlib
    import hmac
    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    refused(issuer, f"{header}.{payload}.{sig}", "alg_not_allowed")


def test_key_supplied_in_header(issuer: TokenIssuer) -> None:
    evil = new_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(evil.public_key()))
    refused(issuer, issuer.sign(issuer.claims(), key=evil, headers={"jwk": jwk}), "key_in_header")
    refused(issuer, issuer.sign(issuer.claims(), headers={"jku": "https://evil.example/jwks"}), "key_in_header")


def test_odd_kid(issuer: TokenIssuer) -> None:
    refused(issuer, issuer.sign(issuer.claims(), kid="../../etc/passwd\x00"), "kid_invalid")


@pytest.mark.parametrize(("claims", "reason"), [
    ({"exp": int(time.time()) - 120}, "token_expired"),
    ({"iat": int(time.time()) + 600}, "claims_invalid"),
    ({"nbf": int(time.time()) + 600}, "claims_invalid"),
    ({"iss": "https://evil.example.com"}, "claims_invalid"),
    ({"sub": None}, "claims_invalid"),
    ({"aud": "another-client"}, "audience_invalid"),
    ({"aud": ["client-1", "another-client"]}, "azp_invalid"),
    ({"aud": ["client-1", "another-client"], "azp": "another-client"}, "azp_invalid"),
])
def test_claims_pinned(issuer: TokenIssuer, claims: dict[str, Any], reason: str) -> None:
    refused(issuer, issuer.token(**claims), reason)


def test_nonce_required_and_compared(issuer: TokenIssuer) -> None:
    refused(issuer, issuer.token(nonce="other"), "nonce_invalid", nonce="mine")
    refused(issuer, issuer.token(), "nonce_invalid", nonce="mine")


def test_oversized_token(issuer: TokenIssuer) -> None:
    refused(issuer, issuer.token(padding="x" * 20000), "token_too_large")


def test_unknown_kid_flood_costs_one_jwks_fetch(issuer: TokenIssuer) -> None:
    async def run() -> int:
        async with httpx.AsyncClient() as http:
            cache = JwksCache(http, f"{issuer.url}/jwks", timeout=3, unknown_kid_interval=30)
            for i in range(20):
                token = issuer.sign(issuer.claims(), key=new_key() if i == 0 else issuer.key, kid=f"made-up-{i}")
                with pytest.raises(TokenInvalid):
                    await verify_id_token(token, cache, expect(issuer))
            return cache.fetches
    assert asyncio.run(run()) == 1
