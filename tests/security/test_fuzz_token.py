"""Fuzzing POST /oauth2/token over real HTTP: random forms (names, values, repeats, encodings), JWT-shaped
junk, genuine tokens with bytes flipped, tokens the issuer really signed over hostile headers and claims
(every type where a string or a number belongs), raw bodies, content types and origins. Never a 500, never a
stack trace, the OAuth error shape with an audit event for every refusal, and a 200 only for a token the
issuer signed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given
from hypothesis import strategies as st

from broker.token_exchange import GRANT_TYPE, ID_TOKEN_TYPE, SINGLE_VALUED
from tests.security._fuzz_support import AuditTail, TokenTarget, assert_handled, fuzz_settings, token_target

FORM = "application/x-www-form-urlencoded"
ORIGINS = [None, "https://app.example.com", "https://evil.example.com", "null", "", "https://app.example.com.",
           "HTTPS://APP.EXAMPLE.COM"]
CONTENT_TYPES = [FORM, f"{FORM}; charset=utf-8", f"{FORM};charset=UTF8", f'{FORM}; charset="utf-8"',
                 f"{FORM}; charset=latin-1", "application/json", "text/plain", "multipart/form-data; boundary=b",
                 "", f"{FORM}, {FORM}", FORM.upper()]
TEXT = st.text(max_size=60)
# JSON values of every type, nested a little (deep nesting is the JWT attack set's: tests/security).
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
ALGS = ["RS256", "none", "None", "NONE", "HS256", "ES256", "PS256", "RS512", "EdDSA", "", "rs256", "RS256 "]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_text(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


# Header and payload objects: plausible keys (or random ones) mapped to any JSON value.
HEADER = st.dictionaries(st.one_of(st.sampled_from(["alg", "kid", "typ", "jku", "jwk", "x5u", "x5c", "crit", "cty",
                                                    "b64", "enc", "zip"]), TEXT),
                         st.one_of(st.sampled_from(ALGS), JSON), max_size=5)
PAYLOAD = st.dictionaries(st.one_of(st.sampled_from(["iss", "sub", "aud", "azp", "exp", "iat", "nbf", "email",
                                                     "email_verified", "hd", "plan", "nonce", "groups"]), TEXT),
                          JSON, max_size=8)
SEGMENT = st.one_of(HEADER.map(lambda h: b64url(_json_text(h))), PAYLOAD.map(lambda p: b64url(_json_text(p))),
                    st.binary(max_size=40).map(b64url), st.text(max_size=30),
                    st.sampled_from(["", "=", "e30", "W10", "bnVsbA", "IiI", "eyJ", "!!", "\u00e9"]))
JWT_JUNK = st.lists(SEGMENT, min_size=1, max_size=5).map(".".join)
# A duplicate key in the JSON text: which one a parser keeps is its choice, never a crash.
DUPLICATED = st.tuples(st.sampled_from(["iss", "sub", "aud", "exp", "alg", "kid"]), JSON, JSON).map(
    lambda t: b64url(f'{{"{t[0]}":{_json_text(t[1]).decode()},"{t[0]}":{_json_text(t[2]).decode()}}}'.encode()))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenTarget]:
    with token_target(tmp_path_factory.mktemp("fuzz-token")) as t:
        yield t


@pytest.fixture(scope="module")
def web(target: TokenTarget) -> Iterator[tuple[httpx.Client, AuditTail]]:
    with httpx.Client(timeout=30) as client:
        yield client, AuditTail(target.audit_path)


def _post(web: tuple[httpx.Client, AuditTail], url: str, body: bytes, content_type: str | None = FORM,
          origin: str | None = None) -> httpx.Response:
    client, audit = web
    headers = {} if content_type is None else {"Content-Type": content_type}
    if origin is not None:
        headers["Origin"] = origin
    response = client.post(f"{url}/oauth2/token", content=body, headers=headers)
    assert_handled(response, audit, oauth=True)
    assert response.headers["cache-control"] == "no-store"
    return response


def _form(token: str, **extra: str) -> bytes:
    fields = {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN_TYPE, **extra}
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in fields.items()).encode()


def test_genuine_token_is_exchanged(target: TokenTarget, web: Any) -> None:
    """The fuzz target answers a genuine token with credentials (the stub STS), so refusals below are the
    broker's own decisions, not a broken set-up."""
    response = _post(web, target.url, _form(target.issuer.sign(target.claims())))
    assert response.status_code == 200, response.text[:300]
    assert response.json()["Credentials"]["AccessKeyId"]


NAMES = st.one_of(st.sampled_from([*SINGLE_VALUED, "client_id", "", "grant_type[]", "GRANT_TYPE"]), TEXT)
VALUES = st.one_of(st.sampled_from([GRANT_TYPE, ID_TOKEN_TYPE, "urn:sts-broker:token-type:aws-credentials",
                                    "arn:aws:iam::111122223333:role/MobilePassthrough", ""]), TEXT, JWT_JUNK)


@fuzz_settings(60)
@given(fields=st.lists(st.tuples(NAMES, VALUES), max_size=18), raw_joiner=st.sampled_from(["&", ";", "&&"]),
       encode=st.booleans())
def test_token_form_fields(target: TokenTarget, web: Any, fields: list[tuple[str, str]], raw_joiner: str,
                           encode: bool) -> None:
    body = raw_joiner.join(f"{quote(k) if encode else k}={quote(v) if encode else v}" for k, v in fields)
    response = _post(web, target.url, body.encode("utf-8", "surrogatepass"))
    assert response.status_code != 200


@fuzz_settings(60)
@given(token=st.one_of(JWT_JUNK, st.tuples(HEADER, DUPLICATED, SEGMENT).map(
    lambda t: f"{b64url(_json_text(t[0]))}.{t[1]}.{t[2]}")), resource=st.one_of(st.none(), VALUES))
def test_token_jwt_shaped_junk(target: TokenTarget, web: Any, token: str, resource: str | None) -> None:
    extra = {} if resource is None else {"resource": resource}
    assert _post(web, target.url, _form(token, **extra)).status_code != 200


@fuzz_settings(60)
@given(flips=st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.characters(codec="ascii")), min_size=1,
                      max_size=4))
def test_token_genuine_token_with_bytes_flipped(target: TokenTarget, web: Any,
                                                flips: list[tuple[float, str]]) -> None:
    token = list(target.issuer.sign(target.claims()))
    for where, char in flips:
        token[int(where * (len(token) - 1))] = char
    _post(web, target.url, _form("".join(token)))


def _rs256(target: TokenTarget, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Signed by hand with the issuer's key (a JWT library would refuse to encode most of these claims)."""
    signing_input = f"{b64url(_json_text(header))}.{b64url(_json_text(payload))}"
    signature = target.issuer.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@fuzz_settings(80)
@given(header=HEADER, claims=PAYLOAD, keep=st.sets(st.sampled_from(["iss", "sub", "aud", "azp", "exp", "iat"])),
       keep_header=st.sets(st.sampled_from(["alg", "kid"])))
def test_token_signed_over_hostile_claims(target: TokenTarget, web: Any, header: dict[str, Any],
                                          claims: dict[str, Any], keep: set[str], keep_header: set[str]) -> None:
    """Signed with the issuer's real key: the signature holds, so every claim check meets the hostile value."""
    genuine = target.claims()
    payload = {**claims, **{k: genuine[k] for k in keep}}
    header = {**header, **{k: {"alg": "RS256", "kid": target.issuer.kid}[k] for k in keep_header}}
    _post(web, target.url, _form(_rs256(target, header, payload)))


@fuzz_settings(60)
@given(body=st.one_of(st.binary(max_size=300), TEXT.map(str.encode)),
       content_type=st.sampled_from([None, *CONTENT_TYPES]), origin=st.sampled_from(ORIGINS))
def test_token_raw_bodies_and_headers(target: TokenTarget, web: Any, body: bytes, content_type: str | None,
                                      origin: str | None) -> None:
    assert _post(web, target.url, body, content_type, origin).status_code != 200


@fuzz_settings(30)
@given(content_type=st.sampled_from([None, *CONTENT_TYPES]), origin=st.sampled_from(ORIGINS))
def test_token_genuine_form_under_other_headers(target: TokenTarget, web: Any, content_type: str | None,
                                                origin: str | None) -> None:
    _post(web, target.url, _form(target.issuer.sign(target.claims())), content_type, origin)


@pytest.mark.parametrize("crit", [None, 1, [1], [None], [[]], ["exp"], ["b64"], []])
def test_token_crit_header_refused(target: TokenTarget, web: Any, crit: Any) -> None:
    """Found by the fuzz: a genuine signature over a header with `crit` null, a number or a list of
    non-strings made joserfc raise TypeError, answered 500. Now refused before verification (RFC 7515
    4.1.11: the broker understands no extension), with the reason in the audit log, nothing issued."""
    token = _rs256(target, {"alg": "RS256", "kid": target.issuer.kid, "crit": crit}, target.claims())
    response = _post(web, target.url, _form(token))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
    assert "Credentials" not in response.json()
    events = [json.loads(line) for line in target.audit_path.read_text().splitlines()]
    [event] = [e for e in events if e.get("error_id") == response.json()["error_id"]]
    assert event["reason"] == "header_unsupported"
