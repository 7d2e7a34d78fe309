"""The issuers with a KMS key: the signature is made in a worker thread (the event loop keeps running), and
when KMS cannot sign, STS is never called and the refusal is kms_unavailable."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jwt
import pytest

from broker.devstack.local_aws import LocalAws
from broker.errors import StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import Credentials
from broker.issuers.saml import SamlIssuer
from broker.issuers.saml_idp import load_saml_keys
from broker.issuers.signing import KeyRing
from broker.issuers.web_identity import WebIdentityIssuer
from broker.settings import KeyConfig, KmsKeyConfig
from tests.factories import identity
from tests.keys.conftest import REGION, client, kms_key

ROLE = "arn:aws:iam::320987654321:role/r"
PROVIDER = "arn:aws:iam::320987654321:saml-provider/p"


@dataclass
class RecordingSts:
    """Records what would reach STS, and on which thread the token was made (the caller's: the loop's)."""

    sent: list[str] = field(default_factory=list)

    async def assume_role_with_web_identity(self, grant: RoleGrant, token: str) -> Credentials:
        self.sent.append(token)
        raise StsUnavailable("recorded only", reason="test_recorded")

    async def assume_role_with_saml(self, grant: RoleGrant, assertion: str) -> Credentials:
        self.sent.append(assertion)
        raise StsUnavailable("recorded only", reason="test_recorded")


def config(aws: LocalAws, key_id: str) -> KeyConfig:
    return KeyConfig(kid="kms", kms=KmsKeyConfig(key_id=key_id, region=REGION, endpoint_url=aws.endpoint_url),
                     active=True)


def issuers(aws: LocalAws, key_id: str, sts: RecordingSts) -> tuple[WebIdentityIssuer, SamlIssuer]:
    ring = KeyRing.load([config(aws, key_id)])
    _, saml_key = load_saml_keys([config(aws, key_id)])
    web = WebIdentityIssuer(ring, sts, issuer="https://b.example.com", audience="sts.amazonaws.com",
                            lifetime=timedelta(minutes=5))
    return web, SamlIssuer(saml_key, sts, public_url="https://b.example.com")


def grants() -> tuple[RoleGrant, RoleGrant]:
    return (RoleGrant(ROLE, "web_identity", None, "alice", None, timedelta(hours=1)),
            RoleGrant(ROLE, "saml", PROVIDER, "alice", None, timedelta(hours=1)))


def test_kms_signatures_leave_the_event_loop_free(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    sts = RecordingSts()
    web, saml = issuers(aws, kms_key(aws), sts)
    signing_threads: list[str] = []
    ring = web._keys
    real_sign = ring.sign

    def sign(claims: dict[str, Any]) -> str:
        signing_threads.append(threading.current_thread().name)
        return real_sign(claims)

    monkeypatch.setattr(ring, "sign", sign)

    async def both() -> str:
        loop_thread = threading.current_thread().name
        web_grant, saml_grant = grants()
        for issuer, grant in ((web, web_grant), (saml, saml_grant)):
            with pytest.raises(StsUnavailable, match="recorded only"):
                await issuer.issue(identity(idp="dev"), grant)
        return loop_thread

    loop_thread = asyncio.run(both())
    assert signing_threads and loop_thread not in signing_threads
    assert len(sts.sent) == 2 and jwt.get_unverified_header(sts.sent[0])["kid"] == "kms"


def test_kms_disabled_nothing_reaches_sts(aws: LocalAws) -> None:
    sts, key_id = RecordingSts(), kms_key(aws)
    web, saml = issuers(aws, key_id, sts)
    client(aws, "kms").disable_key(KeyId=key_id)
    web_grant, saml_grant = grants()
    for issuer, grant in ((web, web_grant), (saml, saml_grant)):
        with pytest.raises(StsUnavailable) as info:
            asyncio.run(issuer.issue(identity(idp="dev"), grant))
        assert info.value.reason == "kms_unavailable"
    assert sts.sent == []
