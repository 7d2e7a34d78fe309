"""A hand-made OIDC issuer for tests: its own RSA key, discovery and JWKS over real loopback HTTP, tokens
signed with PyJWT (a JWT library the broker does not use), so the broker's checks are judged from outside."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from broker.devstack.servers import http_server, send_json


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class TokenIssuer:
    url: str = ""
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = "test-key-1"
    jwks_requests: int = 0
    cache_control: str = "max-age=300"
    next_id_token: str = ""  # what the token endpoint hands out next
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_status: int = 200  # anything else: the JWKS endpoint answers that status (an IdP outage)
    token_body: bytes | None = None  # when set, the token endpoint answers these bytes as its JSON (a hostile IdP)
    jwks_body: bytes | None = None  # when set, the JWKS endpoint answers these bytes (garbage, a broken IdP)
    jwks_delay: float = 0.0  # seconds the JWKS endpoint stalls before answering (a slow IdP)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, self.kid)]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.url, "sub": "user-1", "aud": "client-1", "iat": now,
                                  "exp": now + 300, "email": "alice@example.com", "email_verified": True}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None,
             alg: str = "RS256", headers: dict[str, Any] | None = None) -> str:
        header = {"kid": kid or self.kid, **(headers or {})}
        return jwt.encode(claims, key or self.key, algorithm=alg, headers=header)

    def token(self, **overrides: Any) -> str:
        return self.sign(self.claims(**overrides))


def _handler(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                send_json(self, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                                 "authorization_endpoint": f"{issuer.url}/authorize",
                                 "token_endpoint": f"{issuer.url}/token"}, {"Cache-Control": issuer.cache_control})
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                time.sleep(issuer.jwks_delay)
                if issuer.jwks_status != 200:
                    self.send_error(issuer.jwks_status)
                    return
                if issuer.jwks_body is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(issuer.jwks_body)))
                    self.end_headers()
                    self.wfile.write(issuer.jwks_body)
                    return
                send_json(self, issuer.jwks(), {"Cache-Control": issuer.cache_control})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            if self.path != "/token":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            issuer.token_requests.append({**form, "authorization": self.headers.get("Authorization", "")})
            if issuer.token_body is not None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(issuer.token_body)))
                self.end_headers()
                self.wfile.write(issuer.token_body)
                return
            send_json(self, {"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                             "id_token": issuer.next_id_token})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_issuer(issuer: TokenIssuer | None = None) -> Iterator[TokenIssuer]:
    issuer = issuer or TokenIssuer()
    with http_server(_handler(issuer)) as url:
        issuer.url = url
        yield issuer
