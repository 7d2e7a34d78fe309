"""Temporary AWS credentials as STS returns them."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime  # timezone-aware
    role_arn: str
    assumed_role_arn: str
    via: str = "web_identity"


@functools.lru_cache(maxsize=4096)
def isoformat(moment: datetime) -> str:
    """moment.isoformat(), remembered: a cached credential's expiry is written into every answer and audit
    line that hands it out (~1.6 us each time)."""
    return moment.isoformat()
