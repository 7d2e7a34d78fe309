"""Every bad input of "OIDC and bearer ID tokens" (security.md 12-17, 22-24), built for real: tokens PyJWT
signs with a wrong key, `alg: none`, HMAC keyed with the RSA public key, keys in the header, odd kids,
oversized, expired, issued in the future, wrong iss/aud/azp/hd, unverified email, floods of unknown kids;
malformed forms and wrong content types. Each: the RFC 6749 error and status, an audit event with the
reason code and error id, nothing issued, no STS call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.token_issuer import TokenIssuer, new_key, public_jwk
from tests.token_exchange.conftest import (
    FORM,
    GOOGLE_ISS,
    MINTED,
    ExchangeEnv,
    assert_refused,
    exchange,
    form,
    google_token,
    mobile_claims,
    mobile_token,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def alg_none(idp: TokenIssuer) -> str:
    return _unsigned({"alg": "none", "kid": idp.kid}, mobile_claims(idp)) + "."


def hmac_with_public_key(idp: TokenIssuer) -> str:
    pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _unsigned({"alg": "HS256", "kid": idp.kid, "typ": "JWT"}, mobile_claims(idp))
    return f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def key_in_header(idp: TokenIssuer) -> str:
    evil = new_key()
    return idp.sign(mobile_claims(idp), key=evil, headers={"jwk": public_jwk(evil, "evil")})


def tampered(idp: TokenIssuer) -> str:
    header, _, signature = mobile_token(idp).split(".")
    return f"{header}.{_b64(json.dumps(mobile_claims(idp, sub='admin')).encode())}.{signature}"


now = int(time.time())
TOKENS: dict[str, tuple[Callable[[TokenIssuer], str], str]] = {
    "wrong key": (lambda i: i.sign(mobile_claims(i), key=new_key()), "signature_invalid"),
    "payload swapped under a valid signature": (tampered, "signature_invalid"),
    "alg none": (alg_none, "alg_not_allowed"),
    "HMAC keyed with the public key": (hmac_with_public_key, "alg_not_allowed"),
    "RS512 not in the allow-list": (lambda i: i.sign(mobile_claims(i), alg="RS512"), "alg_not_allowed"),
    "jwk in header": (key_in_header, "key_in_header"),
    "jku in header": (lambda i: i.sign(mobile_claims(i), headers={"jku": "https://evil.example/jwks"}),
                      "key_in_header"),
    "odd kid": (lambda i: i.sign(mobile_claims(i), kid="../../etc/passwd\x00"), "kid_invalid"),
    "oversized": (lambda i: i.sign(mobile_claims(i, padding="x" * 9000)), "token_too_large"),
    "beyond STS's limit": (lambda i: i.sign(mobile_claims(i, padding="x" * 21000)), "token_too_large"),
    "expired": (lambda i: mobile_token(i, exp=int(time.time()) - 120), "token_expired"),
    "issued in the future": (lambda i: mobile_token(i, iat=int(time.time()) + 600), "claims_invalid"),
    "not yet valid": (lambda i: mobile_token(i, nbf=int(time.time()) + 600), "claims_invalid"),
    "no exp": (lambda i: mobile_token(i, exp=None), "claims_invalid"),
    "no sub": (lambda i: i.sign({**mobile_claims(i), "sub": None}), "claims_invalid"),
    "wrong iss": (lambda i: mobile_token(i, iss="https://evil.example.com"), "issuer_unknown"),
    "iss with a trailing slash": (lambda i: mobile_token(i, iss=i.url + "/"), "issuer_unknown"),
    "wrong aud": (lambda i: mobile_token(i, aud="another-app"), "audience_invalid"),
    "wrong azp": (lambda i: mobile_token(i, azp="another-app"), "azp_invalid"),
    "no azp where apps are pinned": (lambda i: mobile_token(i, azp=None), "azp_invalid"),
    "google: wrong iss form": (lambda i: google_token(i, iss="http://accounts.google.com"), "issuer_unknown"),
    "google: unverified email": (lambda i: google_token(i, email_verified=False), "email_unverified"),
    "google: no email_verified": (lambda i: google_token(i, email_verified=None), "email_unverified"),
    "google: other Workspace domain": (lambda i: google_token(i, hd="evil.example"), "hd_invalid"),
    "google: consumer account (no hd)": (lambda i: google_token(i, hd=None), "hd_invalid"),
    "google: wrong azp": (lambda i: google_token(i, azp="1234-web.apps.googleusercontent.com"), "azp_invalid"),
    "not a JWT": (lambda i: "not-a-jwt", "token_malformed"),
    "payload not JSON": (lambda i: f"{_b64(b'{}')}.{_b64(b'[1')}.x", "token_malformed"),
}


@pytest.fixture
def counts(env: ExchangeEnv) -> Iterator[None]:
    issued, calls = env.issued(), env.sts_calls()
    yield
    assert env.issued() == issued and env.sts_calls() == calls, "a refused request issued or called STS"


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_bad_subject_token(env: ExchangeEnv, counts: None, name: str) -> None:
    make, reason = TOKENS[name]
    assert_refused(env, exchange(env.url, make(env.idp)), 400, "invalid_grant", reason)


def test_expired_says_so(env: ExchangeEnv) -> None:
    body = exchange(env.url, mobile_token(env.idp, exp=int(time.time()) - 120)).json()
    assert body["error_description"] == "The subject token has expired."


def test_unknown_kid_flood_costs_at_most_one_jwks_fetch(env: ExchangeEnv, counts: None) -> None:
    # The tokens are made before the flood: generating 25 RSA keys inside it took longer than the 5 s
    # unknown-kid interval on a busy machine, which (rightly) allowed a second fetch.
    stranger = new_key()
    tokens = [env.idp.sign(mobile_claims(env.idp), key=stranger, kid=f"made-up-{n}") for n in range(25)]
    before = env.idp.jwks_requests
    for token in tokens:
        assert_refused(env, exchange(env.url, token), 400, "invalid_grant", "signature_invalid")
    assert env.idp.jwks_requests - before <= 1


def test_google_token_never_passes_to_another_idp(env: ExchangeEnv, counts: None) -> None:
    """A token for the generic IdP's audience but Google's issuer is judged by Google's config (and fails)."""
    token = google_token(env.idp, aud="mobile-server")
    assert_refused(env, exchange(env.url, token), 400, "invalid_grant", "audience_invalid")


RAW_BODIES: dict[str, tuple[bytes, str, str, str]] = {
    # name: (body, content type, error, reason)
    "json body": (b'{"grant_type": "x"}', "application/json", "invalid_request", "content_type_unsupported"),
    "multipart": (b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\n",
                  "multipart/form-data; boundary=b", "invalid_request", "content_type_unsupported"),
    "no content type": (b"grant_type=x", "", "invalid_request", "content_type_unsupported"),
    "latin-1 form": (b"grant_type=x", f"{FORM}; charset=latin-1", "invalid_request", "content_type_unsupported"),
    "not UTF-8": (b"grant_type=\xff\xfe", FORM, "invalid_request", "form_not_utf8"),
    "field without =": (b"grant_type", FORM, "invalid_request", "form_malformed"),
    "too many fields": ("&".join(f"f{i}=1" for i in range(40)).encode(), FORM, "invalid_request", "form_malformed"),
    "empty": (b"", FORM, "invalid_request", "grant_type_missing"),
}


@pytest.mark.parametrize("name", sorted(RAW_BODIES))
def test_malformed_request(env: ExchangeEnv, counts: None, name: str) -> None:
    body, content_type, error, reason = RAW_BODIES[name]
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(f"{env.url}/oauth2/token", content=body, headers=headers)
    assert_refused(env, response, 400, error, reason)


def test_two_content_types_are_refused_whichever_comes_first(env: ExchangeEnv, counts: None) -> None:
    body = _encoded(list(form(mobile_token(env.idp)).items()))
    for types in ([FORM, "text/plain"], ["text/plain", FORM], [FORM, FORM]):
        response = httpx.post(f"{env.url}/oauth2/token", content=body,
                              headers=[("Content-Type", value) for value in types])
        assert_refused(env, response, 400, "invalid_request", "content_type_unsupported")


def _encoded(pairs: list[tuple[str, str]]) -> bytes:
    return httpx.QueryParams(tuple(pairs)).__str__().encode()


FORMS: dict[str, tuple[Callable[[TokenIssuer], list[tuple[str, str]]], str, str]] = {
    "grant type password": (lambda i: [*_without(form(mobile_token(i)), "grant_type"), ("grant_type", "password")],
                            "unsupported_grant_type", "unsupported_grant_type"),
    # authorization_code is the CLI's grant (tests/flows/test_cli_*): a token exchange form lacks its fields.
    "grant type authorization_code": (lambda i: [*_without(form(mobile_token(i)), "grant_type"),
                                                 ("grant_type", "authorization_code")],
                                      "invalid_request", "parameter_missing"),
    "no subject_token": (lambda i: _without(form(""), "subject_token"), "invalid_request", "subject_token_missing"),
    "access token type": (lambda i: [*_without(form(mobile_token(i)), "subject_token_type"),
                                     ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")],
                          "invalid_request", "subject_token_type_unsupported"),
    "requested jwt": (lambda i: [*form(mobile_token(i)).items(),
                                 ("requested_token_type", "urn:ietf:params:oauth:token-type:jwt")],
                      "invalid_request", "requested_token_type_unsupported"),
    "actor token": (lambda i: [*form(mobile_token(i)).items(), ("actor_token", mobile_token(i))],
                    "invalid_request", "actor_token_unsupported"),
    "subject_token twice": (lambda i: [*form(mobile_token(i)).items(), ("subject_token", mobile_token(i))],
                            "invalid_request", "parameter_repeated"),
    "resource twice": (lambda i: [*form(mobile_token(i), resource=MINTED).items(), ("resource", MINTED)],
                       "invalid_request", "parameter_repeated"),
    "resource not a role ARN": (lambda i: [*form(mobile_token(i), resource="https://evil.example").items()],
                                "invalid_target", "resource_invalid"),
    "resource not granted": (lambda i: [*form(mobile_token(i), resource=MINTED).items()],
                             "invalid_target", "role_not_granted"),
    "no role at all": (lambda i: [*form(mobile_token(i, plan="banned")).items()], "invalid_target",
                       "role_not_granted"),
}


def _without(fields: dict[str, str], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in fields.items() if k != name]


@pytest.mark.parametrize("name", sorted(FORMS))
def test_bad_form(env: ExchangeEnv, counts: None, name: str) -> None:
    make, error, reason = FORMS[name]
    response = httpx.post(f"{env.url}/oauth2/token", content=_encoded(make(env.idp)), headers={"Content-Type": FORM})
    assert_refused(env, response, 400, error, reason)


def test_no_role_and_not_granted_look_alike(env: ExchangeEnv) -> None:
    """Security 24: "unknown user" and "no role" get the same answer."""
    no_role = exchange(env.url, mobile_token(env.idp, plan="banned")).json()
    not_granted = exchange(env.url, mobile_token(env.idp), resource=MINTED).json()
    assert no_role["error"] == not_granted["error"] and no_role["error_description"] == not_granted["error_description"]


def test_oversized_body(env: ExchangeEnv, counts: None) -> None:
    response = httpx.post(f"{env.url}/oauth2/token", content=b"a=" + b"x" * 70000, headers={"Content-Type": FORM})
    assert_refused(env, response, 413, "invalid_request", "payload_too_large")


def test_get_is_not_allowed(env: ExchangeEnv) -> None:
    assert httpx.get(f"{env.url}/oauth2/token").status_code == 405


def test_nothing_secret_in_the_audit_log(env: ExchangeEnv) -> None:
    token = mobile_token(env.idp)
    body = exchange(env.url, token).json()
    exchange(env.url, token[:-4] + "AAAA")
    log = env.audit_path.read_text()
    signature = token.rsplit(".", 1)[1]
    assert signature not in log and body["Credentials"]["SecretAccessKey"] not in log
    assert body["Credentials"]["SessionToken"] not in log


def test_google_access_is_for_google_issuer_only(env: ExchangeEnv) -> None:
    assert exchange(env.url, google_token(env.idp, iss=GOOGLE_ISS)).status_code == 200
