"""JWT attacks against both entry points that read ID tokens: POST /oauth2/token (token exchange) and the
OIDC callback (the ID token comes back from the hand-made IdP's real token endpoint; there the IdP is the
attacker). Each token is built for real; each refusal is checked for status, reason, audit event, no STS
call, nothing issued, no 500, and a listener that key headers point at is never contacted."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.security import _jwt_support
from tests.security._jwt_support import (
    HEADER,
    MULTI_AUD,
    OIDC_CLIENT,
    SEC_AUD,
    SecEnv,
    assert_exchange_refused,
    assert_login_refused,
    b64,
    callback,
    exchange,
    nested,
    sec_claims,
    sign_raw,
    start_login,
)
from tests.support.token_issuer import TokenIssuer, new_key

# The shared fixtures, found by pytest under these names (tests/security has no conftest of its own).
client, sec_env, untouched = _jwt_support.client, _jwt_support.sec_env, _jwt_support.untouched


# An attack: (idp, nonce) -> the token. `nonce` is the login's nonce at the callback, None at /oauth2/token.
Make = Callable[[TokenIssuer, str | None], str]


def claims_for(idp: TokenIssuer, nonce: str | None, **overrides: Any) -> dict[str, Any]:
    """Valid claims for the entry point: the token IdP `sec`, or the browser IdP `hostile` with the nonce."""
    if nonce is None:
        return sec_claims(idp, **overrides)
    return idp.claims(**{"aud": OIDC_CLIENT, "nonce": nonce, **overrides})


def unsigned(header: dict[str, Any], idp: TokenIssuer, nonce: str | None, signature: str = "") -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(claims_for(idp, nonce)))}.{signature}"


def hs256_with_public_key(idp: TokenIssuer, nonce: str | None) -> str:
    """The classic confusion: HMAC keyed with the RSA public key (PEM), as a naive verifier would check it."""
    pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": idp.kid, "typ": "JWT"}
    head = f"{b64(json.dumps(header))}.{b64(json.dumps(claims_for(idp, nonce)))}"
    return f"{head}.{b64(hmac.new(pem, head.encode(), hashlib.sha256).digest())}"


def with_header(**header: Any) -> Make:
    """Signed for real with the IdP's own key, with these header members added (PyJWT sets alg)."""
    return lambda idp, nonce: idp.sign(claims_for(idp, nonce), headers=header)


def raw(header: str, payload: Callable[[TokenIssuer, str | None], str]) -> Make:
    """Exactly these JSON texts, RS256-signed with the IdP's key (so only the JSON reading can refuse)."""
    return lambda idp, nonce: sign_raw(header.replace("KID", idp.kid), payload(idp, nonce), idp.key)


def payload_text(text: str) -> Callable[[TokenIssuer, str | None], str]:
    """A payload text with the valid claims spliced in where it says CLAIMS (a JSON object body)."""
    def build(idp: TokenIssuer, nonce: str | None) -> str:
        return text.replace("CLAIMS", json.dumps(claims_for(idp, nonce))[1:-1])
    return build


ATTACKS: dict[str, tuple[Make, str]] = {
    # alg spellings and confusions
    **{f"alg {alg}": ((lambda a: lambda i, n: unsigned({"alg": a, "kid": i.kid}, i, n))(alg), "alg_not_allowed")
       for alg in ("none", "None", "NONE", "nOnE")},
    "alg none with a signature": (lambda i, n: unsigned({"alg": "none"}, i, n, b64(b"x" * 256)), "alg_not_allowed"),
    "alg missing": (lambda i, n: unsigned({"kid": i.kid}, i, n, b64(b"x" * 256)), "alg_not_allowed"),
    "alg not a string": (raw('{"alg":["RS256"],"kid":"KID"}', payload_text("{CLAIMS}")), "alg_not_allowed"),
    "HS256 keyed with the RSA public key": (hs256_with_public_key, "alg_not_allowed"),
    "rs256 lower case": (raw('{"alg":"rs256","kid":"KID"}', payload_text("{CLAIMS}")), "alg_not_allowed"),
    "ES256 not allowed": (lambda i, n: jwt.encode(claims_for(i, n), ec.generate_private_key(ec.SECP256R1()),
                                                  algorithm="ES256", headers={"kid": i.kid}), "alg_not_allowed"),
    "PS256 not allowed": (lambda i, n: i.sign(claims_for(i, n), alg="PS256"), "alg_not_allowed"),
    # a key supplied or pointed at by the token: the listener must never be contacted
    "jwk header": (lambda i, n: i.sign(claims_for(i, n), key=(evil := new_key()), headers={
        "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(evil.public_key()))}), "key_in_header"),
    "x5c header": (with_header(x5c=["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]), "key_in_header"),
    # kid: never a path, a query or a URL; only looked up among the keys held
    "kid SQL": (lambda i, n: i.sign(claims_for(i, n), kid="x' OR '1'='1"), "kid_invalid"),
    "kid NUL": (lambda i, n: i.sign(claims_for(i, n), kid="test-key-1\x00"), "kid_invalid"),
    "kid huge": (lambda i, n: i.sign(claims_for(i, n), kid="k" * 5000), "kid_invalid"),
    "kid number": (raw('{"alg":"RS256","kid":123}', payload_text("{CLAIMS}")), "kid_invalid"),
    "kid object": (raw('{"alg":"RS256","kid":{"$ne":null}}', payload_text("{CLAIMS}")), "kid_invalid"),
    "kid list": (raw('{"alg":"RS256","kid":["KID"]}', payload_text("{CLAIMS}")), "kid_invalid"),
    "kid bool": (raw('{"alg":"RS256","kid":true}', payload_text("{CLAIMS}")), "kid_invalid"),
    "kid traversal, signed by another key": (lambda i, n: i.sign(claims_for(i, n), key=new_key(),
                                                                  kid="../../../../etc/passwd"), "signature_invalid"),
    # headers that change how the token is read
    "crit": (with_header(crit=["exp"], exp=1), "header_unsupported"),
    "crit naming nothing": (with_header(crit=[]), "header_unsupported"),
    "b64 false": (raw('{"alg":"RS256","kid":"KID","b64":false,"crit":["b64"]}', payload_text("{CLAIMS}")),
                  "header_unsupported"),
    # JSON the parser must not be fed as is
    "header 2,000 deep": (lambda i, n: f"{b64(nested(2000))}.{b64(json.dumps(claims_for(i, n)))}.{b64(b's')}",
                          "token_malformed"),
    "payload 2,000 deep": (lambda i, n: f"{b64(HEADER)}.{b64(nested(2000))}.{b64(b's')}", "token_malformed"),
    "deep inside the payload": (raw(HEADER, payload_text('{CLAIMS,"x":' + nested(1500) + "}")), "token_malformed"),
    "deep inside the header": (raw('{"alg":"RS256","kid":"KID","x":' + nested(1500) + "}", payload_text("{CLAIMS}")),
                               "token_malformed"),
    "two sub": (raw(HEADER, payload_text('{CLAIMS,"sub":"someone-else"}')), "token_malformed"),
    "two aud": (raw(HEADER, payload_text('{CLAIMS,"aud":"another-app"}')), "token_malformed"),
    "two alg": (raw('{"alg":"none","kid":"KID","alg":"RS256"}', payload_text("{CLAIMS}")), "token_malformed"),
    "NaN claim": (raw(HEADER, payload_text('{CLAIMS,"x":NaN}')), "token_malformed"),
    "payload not an object": (raw(HEADER, lambda i, n: json.dumps([claims_for(i, n)])), "token_malformed"),
    "padded base64": (lambda i, n: i.sign(claims_for(i, n)).replace(".", "==.", 1), "token_malformed"),
    "JWE shape": (lambda i, n: ".".join([b64(HEADER), "", b64(b"iv"), b64(b"ct"), b64(b"tag")]), "token_malformed"),
    "not a JWT": (lambda i, n: "not-a-jwt", "token_malformed"),
    # types the claims must have
    "exp as string": (lambda i, n: i.sign(claims_for(i, n, exp=str(int(time.time()) + 300))), "claims_invalid"),
    "iat as bool": (lambda i, n: i.sign(claims_for(i, n, iat=True)), "claims_invalid"),
    "nbf as string": (lambda i, n: i.sign(claims_for(i, n, nbf="0")), "claims_invalid"),
    "sub as list": (lambda i, n: i.sign(claims_for(i, n, sub=["alice", "bob"])), "claims_invalid"),
    "sub as number": (lambda i, n: i.sign(claims_for(i, n, sub=1234)), "claims_invalid"),
    "iss as list": (raw(HEADER, lambda i, n: json.dumps(claims_for(i, n, iss=[i.url]))), "claims_invalid"),
    "exp infinite": (raw(HEADER, lambda i, n: json.dumps(claims_for(i, n, exp=None))[:-1] + ',"exp":1e400}'),
                     "claims_invalid"),
    "aud as object": (lambda i, n: i.sign(claims_for(i, n, aud={"x": 1})), "claims_invalid"),
    "aud list of lists": (lambda i, n: i.sign(claims_for(i, n, aud=[[SEC_AUD, OIDC_CLIENT]])), "claims_invalid"),
}
# Cases whose refusal differs by entry point: token exchange (400) picks the IdP by the unverified payload.
AT_TOKEN_ENDPOINT = {
    # No IdP issues tokens for an `iss` that is not a string.
    "iss as list": "issuer_unknown",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_token_exchange_refuses(sec_env: SecEnv, untouched: None, name: str) -> None:
    make, reason = ATTACKS[name]
    response = exchange(sec_env, make(sec_env.idp, None))
    assert_exchange_refused(sec_env, response, AT_TOKEN_ENDPOINT.get(name, reason))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_oidc_callback_refuses(sec_env: SecEnv, untouched: None, client: httpx.Client, name: str) -> None:
    make, reason = ATTACKS[name]
    params = start_login(sec_env, client)
    sec_env.idp.next_id_token = make(sec_env.idp, params["nonce"])
    assert_login_refused(sec_env, client, callback(sec_env, client, params), reason)


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_key_url_headers_never_fetched(sec_env: SecEnv, untouched: None, client: httpx.Client, header: str) -> None:
    """jku/x5u name the listener; the `untouched` fixture then asserts it saw no connection at all."""
    target = f"{sec_env.listener.url}/keys"
    token = sec_env.idp.sign(sec_claims(sec_env.idp), headers={header: target})
    assert_exchange_refused(sec_env, exchange(sec_env, token), "key_in_header")
    params = start_login(sec_env, client)
    sec_env.idp.next_id_token = sec_env.idp.sign(claims_for(sec_env.idp, params["nonce"]), headers={header: target})
    assert_login_refused(sec_env, client, callback(sec_env, client, params), "key_in_header")


def test_es256_header_meets_the_rsa_key(sec_env: SecEnv, untouched: None) -> None:
    """At an IdP that allows ES256, a token claiming ES256 with the RSA key's kid (signed by some EC key) is
    judged against that RSA key, and fails."""
    claims = sec_claims(sec_env.idp, aud=MULTI_AUD)
    token = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                       headers={"kid": sec_env.idp.kid})
    assert_exchange_refused(sec_env, exchange(sec_env, token), "signature_invalid")
    token = sec_env.idp.sign(sec_claims(sec_env.idp, aud=MULTI_AUD), alg="PS256", key=new_key())
    assert_exchange_refused(sec_env, exchange(sec_env, token), "signature_invalid")


@pytest.mark.parametrize("value", ["false", "1", "yes", 1, ["true"], {"true": True}, None])
def test_email_verified_must_be_true(sec_env: SecEnv, untouched: None, value: Any) -> None:
    token = sec_env.idp.sign(sec_claims(sec_env.idp, email_verified=value))
    assert_exchange_refused(sec_env, exchange(sec_env, token), "email_unverified")


@pytest.mark.parametrize("value", [True, "true"])
def test_email_verified_true_or_its_string(sec_env: SecEnv, value: Any) -> None:
    """Decided: the string "true" counts as verified, as the boolean does (Sign in with Apple sends strings)."""
    token = sec_env.idp.sign(sec_claims(sec_env.idp, email_verified=value))
    response = exchange(sec_env, token)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["Credentials"]["AccessKeyId"]


def test_controls_pass(sec_env: SecEnv, client: httpx.Client) -> None:
    """The same broker accepts the genuine article at both entry points, so each refusal above is the attack's."""
    assert exchange(sec_env, sec_env.idp.sign(sec_claims(sec_env.idp))).status_code == 200
    params = start_login(sec_env, client)
    sec_env.idp.next_id_token = sec_env.idp.sign(claims_for(sec_env.idp, params["nonce"]))
    response = callback(sec_env, client, params)
    assert response.status_code == 303 and client.cookies.get("sts_broker_session")
