"""SigV4 verification for the strict local AWS: recompute a request's signature with botocore's own signer, from
the request as received (method, raw path, raw query, the headers it says it signed, the payload hash), using the
secret the local AWS issued for that access key. Pure apart from botocore; the front supplies the secret.

AWS authenticates before it looks at parameters, so the front runs `parse_authorization`, resolves the key, then
`verify` before judging anything else. Messages copy AWS's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker.devstack.web_identity_checks import StsError

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s,]{1,128})/(?P<date>[0-9]{8})/(?P<region>[a-z0-9-]{1,32})/"
    r"(?P<service>[a-z0-9-]{1,64})/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]{1,2048}), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})", re.ASCII)
MAX_SKEW_SECONDS = 15 * 60
AMZ_DATE = "%Y%m%dT%H%M%SZ"


def invalid_client_token() -> StsError:
    return StsError("InvalidClientTokenId", "The security token included in the request is invalid.", 403)


def expired_token() -> StsError:
    return StsError("ExpiredToken", "The security token included in the request is expired", 403)


def signature_mismatch(detail: str = "") -> StsError:
    return StsError("SignatureDoesNotMatch", detail or (
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details."), 403)


@dataclass(frozen=True)
class SignedCall:
    """What the Authorization header claims; nothing here is trusted until `verify` passes."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    session_token: str | None


def parse_authorization(received_headers: Mapping[str, str]) -> SignedCall:
    headers = {k.lower(): v for k, v in received_headers.items()}
    raw = headers.get("authorization")
    if not raw:
        raise StsError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    match = AUTHORIZATION.fullmatch(raw.strip())
    if match is None:
        raise StsError("IncompleteSignature", "Authorization header requires 'Credential', 'Signature' and "
                       "'SignedHeaders' parameters with the AWS4-HMAC-SHA256 algorithm.", 403)
    signed = tuple(match["headers"].split(";"))
    amz_date = headers.get("x-amz-date", "")
    if "host" not in signed or "x-amz-date" not in signed or not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", amz_date):
        raise StsError("IncompleteSignature", "The request must sign the host and x-amz-date headers.", 403)
    return SignedCall(access_key_id=match["key"], scope_date=match["date"], region=match["region"],
                      service=match["service"], signed_headers=signed, signature=match["signature"],
                      amz_date=amz_date, session_token=headers.get("x-amz-security-token"))


def check_time(call: SignedCall, now: float) -> None:
    signed_at = datetime.strptime(call.amz_date, AMZ_DATE).replace(tzinfo=UTC).timestamp()
    now_text = datetime.fromtimestamp(now, UTC).strftime(AMZ_DATE)
    if signed_at < now - MAX_SKEW_SECONDS:
        raise signature_mismatch(f"Signature expired: {call.amz_date} is now earlier than {now_text} "
                                 "(now - 15 min.)")
    if signed_at > now + MAX_SKEW_SECONDS:
        raise signature_mismatch(f"Signature not yet current: {call.amz_date} is still later than {now_text} "
                                 "(now + 15 min.)")


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    url: str  # scheme://host + the raw path and query exactly as they arrived
    headers: Mapping[str, str]
    body: bytes


def verify(call: SignedCall, request: ReceivedRequest, secret: str, *, service: str, now: float) -> None:
    """Raises SignatureDoesNotMatch unless the signature is the one `secret` gives for this very request."""
    if call.service != service:
        raise signature_mismatch(f"Credential should be scoped to correct service: '{service}'. ")
    if call.scope_date != call.amz_date[:8]:
        raise signature_mismatch("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                                 "from HTTP")
    check_time(call, now)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    if any(name not in lowered for name in call.signed_headers):
        raise signature_mismatch()
    content_hash = lowered.get("x-amz-content-sha256")
    if content_hash is not None and content_hash != hashlib.sha256(request.body).hexdigest():
        raise signature_mismatch()  # botocore trusts this header as the payload hash; we must not
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body,
                             headers={name: lowered[name] for name in call.signed_headers})
    aws_request.context["timestamp"] = call.amz_date
    signer = SigV4Auth(Credentials(call.access_key_id, secret, call.session_token), call.service, call.region)
    canonical = signer.canonical_request(aws_request)
    if signer.signed_headers(signer.headers_to_sign(aws_request)) != ";".join(call.signed_headers):
        raise signature_mismatch()
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, call.signature):
        raise signature_mismatch()
