"""The ACS path for an IdP's AWS app (`aws_passthrough`: python3-saml with strict off, then what it skips, then the
broker's own checks), fuzzed through the connector with mutations of genuine pysaml2-signed responses:

- a mutated AWS app response is refused, or yields exactly the identity the IdP signed, never another one;
- that path is never laxer than the stock strict one: forced onto mutations of an ordinary response (addressed to
  the broker), whatever it accepts the strict path accepts too, with the same identity."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import AwsApp, DevSamlIdp, saml_idp_config
from broker.errors import BrokerError, TokenInvalid
from broker.identity import Identity
from tests.security._fuzz_support import fuzz_settings, mutated

BROKER = "https://broker.example"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> DevSamlIdp:
    return DevSamlIdp("http://127.0.0.1:9", tmp_path_factory.mktemp("aws-app-fuzz"))  # signs; never served


def _connector(idp: DevSamlIdp, **extra: Any) -> SamlConnector:
    config = {**saml_idp_config("corp", idp.url, idp.certificate), "allow_idp_initiated": True, **extra}
    return SamlConnector(SamlIdpConfig.model_validate(config), BROKER, None)


@pytest.fixture(scope="module")
def strict(idp: DevSamlIdp) -> SamlConnector:
    connector = _connector(idp)
    idp.trust_sp([connector.sp_metadata()])
    return connector


@pytest.fixture(scope="module")
def aws(idp: DevSamlIdp, strict: SamlConnector) -> SamlConnector:
    return _connector(idp, aws_passthrough=True)  # the same ACS and SP entity id as `strict`


@pytest.fixture(scope="module")
def app_response(idp: DevSamlIdp, aws: SamlConnector) -> bytes:
    xml = idp.aws_app_response(AwsApp(), "alice", in_response_to=None, destination=aws.acs_url,
                               sp_entity_id=aws.sp_entity_id)
    return xml.encode()


@pytest.fixture(scope="module")
def ordinary(idp: DevSamlIdp, strict: SamlConnector) -> bytes:
    xml = idp.response_xml("alice", in_response_to=None, destination=strict.acs_url,
                           sp_entity_id=strict.sp_entity_id)
    return xml.encode()


def _identity_of(identity: Identity) -> tuple[Any, ...]:
    return (identity.idp, identity.issuer, identity.subject, identity.email, identity.email_verified,
            identity.groups, identity.mfa, dict(identity.claims))


def _verify(connector: SamlConnector, raw: bytes) -> tuple[Any, ...]:
    async def run() -> Identity:
        incoming = connector.receive(base64.b64encode(raw).decode())
        return (await connector.finish(incoming, None)).identity
    return _identity_of(asyncio.run(run()))


def _verdict(connector: SamlConnector, raw: bytes) -> tuple[Any, ...] | None:
    try:
        return _verify(connector, raw)
    except BrokerError:
        return None


def _forced(connector: SamlConnector, raw: bytes) -> tuple[Any, ...] | None:
    """The AWS app path taken whatever the response names (the choice is made on unverified content)."""
    with mock.patch("broker.connectors.saml.names_another_party", return_value=True):
        return _verdict(connector, raw)


def test_the_app_response_passes_only_with_the_option(strict: SamlConnector, aws: SamlConnector,
                                                      app_response: bytes, ordinary: bytes) -> None:
    """Controls for the fuzz below: each genuine response is accepted where it should be."""
    assert _verify(aws, app_response)[2] == "alice@example.com"
    with pytest.raises(TokenInvalid) as refused:
        _verify(strict, app_response)
    assert refused.value.reason == "saml_for_aws"
    assert _verify(strict, ordinary) == _verify(aws, ordinary) == _forced(aws, ordinary) is not None


@fuzz_settings(100)
@given(xml=st.data())
def test_a_mutated_app_response_is_refused_or_the_signed_identity(aws: SamlConnector, app_response: bytes,
                                                                  xml: st.DataObject) -> None:
    signed = _verify(aws, app_response)
    verdict = _verdict(aws, xml.draw(mutated(app_response)))
    assert verdict is None or verdict == signed


@fuzz_settings(100)
@given(xml=st.data())
def test_the_app_path_is_never_laxer_than_the_strict_one(strict: SamlConnector, aws: SamlConnector,
                                                         ordinary: bytes, xml: st.DataObject) -> None:
    raw = xml.draw(mutated(ordinary))
    relaxed = _forced(aws, raw)
    if relaxed is not None:
        assert _verdict(strict, raw) == relaxed
