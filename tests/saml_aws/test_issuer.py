"""SamlIssuer without AWS: which assertion goes to STS (minted or the upstream one) and when it refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Evidence
from broker.issuers.credentials import Credentials
from broker.issuers.saml import ROLE_ATTRIBUTE, SamlIssuer
from tests.factories import identity
from tests.saml_aws.conftest import PROVIDER, SamlEnv, decode
from tests.support.ident_evidence import saml_response

ROLE = "arn:aws:iam::310987654321:role/Passthrough"


class RecordingSts:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def assume_role_with_saml(self, grant: RoleGrant, assertion: str) -> Credentials:
        self.sent.append(assertion)
        return Credentials("AKIA", "secret", "token", expiration=datetime.now(UTC),
                           role_arn=grant.role_arn, assumed_role_arn="", via="saml")


def grant(**overrides: object) -> RoleGrant:
    base = RoleGrant(role_arn=ROLE, via="saml", provider_arn=PROVIDER, session_name="alice",
                     source_identity=None, duration=timedelta(hours=1), rule_id="r")
    return replace(base, **overrides)  # type: ignore[arg-type]


def issuer(env: SamlEnv, sts: RecordingSts) -> SamlIssuer:
    return SamlIssuer(env.key, sts, public_url="https://broker.example.com")


def test_minted_by_default(env: SamlEnv) -> None:
    sts = RecordingSts()
    anyio.run(issuer(env, sts).issue, identity(), grant())
    assert decode(sts.sent[0]).tag.endswith("Response")


def test_passthrough_forwards_the_upstream_response_when_its_role_attribute_allows(env: SamlEnv) -> None:
    sts = RecordingSts()
    response = saml_response(ROLE, PROVIDER)
    upstream = identity(protocol="saml", evidence=Evidence("saml_response", response),
                        claims={ROLE_ATTRIBUTE: (f"{PROVIDER},{ROLE}",)})
    anyio.run(issuer(env, sts).issue, upstream, grant(passthrough=True))
    assert sts.sent == [response]


@pytest.mark.parametrize(("evidence", "claims", "reason"), [
    (None, {}, "passthrough_unavailable"),
    (Evidence("id_token", "eyJ..."), {}, "passthrough_unavailable"),
    (Evidence("saml_response", "PHg+"), {ROLE_ATTRIBUTE: (f"arn:aws:iam::310987654321:role/Other,{PROVIDER}",)},
     "passthrough_role_absent"),
])
def test_passthrough_refusals(env: SamlEnv, evidence: Evidence | None, claims: dict[str, tuple[str, ...]],
                              reason: str) -> None:
    sts = RecordingSts()
    with pytest.raises(StsRefused) as info:
        anyio.run(issuer(env, sts).issue, identity(evidence=evidence, claims=claims), grant(passthrough=True))
    assert info.value.reason == reason and sts.sent == []


def test_grant_without_provider_is_refused(env: SamlEnv) -> None:
    sts = RecordingSts()
    with pytest.raises(StsRefused) as info:
        anyio.run(issuer(env, sts).issue, identity(), grant(provider_arn=None))
    assert info.value.reason == "saml_no_provider" and sts.sent == []
