"""The config model of a token IdP (`type: token`: ID tokens exchanged at POST /oauth2/token)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from broker.connectors.oidc_config import STANDARD_OIDC_CLAIMS, Algorithm, ClaimMap, JwksTiming, MfaConfig
from broker.durations import Duration
from broker.settings import HttpsUrl, IdpId

GOOGLE_ISSUER = "https://accounts.google.com"
# The preset fills what the deployment leaves out: Google issues `iss` in two forms and publishes its
# keys at a fixed JWKS URI (the one its discovery document names).
TOKEN_PRESETS: dict[str, dict[str, Any]] = {
    "google": {"name": "Google", "issuer": GOOGLE_ISSUER, "issuers": [GOOGLE_ISSUER, "accounts.google.com"],
               "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs", "algorithms": ["RS256"]},
}


class TokenIdpConfig(JwksTiming):
    """Bearer ID tokens an app already holds, exchanged at POST /oauth2/token (never a browser login)."""

    id: IdpId
    type: Literal["token"]
    preset: Literal["google"] | None = None
    name: str = ""
    issuer: HttpsUrl  # discovery base (when jwks_uri is absent) and the default accepted `iss`
    issuers: list[Annotated[str, Field(min_length=1)]] = []  # accepted `iss` values, exact; default [issuer]
    jwks_uri: HttpsUrl | None = None  # default: discovered from {issuer}/.well-known/openid-configuration
    client_ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)  # `aud` must name one
    # `azp` allow-list (the app client ids: Android, iOS, web). Empty: `azp`, when present, must be one of
    # client_ids (OIDC Core 3.1.3.7).
    authorized_parties: list[Annotated[str, Field(min_length=1)]] = []
    hosted_domains: list[str] = []  # Google Workspace: `hd` must be one of these
    require_email_verified: bool = False
    claims: ClaimMap = ClaimMap()
    mfa: MfaConfig = MfaConfig()
    algorithms: list[Algorithm] = Field(default=["RS256"], min_length=1)
    leeway: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=5)
    max_token_bytes: int = Field(default=8 * 1024, ge=1024, le=20000)  # 20000: STS's WebIdentityToken cap
    # Replay within the token's life: `allow` (the default: an app re-presents its ID token to refresh
    # credentials, as with Cognito) or `once` (each token accepted once, across replicas, until it expires).
    replay: Literal["allow", "once"] = "allow"
    provides: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in TOKEN_PRESETS:
            return {**TOKEN_PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _defaults(self) -> TokenIdpConfig:
        if self.leeway > timedelta(minutes=5):
            raise ValueError("leeway must be at most 5m")
        updates: dict[str, Any] = {}
        if not self.issuers:
            updates["issuers"] = [self.issuer]
        if not self.name:
            updates["name"] = self.id
        for key, value in updates.items():
            object.__setattr__(self, key, value)
        return self

    def claims_provided(self) -> set[str]:
        mapped = {self.claims.email, self.claims.email_verified, self.claims.groups}
        google = {"hd"} if self.preset == "google" else set()
        return STANDARD_OIDC_CLAIMS | mapped | google | set(self.provides)
