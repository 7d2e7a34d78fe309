"""The broker as a SAML IdP toward AWS: a broker app (its /saml/idp/metadata registered in IAM as served), the
strict local AWS, and helpers that mint, tamper with, or re-sign assertions and assert refusals."""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import xmlsec
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from lxml import etree  # type: ignore[import-untyped]
from moto.sts.models import sts_backends

from broker.config import load_settings
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, saml_trust_policy, write_config
from broker.issuers.key_sources import LocalSigner
from broker.issuers.saml_assertion import SAML_NS, AssertionContent, build_response, signed_response
from broker.issuers.saml_idp import SamlKey, load_saml_keys
from broker.issuers.signing import generate_key_file
from broker.service import BrokerService
from broker.settings import KeyConfig
from broker.web.app import create_app
from broker.web.context import context_of_app

ACCOUNT = "310987654321"  # its own moto account: no other suite's IAM state leaks in
PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/sts-broker"
PUBLIC_URL = "https://broker.example.com"
RECIPIENT = "https://signin.aws.amazon.com/saml"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": SAML_NS, "ds": "http://www.w3.org/2000/09/xmldsig#"}


@dataclass
class SamlEnv:
    aws: LocalAws
    service: BrokerService
    metadata: bytes  # as GET /saml/idp/metadata served it
    key: SamlKey
    workdir: Path


def client(aws: LocalAws, service: str) -> Any:
    # botocore's own parameter validation off, so the server's checks are what is tested.
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}, parameter_validation=False))


def new_key(workdir: Path, bits: int = 2048) -> SamlKey:
    file = workdir / f"k-{uuid.uuid4().hex[:8]}.pem"
    generate_key_file(file, bits=bits)
    _, key = load_saml_keys([KeyConfig(kid="other", file=file, active=True)])
    assert key is not None
    return key


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlEnv]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    workdir = tmp_path_factory.mktemp("saml-aws")
    with run_local_aws(account_id=ACCOUNT) as aws:
        config = write_config(workdir, PUBLIC_URL, "https://idp.example.com", aws, DEMO_RULES, {}, {})
        app = create_app(load_settings(config))
        with asgi_server(app) as port:
            served = httpx.get(f"http://{LOOPBACK}:{port}/saml/idp/metadata")
            assert served.status_code == 200
            assert served.headers["content-type"].startswith("application/samlmetadata+xml")
            client(aws, "iam").create_saml_provider(Name="sts-broker", SAMLMetadataDocument=served.text)
            service: BrokerService = context_of_app(app).service
            key = service.keys.saml_key()
            assert key is not None
            yield SamlEnv(aws, service, served.content, key, workdir)


MakeRole = Callable[..., str]


@pytest.fixture
def make_role(env: SamlEnv) -> MakeRole:
    def make(policy: str | dict[str, Any] | None = None, max_session: int = 3600) -> str:
        document = policy if isinstance(policy, str) else json.dumps(policy) if policy else saml_trust_policy(PROVIDER)
        role = client(env.aws, "iam").create_role(RoleName=f"s-{uuid.uuid4().hex[:12]}",
                                                  AssumeRolePolicyDocument=document, MaxSessionDuration=max_session)
        arn: str = role["Role"]["Arn"]
        return arn

    return make


def content(role: str, **overrides: Any) -> AssertionContent:
    base = AssertionContent(issuer=f"{PUBLIC_URL}/saml/idp", name_id="dev:alice", partition="aws",
                            recipient=RECIPIENT, roles=((role, PROVIDER),), session_name="alice@example.com",
                            session_duration=3600)
    return replace(base, **overrides)


def mint(env: SamlEnv, role: str, *, now: datetime | None = None, lifetime: timedelta = timedelta(minutes=5),
         key: SamlKey | None = None, **overrides: Any) -> str:
    return signed_response(content(role, **overrides), key or env.key, now=now or datetime.now(UTC),
                           lifetime=lifetime)


def decode(assertion: str) -> Any:
    return etree.fromstring(base64.b64decode(assertion))


def encode(root: Any) -> str:
    return base64.b64encode(etree.tostring(root, xml_declaration=True, encoding="UTF-8")).decode()


def sign_custom(response: Any, key: SamlKey, method: Any, digest: Any) -> str:
    """Sign the Assertion like the broker does but with the given algorithms (python-xmlsec)."""
    assertion = response.find(f"{{{SAML_NS}}}Assertion")
    signature = xmlsec.template.create(assertion, xmlsec.constants.TransformExclC14N, method, ns="ds")
    assertion.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, digest, uri="#" + assertion.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.tree.add_ids(assertion, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(private_pem(key), xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)
    return encode(response)


def private_pem(key: SamlKey) -> bytes:
    """The PEM of a file key, for signing with python-xmlsec as another IdP would."""
    assert isinstance(key.signer, LocalSigner)
    return key.signer.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())


def unsigned(role: str, **overrides: Any) -> Any:
    return build_response(content(role, **overrides), now=datetime.now(UTC), lifetime=timedelta(minutes=5))


def assumed_role_count() -> int:
    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


def call(env: SamlEnv, role: str, assertion: str, principal: str = PROVIDER, **extra: Any) -> Any:
    return client(env.aws, "sts").assume_role_with_saml(RoleArn=role, PrincipalArn=principal,
                                                        SAMLAssertion=assertion, **extra)


def refusal(env: SamlEnv, role: str, assertion: str, code: str, status: int, **extra: Any) -> str:
    """The call is refused with exactly `code`/`status`, and moto issued nothing."""
    before = assumed_role_count()
    with pytest.raises(ClientError) as info:
        call(env, role, assertion, **extra)
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), error
    assert assumed_role_count() == before, "moto issued credentials for a refused call"
    message: str = error["Error"]["Message"]
    return message
