"""Strict local AWS for the demo and tests: moto behind a front that enforces the STS contract.

    with run_local_aws() as aws:
        boto3.client("sts", endpoint_url=aws.endpoint_url, region_name="us-east-1", ...)

Register an issuer at http://127.0.0.1:PORT with IAM CreateOpenIDConnectProvider(Url="http://127.0.0.1:PORT");
its ARN is arn:aws:iam::ACCOUNT:oidc-provider/127.0.0.1:PORT and its condition keys 127.0.0.1:PORT:aud / :sub.
Both servers bind 127.0.0.1 only. moto keeps its state per process and per account: two LocalAws in one
process with the same account_id see the same IAM, S3 and STS.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from broker.devstack import trust_policy
from broker.devstack.callers import CallerDirectory, UserInfo, UserKeyLedger
from broker.devstack.federation import ConsoleLogin, CredentialLedger, FederationEndpoint, IssuedCredentials
from broker.devstack.servers import LOOPBACK, wsgi_server
from broker.devstack.signed_sts import SignedSts
from broker.devstack.sts_front import JwksCache, RoleInfo, StsFront

MOTO_START_TIMEOUT = 15.0
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class LocalAws:
    endpoint_url: str  # boto3 clients for sts, iam, s3 ... all use this endpoint_url
    federation_url: str  # getSigninToken and login
    account_id: str
    # SHA-256 (hex) of the SAMLAssertion values AssumeRoleWithSAML accepted, oldest first (the last 256).
    saml_accepted: Callable[[], tuple[str, ...]] = field(default=tuple, repr=False, compare=False)
    # The console logins the federation endpoint accepted (the Destination each received), oldest first.
    federation_logins: Callable[[], tuple[ConsoleLogin, ...]] = field(default=tuple, repr=False, compare=False)


def _pin_account(account_id: str, request: Any, **_: Any) -> None:
    request.headers["x-moto-account-id"] = account_id


class MotoIam:
    """The IAM and STS questions the front and the federation endpoint ask moto directly."""

    def __init__(self, moto_url: str, account_id: str) -> None:
        self._moto_url, self._account_id = moto_url, account_id
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()  # creating clients from one Session is not thread-safe
        self._iam = self._client("iam", DUMMY_CREDENTIALS)
        self._iam_by_account: dict[str, Any] = {account_id: self._iam}

    def _client(self, service: str, credentials: dict[str, str], account: str | None = None) -> Any:
        config = Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=10)
        with self._session_lock:
            client = self._session.client(service, endpoint_url=self._moto_url, region_name="us-east-1",
                                          config=config, **credentials)
        client.meta.events.register_first("before-sign", partial(_pin_account, account or self._account_id))
        return client

    def _iam_in(self, account: str) -> Any:
        if account not in self._iam_by_account:
            client = self._client("iam", DUMMY_CREDENTIALS, account)
            with self._session_lock:
                self._iam_by_account.setdefault(account, client)
        return self._iam_by_account[account]

    def role(self, name: str) -> RoleInfo | None:
        found = self.role_in(self._account_id, name)
        return RoleInfo(arn=found[0], max_session_duration=found[1], trust_policy=found[2]) if found else None

    def role_in(self, account: str, name: str) -> tuple[str, int, Mapping[str, Any]] | None:
        """Any account moto holds: cross-account AssumeRole reaches roles outside the front's own."""
        try:
            role = self._iam_in(account).get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        document = trust_policy.load_document(role["AssumeRolePolicyDocument"])
        return role["Arn"], int(role.get("MaxSessionDuration", 3600)), document

    def role_tags(self, account: str, name: str) -> Mapping[str, str]:
        try:
            tags = self._iam_in(account).list_role_tags(RoleName=name).get("Tags", [])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return {}
            raise
        return {t["Key"]: t["Value"] for t in tags}

    def user(self, account: str, name: str) -> UserInfo | None:
        iam = self._iam_in(account)
        try:
            arn = iam.get_user(UserName=name)["User"]["Arn"]
            keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
            tags = iam.list_user_tags(UserName=name).get("Tags", [])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        return UserInfo(arn=str(arn), tags={t["Key"]: t["Value"] for t in tags},
                        key_status={k["AccessKeyId"]: k["Status"] for k in keys})

    def identity_policies(self, account: str, kind: str, name: str) -> list[Mapping[str, Any]]:
        """Inline and attached policies of a user (with its groups') or a role: what IAM evaluates for the caller."""
        iam, documents = self._iam_in(account), []
        owners = [(kind, name)]
        if kind == "user":
            owners += [("group", g["GroupName"]) for g in iam.list_groups_for_user(UserName=name)["Groups"]]
        for owner, owner_name in owners:
            title = owner.capitalize()
            names = getattr(iam, f"list_{owner}_policies")(**{f"{title}Name": owner_name})["PolicyNames"]
            documents += [getattr(iam, f"get_{owner}_policy")(**{f"{title}Name": owner_name, "PolicyName": n})[
                "PolicyDocument"] for n in names]
            attached = getattr(iam, f"list_attached_{owner}_policies")(**{f"{title}Name": owner_name})
            documents += [self._managed(iam, p["PolicyArn"]) for p in attached["AttachedPolicies"]]
        return [trust_policy.load_document(d) for d in documents]

    def managed_policy(self, account: str, arn: str) -> Mapping[str, Any] | None:
        try:
            return trust_policy.load_document(self._managed(self._iam_in(account), arn))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise

    @staticmethod
    def _managed(iam: Any, arn: str) -> Any:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]

    def client_ids(self, provider_arn: str) -> list[str] | None:
        try:
            provider = self._iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        return [str(client_id) for client_id in provider.get("ClientIDList", [])]

    def saml_metadata(self, provider_arn: str) -> str | None:
        try:
            provider = self._iam.get_saml_provider(SAMLProviderArn=provider_arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchEntity", "InvalidInput"):
                return None
            raise
        document = provider.get("SAMLMetadataDocument")
        return document if isinstance(document, str) else None

    def caller_arn(self, credentials: IssuedCredentials) -> str | None:
        sts = self._client("sts", {"aws_access_key_id": credentials.access_key_id,
                                   "aws_secret_access_key": credentials.secret_access_key,
                                   "aws_session_token": credentials.session_token}, credentials.account)
        try:
            arn: str = sts.get_caller_identity()["Arn"]
        except ClientError:
            return None
        return arn


@contextmanager
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    # start() waits without a limit for the server thread; bound it so a failed start cannot hang the caller.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(MOTO_START_TIMEOUT)
    if starter.is_alive():
        raise RuntimeError(f"moto did not start on {LOOPBACK} within {MOTO_START_TIMEOUT} s")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _build_front(moto_url: str, account_id: str, allow_http_loopback_issuers: bool,
                 clock: Callable[[], float]) -> StsFront:
    iam = MotoIam(moto_url, account_id)
    ledger, user_keys = CredentialLedger(), UserKeyLedger()

    def signed(front: StsFront) -> SignedSts:
        return SignedSts(ledger=ledger, user_keys=user_keys, directory=CallerDirectory(ledger, user_keys, iam),
                         roles=iam, send=front.send_form, default_account=account_id, clock=clock)

    return StsFront(moto_url=moto_url, account_id=account_id, iam=iam, ledger=ledger,
                    jwks=JwksCache(allow_http_loopback=allow_http_loopback_issuers),
                    federation=FederationEndpoint(ledger, iam.caller_arn),
                    allow_http_loopback=allow_http_loopback_issuers, signed=signed)


@contextmanager
def run_local_aws(*, port: int = 0, account_id: str = "123456789012", allow_http_loopback_issuers: bool = True,
                  clock: Callable[[], float] = time.time) -> Iterator[LocalAws]:
    """moto on a private loopback port, the strict front on `port` (0 picks a free one).

    `allow_http_loopback_issuers` is the one dev relaxation: issuers at http://127.0.0.1 or http://localhost,
    with a port, are accepted. Everything else follows AWS: https, no port, no query. `clock` is what the signed
    STS calls take as now (signature age, session expiry); tests move it to see ExpiredToken.
    """
    if not re.fullmatch(r"[0-9]{12}", account_id):
        raise ValueError("account_id must be 12 digits")
    with moto_server() as moto_url:
        front = _build_front(moto_url, account_id, allow_http_loopback_issuers, clock)
        try:
            with wsgi_server(front, port) as bound:
                url = f"http://{LOOPBACK}:{bound}"
                yield LocalAws(endpoint_url=url, federation_url=f"{url}/federation", account_id=account_id,
                               saml_accepted=front.saml_accepted, federation_logins=front.federation_logins)
        finally:
            front.close()
