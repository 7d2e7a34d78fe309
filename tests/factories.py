"""Small builders shared by unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.identity import Identity


def identity(**overrides: Any) -> Identity:
    fields: dict[str, Any] = {
        "idp": "okta", "protocol": "oidc", "issuer": "https://idp.example.com", "subject": "00u1",
        "email": "alice@example.com", "email_verified": True, "groups": ("developers",), "mfa": False,
        "claims": {"department": ("platform",)}, "authenticated_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(overrides)
    return Identity(**fields)
