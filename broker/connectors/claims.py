"""Turn verified claims into the normalized Identity, as each IdP's config says where fields live (OIDC
browser logins and token IdPs alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.identity import GROUPS_OVERAGE, Evidence, Identity, Protocol, claim_strings, normalize_claims


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


def groups_overage(claims: dict[str, Any], groups_claim: str) -> bool:
    """Entra ID's group overage in an ID token: over 200 groups it leaves the groups claim out and names it
    as a distributed claim (OIDC Core 5.6.2), `_claim_names: {groups: src1}` with `_claim_sources: {src1:
    {endpoint: <Graph URL>}}`. Only recognised: the endpoint is never called (the broker holds no token for
    it, and the login must not wait on Graph)."""
    names, sources = claims.get("_claim_names"), claims.get("_claim_sources")
    if not isinstance(names, dict) or not isinstance(sources, dict):
        return False
    source = sources.get(names.get(groups_claim))
    return isinstance(source, dict) and isinstance(source.get("endpoint"), str)


def identity_from_claims(
    config: OidcIdpConfig | TokenIdpConfig, claims: dict[str, Any], *, protocol: Protocol, evidence: Evidence | None,
    now: datetime,
) -> Identity:
    email = claims.get(config.claims.email)
    groups = claim_strings(claims.get(config.claims.groups, []))
    normalized = normalize_claims(claims)
    normalized.pop(GROUPS_OVERAGE, None)  # set by the broker only, never by a claim of that name
    if not groups and groups_overage(claims, config.claims.groups):  # for the decision's explanation
        normalized[GROUPS_OVERAGE] = ("true",)
    return Identity(
        idp=config.id,
        protocol=protocol,
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        email_verified=_verified(claims.get(config.claims.email_verified)),
        groups=groups,
        mfa=_mfa(config, claims),
        claims=normalized,
        authenticated_at=_auth_time(claims, now),
        evidence=evidence,
    )
