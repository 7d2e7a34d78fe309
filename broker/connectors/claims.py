"""Turn verified claims into the normalized Identity, as each IdP's config says where fields live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.identity import Evidence, Identity, Protocol, claim_strings, normalize_claims


def _verified(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _mfa(config: OidcIdpConfig | TokenIdpConfig, claims: dict[str, Any]) -> bool:
    amr = set(claim_strings(claims.get("amr", [])))
    acr = set(claim_strings(claims.get("acr", [])))
    return bool(amr & set(config.mfa.amr)) or bool(acr & set(config.mfa.acr))


def _auth_time(claims: dict[str, Any], now: datetime) -> datetime:
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, int) and not isinstance(auth_time, bool):
        return datetime.fromtimestamp(auth_time, UTC)
    return now


def identity_from_claims(
    config: OidcIdpConfig | TokenIdpConfig, claims: dict[str, Any], *, protocol: Protocol, evidence: Evidence | None,
    now: datetime,
) -> Identity:
    email = claims.get(config.claims.email)
    return Identity(
        idp=config.id,
        protocol=protocol,
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        email_verified=_verified(claims.get(config.claims.email_verified)),
        groups=claim_strings(claims.get(config.claims.groups, [])),
        mfa=_mfa(config, claims),
        claims=normalize_claims(claims),
        authenticated_at=_auth_time(claims, now),
        evidence=evidence,
    )
