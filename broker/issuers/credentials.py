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
    assumed_role_arn: str  # AssumedRoleUser/Arn (FederatedUser/Arn for a federation token): CloudTrail's principal
    via: str = "web_identity"
    # AssumeRole called with temporary credentials (a role chain): AWS caps the session, and its console, at 1 h.
    chained: bool = False
    # The access key that signed AssumeRole / GetFederationToken (a hub session's or the broker's own): the
    # accessKeyId CloudTrail records for that call. Key ids are not secrets.
    caller_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallerKeys:
    """Credentials that sign an STS call (the broker's own, or a hub session's)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def temporary(self) -> bool:
        return bool(self.session_token)

    @classmethod
    def of(cls, creds: Credentials) -> CallerKeys:
        return cls(creds.access_key_id, creds.secret_access_key, creds.session_token)


@functools.lru_cache(maxsize=4096)
def isoformat(moment: datetime) -> str:
    """moment.isoformat(), remembered: a cached credential's expiry is written into every answer and audit
    line that hands it out (~1.6 us each time)."""
    return moment.isoformat()
