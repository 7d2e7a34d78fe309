from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Evidence
from broker.issuers.web_identity import WebIdentityIssuer
from tests.factories import identity
from tests.support.ident_evidence import id_token


class RecordingSts:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def assume_role_with_web_identity(self, grant: RoleGrant, token: str) -> str:
        self.tokens.append(token)
        return "credentials"


def issuer(sts: RecordingSts) -> WebIdentityIssuer:
    return WebIdentityIssuer(None, sts, issuer="https://b", audience="a",  # type: ignore[arg-type]
                             lifetime=timedelta(minutes=5))


PASSTHROUGH = RoleGrant("arn:aws:iam::111122223333:role/R", "web_identity", None, "s", None, timedelta(hours=1),
                        passthrough=True)


def test_passthrough_forwards_the_upstream_token_unchanged() -> None:
    sts = RecordingSts()
    token = id_token()
    person = identity(evidence=Evidence("id_token", token))
    asyncio.run(issuer(sts).issue(person, PASSTHROUGH))
    assert sts.tokens == [token]


def test_passthrough_without_upstream_token_is_refused_before_sts() -> None:
    sts = RecordingSts()
    with pytest.raises(StsRefused) as err:
        asyncio.run(issuer(sts).issue(identity(), PASSTHROUGH))
    assert err.value.reason == "passthrough_unavailable" and sts.tokens == []
