"""AWS STS's error codes as the broker's errors, for both transports (sts_client.py through boto3, sts_http.py on
the event loop). Apart from sts_client.py so that the event-loop transport, the default, starts without
importing boto3 (a fifth of a second of start-up)."""

from __future__ import annotations

import re

from broker.errors import BrokerError, StsRefused, StsUnavailable

_UNAVAILABLE = {
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure",
    "InternalError", "IDPCommunicationError",
}
_REFUSED_PUBLIC = {
    "AccessDenied": "AWS refused this role: its trust policy does not allow this sign-in.",
    "InvalidIdentityToken": "AWS did not accept the broker's identity token for this role.",
    "ExpiredTokenException": "AWS did not accept the broker's identity token for this role.",
    "IDPRejectedClaim": "AWS did not accept the broker's identity token for this role.",
    "RegionDisabledException": "AWS STS is not enabled in the configured region for this account.",
    # AssumeRole / GetFederationToken (signed calls)
    "ValidationError": ("AWS refused the request for this role as invalid (a duration above the role's maximum, "
                        "or above 1 hour in a role chain?)."),
    "MalformedPolicyDocument": "AWS refused the session policy of this role's grant.",
    "PackedPolicyTooLarge": "AWS refused this role's session policy and tags together as too large.",
    "ExpiredToken": "The credentials the broker signs this role's request with have expired.",
    "InvalidClientTokenId": "AWS does not know the credentials the broker signs this role's request with.",
    "SignatureDoesNotMatch": "AWS did not accept the signature of the broker's request for this role.",
    "IncompleteSignature": "AWS did not accept the signature of the broker's request for this role.",
    "MissingAuthenticationToken": "AWS did not accept the signature of the broker's request for this role.",
    "InvalidParameterValue": ("AWS refused a parameter of this role's request (a session tag its hub session "
                              "already carries, set again?)."),
}


def _snake(code: str) -> str:
    """AccessDenied -> access_denied; an acronym stays one word: IDPRejectedClaim -> idp_rejected_claim."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", code.removesuffix("Exception")).lower()


def is_unavailable_code(code: str) -> bool:
    """An STS error code that means "try later" (throttling, STS or the IdP down), not a refusal."""
    return code in _UNAVAILABLE


def sts_error(code: str, message: str) -> BrokerError:
    """STS's error code and message as the broker's error, whichever transport read them."""
    detail = f"STS {code}: {message}"
    if code in _UNAVAILABLE:
        return StsUnavailable(detail, reason=f"sts_{_snake(code)}")
    public = _REFUSED_PUBLIC.get(code, "AWS refused the request for this role.")
    return StsRefused(detail, reason=f"sts_{_snake(code)}", public=public)
