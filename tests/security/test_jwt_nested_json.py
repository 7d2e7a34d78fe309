"""Finding 5: deeply nested JSON (a RecursionError in the standard parser) in every JSON the broker reads
from outside: a subject token at /oauth2/token, an ID token and the token endpoint's answer in the
browser flow, JWKS and discovery documents. Never a 500: a refusal with a reason, audited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from broker.connectors.fetch import discover
from broker.connectors.jwks import JwksCache
from broker.devstack.servers import http_server
from broker.errors import UpstreamUnavailable
from broker.safe_json import MAX_DEPTH, JsonRefused, loads, loads_object
from broker.web.errors import http_status
from tests.security import _jwt_support
from tests.security._jwt_support import (
    HEADER,
    OIDC_CLIENT,
    SecEnv,
    assert_exchange_refused,
    assert_login_refused,
    b64,
    callback,
    exchange,
    nested,
    sec_claims,
    start_login,
)

# The shared fixtures, found by pytest under these names (tests/security has no conftest of its own).
client, sec_env, untouched = _jwt_support.client, _jwt_support.sec_env, _jwt_support.untouched


def deep_token(header: str, payload: str) -> str:
    return f"{b64(header)}.{b64(payload)}.{b64(b'signature')}"


# ---- POST /oauth2/token ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "reason"), [(10_000, "token_too_large"), (5_000, "token_malformed"),
                                               (1_000, "token_malformed")])
@pytest.mark.parametrize("where", ["header", "payload"])
def test_subject_token_nested(sec_env: SecEnv, untouched: None, where: str, depth: int, reason: str) -> None:
    """10,000 deep is over the size cap (20,000 bytes) before anything is parsed; under it, the depth cap."""
    claims = json.dumps(sec_claims(sec_env.idp))
    token = deep_token(nested(depth), claims) if where == "header" else deep_token(HEADER, nested(depth))
    assert_exchange_refused(sec_env, exchange(sec_env, token), reason)


# ---- the OIDC callback: the IdP (the attacker here) answers the code exchange --------------------------------


@pytest.mark.parametrize("where", ["header", "payload", "claim"])
def test_id_token_nested_10000_deep(sec_env: SecEnv, untouched: None, client: httpx.Client, where: str) -> None:
    params = start_login(sec_env, client)
    claims = sec_env.idp.claims(aud=OIDC_CLIENT, nonce=params["nonce"])
    if where == "header":
        token = deep_token(nested(10_000), json.dumps(claims))
    elif where == "payload":
        token = deep_token(HEADER, nested(10_000))
    else:
        token = deep_token(HEADER, json.dumps({**claims, "groups": json.loads(nested(30))})[:-1]
                           + ',"x":' + nested(10_000) + "}")
    sec_env.idp.next_id_token = token
    assert_login_refused(sec_env, client, callback(sec_env, client, params), "token_malformed")


@pytest.mark.parametrize("body", [
    nested(10_000).encode(),
    b'{"token_type":"Bearer","id_token":' + nested(10_000).encode() + b"}",
    b'{"id_token":"a.b.c","id_token":"d.e.f"}',
    b'{"id_token":"a.b.c","expires_in":NaN}',
    b"x" * (1024 * 1024 + 1),
], ids=["nested", "nested-member", "duplicate-id_token", "nan", "over-1MiB"])
def test_token_endpoint_answer_hostile(sec_env: SecEnv, untouched: None, client: httpx.Client, body: bytes) -> None:
    params = start_login(sec_env, client)
    sec_env.idp.token_body = body
    try:
        response = callback(sec_env, client, params)
    finally:
        sec_env.idp.token_body = None
    reason = "idp_too_large" if len(body) > 1024 * 1024 else "idp_bad_answer"
    assert_login_refused(sec_env, client, response, reason, status=502)


# ---- JWKS and discovery documents (real HTTP on loopback) ---------------------------------------------------


@pytest.fixture(scope="module")
def hostile_documents() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server answering each path with the bytes a test puts there."""
    documents: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path, b"")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        yield url, documents


HOSTILE_DOCUMENTS = {
    "nested": nested(20_000).encode(),
    "nested-member": b'{"keys":' + nested(20_000).encode() + b"}",
    "duplicate-keys": b'{"keys":[],"keys":[]}',
    "not-an-object": b"[]",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_jwks_document_hostile(hostile_documents: tuple[str, dict[str, bytes]], name: str) -> None:
    url, documents = hostile_documents
    documents[f"/{name}/jwks"] = HOSTILE_DOCUMENTS[name]

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            await JwksCache(http, f"{url}/{name}/jwks", timeout=3).key_set("k1")
    with pytest.raises(UpstreamUnavailable) as err:
        asyncio.run(run())
    assert err.value.reason == "idp_bad_answer" and http_status(err.value) == 502


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_discovery_document_hostile(hostile_documents: tuple[str, dict[str, bytes]], name: str) -> None:
    url, documents = hostile_documents
    documents[f"/{name}/.well-known/openid-configuration"] = HOSTILE_DOCUMENTS[name]

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            await discover(http, f"{url}/{name}", seconds=3)
    with pytest.raises(UpstreamUnavailable) as err:
        asyncio.run(run())
    assert err.value.reason == "idp_bad_answer"


# ---- the parser's limits themselves ---------------------------------------------------------------------


def test_depth_limit_is_exact() -> None:
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(JsonRefused, match="deeper"):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(JsonRefused, match="deeper"):
        loads('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 5000, "b": '\\"[{' * 2000, "c": ["]"] * 100})
    assert loads_object(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    nested(1_000_000),
    '"' + '\\"[' * 300_000,  # an unterminated string full of escaped quotes: linear, not quadratic
    "[" * 500_000 + '"' + "]" * 10,
])
def test_hostile_texts_refused_fast(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(JsonRefused):
        loads(text)
    assert time.perf_counter() - started < 2.0


def test_recursion_error_is_caught_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces: were the depth check ever bypassed, the parser's RecursionError is still a refusal."""
    monkeypatch.setattr("broker.safe_json._depth_within", lambda text, max_depth: True)
    with pytest.raises(JsonRefused, match="too deep"):
        loads(nested(100_000))


@pytest.mark.parametrize("text", ['{"sub": "\\ud800x"}', '{"a": ["ok", "\\udfff"]}', '{"\\ud83d": 1}'])
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(JsonRefused, match="surrogate"):
        loads(text)


def test_escaped_pairs_and_plain_text_still_parse() -> None:
    text = json.dumps({"name": "\U0001f600 Zo\u00eb", "escaped": "\\ud800 is six characters"})
    assert loads_object(text) == json.loads(text)
