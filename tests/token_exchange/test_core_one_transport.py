"""One STS transport per process, configured once (`token_exchange.sts_transport`) for every flow: the issuers
of browser sign-ins (web identity and SAML) and the token exchange hold the same client, closed once."""

from __future__ import annotations

import pytest

from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.web.context import context_of_app
from tests.token_exchange.conftest import ExchangeEnv, extra_broker


@pytest.mark.parametrize(("transport", "kind"), [("event_loop", HttpStsClient), ("boto3", StsClient)])
def test_every_flow_reaches_sts_through_one_client(env: ExchangeEnv, transport: str, kind: type) -> None:
    config = env.settings.token_exchange.model_copy(update={"sts_transport": transport})
    with extra_broker(env, token_exchange=config) as (_, app):
        context = context_of_app(app)
        service = context.service
        sts = service.sts
        assert isinstance(sts, kind)
        assert context.service.token_exchange.sts is sts and service.issuance.sts is sts
        assert service.web_identity._sts is sts and service.saml_issuer._sts is sts
        assert set(service.issuance.issuers) == {"web_identity", "saml"}
        assert service.issuance.issuers["web_identity"] is service.web_identity
