"""OIDC relying party: authorization code flow with PKCE (S256), state and nonce.

authlib builds the authorization URL and the PKCE challenge; the token request goes through the broker's
own httpx client (bounded time) and the ID token through `id_token.verify_id_token`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from broker.connectors.claims import identity_from_claims
from broker.connectors.fetch import discover, parse_document, read_capped
from broker.connectors.id_token import Expectations, verify_id_token
from broker.connectors.jwks import JwksCache, jwks_for
from broker.connectors.oidc_config import OidcIdpConfig
from broker.errors import BadRequest, LoginRefused, LoginStateInvalid, TokenInvalid, UpstreamUnavailable
from broker.identity import Evidence, Identity
from broker.telemetry import idp_refresh

DISCOVERY_TTL = 3600.0
# The token endpoint's whole answer (ID, access and refresh tokens): read no further than this.
TOKEN_RESPONSE_MAX = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the broker remembers between the redirect and the callback (server-side, single use)."""

    idp: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    return_to: str = "/roles"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PendingLogin:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class OidcConnector:
    def __init__(self, config: OidcIdpConfig, http: httpx.AsyncClient) -> None:
        self.config, self._http = config, http
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires = 0.0
        self._jwks: JwksCache | None = None

    @property
    def _timeout(self) -> float:
        return self.config.timeout.total_seconds()

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None or time.monotonic() > self._metadata_expires:
            self._metadata = await self._discover()
            self._metadata_expires = time.monotonic() + DISCOVERY_TTL
        return self._metadata

    async def _discover(self) -> ProviderMetadata:
        try:
            doc = await discover(self._http, self.config.issuer, seconds=self._timeout)
        except UpstreamUnavailable as exc:
            idp_refresh(self.config.id, "oidc_discovery", exc.reason)
            raise
        idp_refresh(self.config.id, "oidc_discovery", "ok")
        try:
            metadata = ProviderMetadata(
                str(doc["authorization_endpoint"]), str(doc["token_endpoint"]), str(doc["jwks_uri"])
            )
        except KeyError as exc:
            raise UpstreamUnavailable(f"discovery lacks {exc}", reason="idp_bad_answer") from None
        if self._jwks is None or self._jwks.uri != metadata.jwks_uri:
            self._jwks = jwks_for(self._http, metadata.jwks_uri, self.config)
        return metadata

    async def ready(self) -> None:
        """Raise UpstreamUnavailable unless discovery and a trusted key set are held (fetched if need be)."""
        await self.metadata()
        assert self._jwks is not None
        await self._jwks.key_set(None)

    async def start(self, redirect_uri: str, return_to: str) -> tuple[str, PendingLogin]:
        meta = await self.metadata()
        pending = PendingLogin(
            idp=self.config.id, state=generate_token(43), nonce=generate_token(43),
            code_verifier=generate_token(64), redirect_uri=redirect_uri, return_to=return_to,
        )
        url = prepare_grant_uri(
            meta.authorization_endpoint, self.config.client_id, "code",
            redirect_uri=redirect_uri, scope=" ".join(self.config.scopes), state=pending.state,
            nonce=pending.nonce, code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
        )
        return url, pending

    async def finish(self, params: Mapping[str, str], pending: PendingLogin) -> Identity:
        self._check_response(params, pending)
        meta = await self.metadata()
        token_response = await self._exchange(meta, params["code"], pending)
        raw = token_response.get("id_token")
        if not isinstance(raw, str):
            raise TokenInvalid("token response has no id_token", reason="id_token_missing")
        assert self._jwks is not None
        claims = await verify_id_token(raw, self._jwks, self._expectations(pending.nonce))
        return identity_from_claims(self.config, claims, protocol="oidc",
                                    evidence=Evidence("id_token", raw), now=datetime.now(UTC))

    def _expectations(self, nonce: str | None) -> Expectations:
        return Expectations(
            issuers=(self.config.issuer,), audiences=(self.config.client_id,),
            algorithms=tuple(self.config.algorithms), leeway=int(self.config.leeway.total_seconds()),
            max_bytes=self.config.max_token_bytes, nonce=nonce,
        )

    def _check_response(self, params: Mapping[str, str], pending: PendingLogin) -> None:
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise LoginStateInvalid("state does not match the pending login")
        # RFC 9207: when the IdP names itself, it must be the IdP this login went to (mix-up defence).
        if "iss" in params and params["iss"] != self.config.issuer:
            raise TokenInvalid("authorization response iss is another issuer", reason="issuer_mixup")
        if "error" in params:
            raise LoginRefused(f"IdP error {params['error'][:64]!r}", reason="idp_error")
        if not params.get("code"):
            raise BadRequest("callback without code", reason="code_missing")

    async def _exchange(self, meta: ProviderMetadata, code: str, pending: PendingLogin) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier, "client_id": self.config.client_id,
        }
        auth: httpx.Auth | None = None  # as httpx's default here: the broker's client sets no auth of its own
        if self.config.client_secret is not None:
            # RFC 6749 2.3.1: form-encode id and secret before HTTP Basic.
            auth = httpx.BasicAuth(quote(self.config.client_id, safe=""),
                                   quote(self.config.client_secret.get_secret_value(), safe=""))
        url = meta.token_endpoint
        try:
            async with asyncio.timeout(self._timeout), self._http.stream(
                    "POST", url, data=form, auth=auth, timeout=self._timeout) as response:
                body = await read_capped(response, url, max_bytes=TOKEN_RESPONSE_MAX)
                return _token_response(response.status_code, body, url)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamUnavailable("token endpoint timed out", reason="idp_timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"token endpoint: {type(exc).__name__}", reason="idp_unreachable") from None


def _token_response(status: int, body: bytes, url: str) -> dict[str, Any]:
    """The token endpoint's JSON answer, parsed with `safe_json`'s limits: the IdP is outside too."""
    try:
        document = parse_document(body, url)
    except UpstreamUnavailable as exc:
        raise UpstreamUnavailable(f"token endpoint answered {status}: {exc.detail}", reason="idp_bad_answer") from None
    if status != 200:
        error = str(document.get("error", "unknown"))[:64]
        raise TokenInvalid(f"token endpoint refused the code: {error}", reason="code_rejected")
    return document
