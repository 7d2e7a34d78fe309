"""The config model of an OIDC IdP (`type: oidc`, browser logins) and what token IdPs share with it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from broker.durations import Duration
from broker.settings import HttpsUrl, IdpId, Model


class ClaimMap(Model):
    email: str = "email"
    email_verified: str = "email_verified"
    groups: str = "groups"


class MfaConfig(Model):
    amr: list[str] = []
    acr: list[str] = []


STANDARD_OIDC_CLAIMS = {
    "sub", "iss", "aud", "azp", "iat", "exp", "auth_time", "nonce", "acr", "amr", "name", "given_name",
    "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "email",
    "email_verified", "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified",
    "address", "updated_at",
}
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class JwksTiming(Model):
    """How long an IdP's signing keys are trusted (see broker/connectors/jwks.py for the guarantees)."""

    # A fetched key set is trusted this long at most (a withdrawn key: refused after this), refreshed in
    # the background from half of it on. Shorter when the IdP's Cache-Control max-age is (not under 60 s).
    jwks_max_age: Duration = timedelta(minutes=5)
    # A token whose kid the held set lacks (a new key) may start a fetch at most this often.
    jwks_unknown_kid_interval: Duration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _jwks_bounds(self) -> JwksTiming:
        if not timedelta(seconds=1) <= self.jwks_max_age <= timedelta(hours=24):
            raise ValueError("jwks_max_age must be between 1s and 24h")
        if not timedelta(seconds=1) <= self.jwks_unknown_kid_interval <= min(self.jwks_max_age, timedelta(minutes=5)):
            raise ValueError("jwks_unknown_kid_interval must be between 1s and the smaller of jwks_max_age and 5m")
        return self


class OidcIdpConfig(JwksTiming):
    id: IdpId
    type: Literal["oidc"]
    name: str
    issuer: HttpsUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    scopes: list[str] = ["openid", "email", "profile"]
    claims: ClaimMap = ClaimMap()
    mfa: MfaConfig = MfaConfig()
    algorithms: list[Algorithm] = Field(default=["RS256"], min_length=1)
    leeway: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=5)
    max_token_bytes: int = Field(default=16 * 1024, ge=1024, le=256 * 1024)
    # Claims this IdP sends beyond the standard OIDC ones (`rules check` warns about templates naming
    # claims that no IdP in a rule's scope provides).
    provides: list[str] = []
    # A PNG or SVG file (at most 16 KiB) shown beside the name in the sign-in chooser (connectors/idp_icon.py).
    icon: Path | None = None

    def with_files(self, resolve: Callable[[Path], Path]) -> tuple[OidcIdpConfig, list[tuple[str, Path]]]:
        """This config with its icon resolved against the directory of its file, and the path that must exist."""
        if self.icon is None:
            return self, []
        icon = resolve(self.icon)
        return self.model_copy(update={"icon": icon}), [("icon", icon)]

    def claims_provided(self) -> set[str]:
        mapped = {self.claims.email, self.claims.email_verified, self.claims.groups}
        return STANDARD_OIDC_CLAIMS | mapped | set(self.provides)

    @model_validator(mode="after")
    def _openid_scope(self) -> OidcIdpConfig:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include 'openid'")
        return self
