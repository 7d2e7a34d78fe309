"""Turn verified claims into the normalized Identity, as each IdP's config says where fields live."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from broker.config import OidcIdpConfig
from broker.identity import Evidence, Identity, Protocol


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, str | int | float):
        return (str(value),)
    if isinstance(value, list):
        return tuple(s for item in value if not isinstance(item, list | dict) for s in _strings(item))
    if isinstance(value, dict):
        return (json.dumps(value, sort_keys=True),)
    return ()


def normalize(claims: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every claim as a tuple of strings; nested objects also flattened one level as 'a.b'."""
    out: dict[str, tuple[str, ...]] = {}
    for name, value in claims.items():
        out[name] = _strings(value)
        if isinstance(value, dict):
            for sub, inner in value.items():
                out[f"{name}.{sub}"] = _strings(inner)
    return out


def _verified(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _mfa(config: OidcIdpConfig, claims: dict[str, Any]) -> bool:
    amr = set(_strings(claims.get("amr", [])))
    acr = set(_strings(claims.get("acr", [])))
    return bool(amr & set(config.mfa.amr)) or bool(acr & set(config.mfa.acr))


def _auth_time(claims: dict[str, Any], now: datetime) -> datetime:
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, int) and not isinstance(auth_time, bool):
        return datetime.fromtimestamp(auth_time, UTC)
    return now


def identity_from_claims(
    config: OidcIdpConfig, claims: dict[str, Any], *, protocol: Protocol, evidence: Evidence | None,
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
        groups=_strings(claims.get(config.claims.groups, [])),
        mfa=_mfa(config, claims),
        claims=normalize(claims),
        authenticated_at=_auth_time(claims, now),
        evidence=evidence,
    )
