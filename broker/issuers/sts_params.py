"""The parameters of the signed STS calls (AssumeRole, GetFederationToken), once for both transports: boto3's
shape (sts_client.py passes it to botocore) and its Query API form (sts_http.py writes it on the wire), and
the SigV4 signature the event-loop client adds (botocore's own signer, not a copy of it).

The signing credentials are the broker's own (issuers/own_credentials.py) or a hub session's (a role chain).
Neither the secret key nor the session token reaches a repr, a log line or an exception message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.grants import RoleGrant
from broker.issuers.credentials import CallerKeys

FORM = "application/x-www-form-urlencoded; charset=utf-8"
VERSION = "2011-06-15"


def _common(grant: RoleGrant) -> dict[str, Any]:
    params: dict[str, Any] = {"DurationSeconds": int(grant.duration.total_seconds())}
    if grant.policy is not None:
        params["Policy"] = grant.policy
    if grant.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in grant.policy_arns]
    if grant.tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in sorted(grant.tags.items())]
    return params


def assume_role_params(grant: RoleGrant, source_identity: str | None) -> dict[str, Any]:
    """AssumeRole into `grant`'s role. `source_identity`: what this hop sets (None in a chain whose hub set
    one already: it carries through by itself and cannot change)."""
    params = {"RoleArn": grant.role_arn, "RoleSessionName": grant.session_name, **_common(grant)}
    if grant.transitive_tags:
        params["TransitiveTagKeys"] = list(grant.transitive_tags)
    if source_identity is not None:
        params["SourceIdentity"] = source_identity
    if grant.external_id is not None:
        params["ExternalId"] = grant.external_id
    return params


def federation_token_params(grant: RoleGrant) -> dict[str, Any]:
    """GetFederationToken: the grant's session name is the federated user's Name (2..32 characters)."""
    return {"Name": grant.session_name, **_common(grant)}


def query_pairs(action: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """boto3's parameters in the Query API's form: lists as NAME.member.N, structures as .member.N.FIELD."""
    pairs = [("Action", action), ("Version", VERSION)]
    for name, value in params.items():
        if isinstance(value, list):
            for i, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    pairs += [(f"{name}.member.{i}.{field}", str(v)) for field, v in item.items()]
                else:
                    pairs.append((f"{name}.member.{i}", str(item)))
        else:
            pairs.append((name, str(value)))
    return pairs


def sigv4_headers(url: str, region: str, body: bytes, caller: CallerKeys) -> list[tuple[str, str]]:
    """The headers SigV4 adds to a form POST of `body` to `url` (Authorization, X-Amz-Date and, for temporary
    credentials, X-Amz-Security-Token). Host and Content-Type are signed as the caller must send them."""
    from botocore.auth import SigV4Auth  # on first use, off the start path (broker/warmup.py preloads it)
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": FORM})
    signer = SigV4Auth(BotoCredentials(caller.access_key_id, caller.secret_access_key, caller.session_token),
                       "sts", region)
    signer.add_auth(request)
    return [(name, str(request.headers[name])) for name in ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")
            if name in request.headers]
