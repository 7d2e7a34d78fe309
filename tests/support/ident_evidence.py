"""Evidence values shaped like the real thing, for tests of what a pass-through grant forwards: an ID token
with an `exp` (unsigned: the issuers forward it, STS verifies it) and a SAMLResponse addressed to AWS or to a
broker's ACS, with its own validity window."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from lxml import etree  # type: ignore[import-untyped]

from broker.issuers.saml_assertion import AssertionContent, build_response

AWS_RECIPIENT = "https://signin.aws.amazon.com/saml"


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def id_token(expires_in: timedelta = timedelta(minutes=5), **claims: object) -> str:
    exp = int((datetime.now(UTC) + expires_in).timestamp())
    return f"{_segment({'alg': 'RS256'})}.{_segment({'sub': 'alice', 'exp': exp, **claims})}.c2ln"


def saml_response(role: str, provider: str, *, recipient: str = AWS_RECIPIENT,
                  lifetime: timedelta = timedelta(minutes=5), now: datetime | None = None) -> str:
    """Base64 of an (unsigned) samlp:Response naming (role, provider), as AssumeRoleWithSAML takes it."""
    content = AssertionContent(issuer="https://idp.example.com", name_id="alice", partition="aws",
                               recipient=recipient, roles=((role, provider),), session_name="alice",
                               session_duration=3600)
    root = build_response(content, now=now or datetime.now(UTC), lifetime=lifetime)
    return base64.b64encode(etree.tostring(root)).decode()
