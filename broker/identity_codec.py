"""Identity <-> JSON-able dict, lossless, for whatever stores an Identity between requests (browser sessions).

Every field round-trips, `evidence` included: a pass-through grant needs the IdP's own ID token or SAMLResponse
when the person asks for credentials, which is a later request than the login (tests/test_ident_codec.py proves
identity_from_dict(identity_to_dict(x)) == x, evidence and tzinfo offset included, through both stores).

The dict holds the evidence in clear: it is as secret as the session itself and goes only where sessions go
(the state store), never to a log. Decoding checks every type, so a document that is not one this module wrote
(an older layout, a hand-edited Redis key) is refused with ValueError rather than read half-way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, get_args

from broker.identity import Evidence, Identity, Protocol

_PROTOCOLS = frozenset(get_args(Protocol))
_EVIDENCE_KINDS = frozenset(("id_token", "saml_response"))
_FIELDS = frozenset(("idp", "protocol", "issuer", "subject", "email", "email_verified", "groups", "mfa", "claims",
                     "authenticated_at", "evidence"))


def identity_to_dict(identity: Identity) -> dict[str, Any]:
    evidence = identity.evidence
    return {
        "idp": identity.idp, "protocol": identity.protocol, "issuer": identity.issuer,
        "subject": identity.subject, "email": identity.email, "email_verified": identity.email_verified,
        "groups": list(identity.groups), "mfa": identity.mfa,
        "claims": {name: list(values) for name, values in identity.claims.items()},
        "authenticated_at": _instant_to_dict(identity.authenticated_at),
        "evidence": None if evidence is None else {"kind": evidence.kind, "value": evidence.value},
    }


def identity_from_dict(data: Any) -> Identity:
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise ValueError("not a stored identity")
    return Identity(
        idp=_text(data["idp"]), protocol=_protocol(data["protocol"]), issuer=_text(data["issuer"]),
        subject=_text(data["subject"]), email=_optional_text(data["email"]),
        email_verified=_optional_bool(data["email_verified"]), groups=_texts(data["groups"]),
        mfa=_bool(data["mfa"]), claims=_claims(data["claims"]),
        authenticated_at=_instant_from_dict(data["authenticated_at"]),
        evidence=_evidence(data["evidence"]),
    )


def _instant_to_dict(moment: datetime) -> dict[str, Any]:
    """The wall time and the UTC offset apart: Python 3.11's fromisoformat drops an offset's sub-second part,
    which isoformat writes. A named zone (ZoneInfo) comes back as its fixed offset at that instant; connectors
    set UTC."""
    offset = moment.utcoffset()
    return {"wall": moment.replace(tzinfo=None).isoformat(),
            "offset_us": None if offset is None else offset // timedelta(microseconds=1)}


def _instant_from_dict(value: Any) -> datetime:
    if not isinstance(value, dict) or set(value) != {"wall", "offset_us"}:
        raise ValueError("stored identity: malformed authenticated_at")
    wall, offset = datetime.fromisoformat(_text(value["wall"])), value["offset_us"]
    if wall.tzinfo is not None:
        raise ValueError("stored identity: malformed authenticated_at")
    if offset is None:
        return wall
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError("stored identity: malformed authenticated_at")
    return wall.replace(tzinfo=timezone(timedelta(microseconds=offset)))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("stored identity: a text field holds something else")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("stored identity: a flag holds something else")
    return value


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else _bool(value)


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("stored identity: a list field holds something else")
    return tuple(_text(item) for item in value)


def _protocol(value: Any) -> Protocol:
    if value not in _PROTOCOLS:
        raise ValueError("stored identity: unknown protocol")
    protocol: Protocol = value
    return protocol


def _claims(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError("stored identity: claims is not a mapping")
    return {_text(name): _texts(values) for name, values in value.items()}


def _evidence(value: Any) -> Evidence | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"kind", "value"} or value["kind"] not in _EVIDENCE_KINDS:
        raise ValueError("stored identity: malformed evidence")
    return Evidence(value["kind"], _text(value["value"]))
