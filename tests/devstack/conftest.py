"""Fixtures for the strict local AWS: a hand-made OIDC issuer (PyJWT tokens, keys served as JWKS over
loopback HTTP), the local AWS itself, and helpers that create IAM roles and assert refusals."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import jwt
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.sts.models import sts_backends

from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import http_server, send_json

ACCOUNT = "210987654321"  # not moto's default account, so other suites' state in this process cannot leak in
CLIENT_ID = "client-1"
ASSUME = "sts:AssumeRoleWithWebIdentity"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
    algorithm = jwt.algorithms.ECAlgorithm if is_ec else jwt.algorithms.RSAAlgorithm
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


@dataclass
class Issuer:
    """An OIDC issuer at http://127.0.0.1:PORT that signs with PyJWT and serves discovery and JWKS."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=lambda: {"rsa-1": new_rsa_key(),
                                                          "ec-1": ec.generate_private_key(ec.SECP256R1())})
    jwks_padding: int = 0  # extra bytes in the JWKS document, to exceed the front's size cap
    jwks_requests: int = 0

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def provider_arn(self, account: str = ACCOUNT) -> str:
        return f"arn:aws:iam::{account}:oidc-provider/{self.host}"

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = {"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]}
        if self.jwks_padding:
            document["padding"] = "x" * self.jwks_padding
        return document

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "user-1", "aud": CLIENT_ID, "iat": now, "exp": now + 300, **overrides}
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, kid: str = "rsa-1", key: Any = None, alg: str | None = None, **claims: Any) -> str:
        signing_key = key or self.keys[kid]
        alg = alg or ("ES256" if isinstance(signing_key, ec.EllipticCurvePrivateKey) else "RS256")
        return jwt.encode(self.claims(**claims), signing_key, algorithm=alg, headers={"kid": kid})


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                send_json(self, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                send_json(self, issuer.jwks())
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    with http_server(_handler(issuer)) as url:
        issuer.url = url
        yield issuer


def client(aws: LocalAws, service: str, credentials: dict[str, str] | None = None, **config: Any) -> Any:
    creds = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}, **config), **creds)


def session_credentials(credentials: dict[str, Any]) -> dict[str, str]:
    return {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


def register(aws: LocalAws, issuer: Issuer) -> str:
    arn: str = client(aws, "iam").create_open_id_connect_provider(
        Url=issuer.url, ClientIDList=[CLIENT_ID], ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    return arn


def allow(issuer: Issuer, *, actions: list[str] | None = None, condition: dict[str, Any] | None = None,
          effect: str = "Allow", principal: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": effect, "Action": actions or [ASSUME],
                                 "Principal": principal or {"Federated": issuer.provider_arn()}}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def assumed_role_count() -> int:
    """Peeks into moto (same process) to prove a refused call never reached its AssumeRoleWithWebIdentity."""
    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAws]:
    with run_local_aws(account_id=ACCOUNT) as local:
        yield local


@pytest.fixture(scope="session")
def issuer(aws: LocalAws) -> Iterator[Issuer]:
    with running_issuer() as running:
        register(aws, running)
        yield running


@pytest.fixture(scope="session")
def sts(aws: LocalAws) -> Any:
    # botocore validates minimum lengths and values itself; switch that off so the server's checks are tested.
    return client(aws, "sts", parameter_validation=False)


MakeRole = Callable[..., str]


@pytest.fixture
def make_role(aws: LocalAws) -> MakeRole:
    def make(*statements: dict[str, Any], max_session: int = 3600) -> str:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        role = client(aws, "iam").create_role(RoleName=f"r-{uuid.uuid4().hex[:12]}", MaxSessionDuration=max_session,
                                              AssumeRolePolicyDocument=json.dumps(document))
        arn: str = role["Role"]["Arn"]
        return arn

    return make


@pytest.fixture
def trusted_role(make_role: MakeRole, issuer: Issuer) -> str:
    return make_role(allow(issuer, condition={"StringEquals": {f"{issuer.host}:aud": CLIENT_ID}}))


def refusal(call: Callable[[], Any], code: str, status: int) -> str:
    """Runs a call that must be refused with `code`/`status` before moto is asked; returns the message."""
    before = assumed_role_count()
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), error
    assert assumed_role_count() == before, "moto issued credentials for a refused call"
    message: str = error["Error"]["Message"]
    return message


def identity_policy(*actions: str, resource: str = "*", effect: str = "Allow") -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": list(actions), "Resource": resource}]}


BROKER_POLICY = identity_policy("sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity", "sts:GetFederationToken")


def user_credentials(aws: LocalAws, name: str | None = None, *,
                     policy: dict[str, Any] | None = None) -> dict[str, str]:
    """An IAM user with an access key created through the front (which is how it learns the secret)."""
    iam = client(aws, "iam")
    user = name or f"u-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    if policy is not None:
        iam.put_user_policy(UserName=user, PolicyName="identity", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def user_arn(credentials: dict[str, str], aws: LocalAws) -> str:
    arn: str = client(aws, "sts", credentials).get_caller_identity()["Arn"]
    return arn


def trust_aws(principal: Any, *, actions: list[str] | None = None,
              condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal},
                                 "Action": actions or ["sts:AssumeRole"]}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def issued_session_count() -> int:
    """Every session moto issued in any account of this process (cross-account calls file it under the role's)."""
    return sum(len(sts_backends[account]["aws"].assumed_roles) for account in list(sts_backends.keys()))


def refused_everywhere(call: Callable[[], Any], code: str, status: int) -> str:
    """Like `refusal`, counting sessions in every account."""
    before = issued_session_count()
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), error
    assert issued_session_count() == before, "moto issued credentials for a refused call"
    message: str = error["Error"]["Message"]
    return message
