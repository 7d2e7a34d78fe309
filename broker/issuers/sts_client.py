"""AWS STS through boto3, off the event loop, with explicit timeouts and errors mapped to the tree.

STS's own messages go to the audit log (detail); the person sees a public message. Neither contains the
token: botocore never echoes WebIdentityToken in an error.

The client is unsigned (the web-identity and SAML calls are unsigned by design). AssumeRole and
GetFederationToken are signed per call with the caller's credentials (the broker's own or a hub session's):
the call carries them in an extra parameter that a `provide-client-params` handler takes out into the
request context before validation, and a `before-sign` handler signs with botocore's SigV4 signer (both are
events botocore documents for extensions). So one client serves every caller.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import boto3
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from broker.errors import BrokerError, StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import CallerKeys, Credentials
from broker.issuers.sts_errors import sts_error
from broker.issuers.sts_params import assume_role_params, federation_token_params
from broker.settings import AwsConfig
from broker.telemetry import measured_sts

_CALLER = "BrokerCaller"  # the extra parameter carrying a signed call's credentials (never sent)
_SIGNED = ("AssumeRole", "GetFederationToken")

def map_client_error(exc: ClientError) -> BrokerError:
    error = exc.response.get("Error", {})
    return sts_error(str(error.get("Code", "Unknown")), str(error.get("Message", "")))


def map_transport_error(exc: BotoCoreError) -> BrokerError:
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return StsUnavailable(f"STS timeout: {type(exc).__name__}", reason="sts_timeout")
    return StsUnavailable(f"STS unreachable: {type(exc).__name__}", reason="sts_unreachable")


class StsClient:
    def __init__(self, aws: AwsConfig) -> None:
        config = Config(
            signature_version=UNSIGNED,  # the web-identity and SAML calls are unsigned by design
            connect_timeout=aws.connect_timeout.total_seconds(),
            read_timeout=aws.read_timeout.total_seconds(),
            # total_max_attempts counts the first try (botocore's max_attempts counts retries only)
            retries={"total_max_attempts": aws.sts_max_attempts, "mode": "standard"},  # jittered backoff
        )
        session = boto3.session.Session()
        self._client = session.client(
            "sts", region_name=aws.region, endpoint_url=aws.sts_endpoint_url, config=config
        )
        self._region = aws.region
        for operation in _SIGNED:
            self._client.meta.events.register(f"provide-client-params.sts.{operation}", _take_caller)
            self._client.meta.events.register(f"before-sign.sts.{operation}", self._sign)

    def _sign(self, request: AWSRequest, **_: Any) -> None:
        caller: CallerKeys = request.context[_CALLER]
        credentials = BotoCredentials(caller.access_key_id, caller.secret_access_key, caller.session_token)
        SigV4Auth(credentials, "sts", self._region).add_auth(request)

    @measured_sts("AssumeRole")
    async def assume_role(self, grant: RoleGrant, caller: CallerKeys, *, source_identity: str | None) -> Credentials:
        params = {**assume_role_params(grant, source_identity), _CALLER: caller}
        response = await self._call(functools.partial(self._client.assume_role, **params))
        return _credentials(response, grant, caller)

    @measured_sts("GetFederationToken")
    async def get_federation_token(self, grant: RoleGrant, caller: CallerKeys) -> Credentials:
        params = {**federation_token_params(grant), _CALLER: caller}
        response = await self._call(functools.partial(self._client.get_federation_token, **params))
        return _credentials(response, grant, caller)

    @measured_sts("AssumeRoleWithWebIdentity")
    async def assume_role_with_web_identity(self, grant: RoleGrant, token: str) -> Credentials:
        params: dict[str, Any] = {
            "RoleArn": grant.role_arn,
            "RoleSessionName": grant.session_name,
            "WebIdentityToken": token,
            "DurationSeconds": int(grant.duration.total_seconds()),
        }
        if grant.policy is not None:
            params["Policy"] = grant.policy
        if grant.policy_arns:
            params["PolicyArns"] = [{"arn": arn} for arn in grant.policy_arns]
        call = functools.partial(self._client.assume_role_with_web_identity, **params)
        response = await self._call(call)
        return _credentials(response, grant)

    @measured_sts("AssumeRoleWithSAML")
    async def assume_role_with_saml(self, grant: RoleGrant, assertion: str) -> Credentials:
        """`assertion` is the base64 samlp:Response; the session name comes from its RoleSessionName."""
        if grant.provider_arn is None:
            raise StsRefused(f"grant via saml for {grant.role_arn} without a provider", reason="saml_no_provider")
        params: dict[str, Any] = {
            "RoleArn": grant.role_arn,
            "PrincipalArn": grant.provider_arn,
            "SAMLAssertion": assertion,
            "DurationSeconds": int(grant.duration.total_seconds()),
        }
        if grant.policy is not None:
            params["Policy"] = grant.policy
        if grant.policy_arns:
            params["PolicyArns"] = [{"arn": arn} for arn in grant.policy_arns]
        call = functools.partial(self._client.assume_role_with_saml, **params)
        response = await self._call(call)
        return _credentials(response, grant)

    async def close(self) -> None:
        self._client.close()

    async def _call(self, call: functools.partial[Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await anyio.to_thread.run_sync(call)
        except ClientError as exc:
            raise map_client_error(exc) from None
        except BotoCoreError as exc:
            raise map_transport_error(exc) from None
        return result


def _take_caller(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """The caller's credentials out of the parameters (botocore would refuse an unknown one) into the
    request context, where the before-sign handler finds them."""
    context[_CALLER] = params.pop(_CALLER)


def _credentials(response: dict[str, Any], grant: RoleGrant, caller: CallerKeys | None = None) -> Credentials:
    creds = response["Credentials"]
    expiration: datetime = creds["Expiration"]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        expiration=expiration,
        role_arn=grant.role_arn,
        assumed_role_arn=(response.get("AssumedRoleUser") or response.get("FederatedUser") or {}).get("Arn", ""),
        via=grant.via,
        chained=caller is not None and caller.temporary and grant.via == "assume_role",
        caller_key_id=None if caller is None else caller.access_key_id,
    )
