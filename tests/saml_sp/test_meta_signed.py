"""Signed IdP metadata over real HTTP (a loopback server, the connector's real httpx client), signed by
xmlsec1 through pysaml2: accepted when it verifies against metadata_signing_certificate; a refresh that
does not (another key, no signature, wrapping, a transform, stale) keeps the last good descriptor, is
audited (saml_metadata_refused) and counted (sts_broker_saml_metadata_refreshes_total), and logins keep
trusting the old IdP certificate only."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmlsec
from lxml import etree  # type: ignore[import-untyped]

from broker.audit import AuditLog
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import MetadataSource, parse_metadata
from broker.devstack.dev_saml_idp import DevSamlIdp, saml_idp_config, write_key_and_cert
from broker.errors import TokenInvalid, UpstreamUnavailable
from broker.metrics import Metrics
from broker.web.errors import http_status
from tests.saml_sp._meta_support import (
    DS,
    Served,
    add_outside_signed,
    aggregate,
    entities_left_unsigned,
    idp_entity,
    replace_entity,
    serve_metadata,
    sign,
    sp_entity,
    wrap_signed,
)

BROKER = "http://127.0.0.1:8000"


@dataclass
class Federation:
    idp: DevSamlIdp
    key: Path
    cert: Path
    attacker_key: Path
    attacker_cert: Path
    url: str
    served: Served
    tmp: Path

    def document(self, *entities: str, valid_until: str | None = None) -> str:
        """The federation's aggregate: decoys, an SP, and the given entities (the pysaml2 IdP by default)."""
        decoys = [idp_entity(f"https://idp{n}.example.org/idp", [self.attacker_cert.read_text()]) for n in range(3)]
        return aggregate(sp_entity("https://sp.example.org/sp"), *decoys,
                         [*(entities or (self.idp.metadata_xml(),))], valid_until=valid_until)

    def signed(self, *entities: str, **kw: Any) -> str:
        return sign(self.document(*entities), self.key, self.cert, **kw)

    def attacker_entity(self) -> str:
        """The pysaml2 IdP's entity id and SSO URL with the attacker's certificate."""
        return idp_entity(self.idp.entity_id, [self.attacker_cert.read_text()], sso=self.idp.sso_url)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("meta-signed")
    key, cert = write_key_and_cert(tmp / "fed", "fed", "federation-metadata-signer")
    attacker_key, attacker_cert = write_key_and_cert(tmp / "attacker", "attacker", "dev-saml-idp")
    with serve_metadata() as (url, served):
        yield Federation(DevSamlIdp("http://127.0.0.1:9", tmp / "idp"), key, cert, attacker_key, attacker_cert, url,
                         served, tmp)


@dataclass
class Broker:
    connector: SamlConnector
    audit_path: Path
    metrics: Metrics

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines() if self.audit_path.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == name]

    def count(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value("sts_broker_saml_metadata_refreshes_total",
                                                       {"idp": "fed", "result": result})
        return value or 0.0


def _connector(fed: Federation, http: httpx.AsyncClient, tmp: Path, **kw: Any) -> Broker:
    config = {**{k: v for k, v in saml_idp_config("fed", fed.idp.url, fed.idp.certificate).items()
                 if k not in {"sso_url", "certificates"}},
              "metadata_url": fed.url, "metadata_signing_certificate": str(fed.cert), "allow_idp_initiated": True, **kw}
    audit, metrics = AuditLog(str(tmp / "audit.log")), Metrics()
    audit.observers.append(metrics.observe_event)
    connector = SamlConnector(SamlIdpConfig.model_validate(config), BROKER, http, audit=audit)
    fed.idp.trust_sp([connector.sp_metadata()])
    return Broker(connector, tmp / "audit.log", metrics)


async def _login(fed: Federation, broker: Broker, *, attacker: bool = False) -> str:
    """A response for bob from the pysaml2 IdP (or re-signed with the attacker's key and certificate), through
    the connector as the ACS runs it: the descriptor it trusts comes from the metadata."""
    connector = broker.connector
    xml = fed.idp.response_xml("bob", in_response_to=None, destination=connector.acs_url,
                               sp_entity_id=connector.sp_entity_id)
    if attacker:
        xml = fed.idp.resign(xml, key=fed.attacker_key, cert=fed.attacker_cert)
    login = await connector.finish(connector.receive(base64.b64encode(xml.encode()).decode()), None)
    return login.identity.subject


def _refreshed(broker: Broker) -> None:
    broker.connector.metadata._expires = 0.0  # due now (metadata_refresh would wait hours)


def _bad_documents(fed: Federation) -> dict[str, Callable[[], str]]:
    """Each a refresh an attacker on the path (or a stale cache) could serve, all naming the attacker's
    certificate for the IdP the broker trusts."""
    return {
        "another_key": lambda: sign(fed.document(fed.attacker_entity()), fed.attacker_key, fed.attacker_cert),
        "unsigned": lambda: fed.document(fed.attacker_entity()),
        "wrapped": lambda: wrap_signed(fed.signed(), fed.attacker_entity()),
        "entity_added_outside": lambda: add_outside_signed(fed.signed(), idp_entity(
            "https://evil.example.org/idp", [fed.attacker_cert.read_text()])),
        "entity_replaced": lambda: replace_entity(fed.signed(fed.idp.metadata_xml()), fed.idp.entity_id,
                                                  fed.attacker_entity()),
        "xpath_transform": lambda: replace_entity(
            fed.signed(fed.idp.metadata_xml(), template=entities_left_unsigned), fed.idp.entity_id,
            fed.attacker_entity()),
        "stale": lambda: sign(fed.document(fed.attacker_entity(), valid_until="2024-01-01T00:00:00Z"),
                              fed.key, fed.cert),
    }


REASONS = {"another_key": "saml_metadata_signature", "unsigned": "saml_metadata_unsigned",
           "wrapped": "saml_metadata_signature", "entity_added_outside": "saml_metadata_signature",
           "entity_replaced": "saml_metadata_signature", "xpath_transform": "saml_metadata_signature",
           "stale": "saml_metadata_expired"}


@pytest.mark.parametrize("attack", sorted(REASONS))
def test_a_refused_refresh_keeps_the_last_good_metadata(fed: Federation, attack: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            broker = _connector(fed, http, tmp_path)
            fed.served.body = fed.signed().encode()
            assert await _login(fed, broker) == "bob@example.com"
            good = broker.connector.metadata.loaded
            assert good is not None and broker.count("ok") == 1
            asked = fed.served.requests
            fed.served.body = _bad_documents(fed)[attack]().encode()
            _refreshed(broker)
            assert await _login(fed, broker) == "bob@example.com"  # on the last good descriptor
            assert fed.served.requests == asked + 1 and broker.connector.metadata.loaded is good
            with pytest.raises(TokenInvalid) as refused:
                await _login(fed, broker, attacker=True)
            assert refused.value.reason == "saml_invalid_signature"
            [event] = broker.events("saml_metadata_refused")
            assert event["idp"] == "fed" and event["reason"] == REASONS[attack] and event["kept_last_good"] is True
            assert len(event["detail"]) <= 300 and "MII" not in event["detail"]  # no document content
            assert broker.count(REASONS[attack]) == 1 and broker.count("ok") == 1
    asyncio.run(scenario())


def test_the_xpath_transform_attack_is_real(fed: Federation) -> None:
    """Why the shape allow-list runs first: xmlsec itself verifies the document whose entity was swapped
    under an XPath filter, with the federation's real key."""
    document = _bad_documents(fed)["xpath_transform"]()
    root = etree.fromstring(document.encode())
    xmlsec.tree.add_ids(root, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(fed.cert), xmlsec.constants.KeyDataFormatCertPem)
    context.verify(root.find(f"{{{DS}}}Signature"))  # no exception: verified
    assert fed.attacker_cert.read_text().splitlines()[1] in document


def test_signed_refreshes_are_taken_and_counted(fed: Federation, tmp_path: Path) -> None:
    """A new signed document (here the IdP's key rolled over: two signing certificates) replaces the old one;
    the whole-document form (Reference URI="") some federation signers write is accepted too."""
    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            broker = _connector(fed, http, tmp_path)
            fed.served.body = fed.signed().encode()
            first = await broker.connector.metadata.get()
            rolled = idp_entity(fed.idp.entity_id, [fed.attacker_cert.read_text(), fed.idp.certificate],
                                sso=fed.idp.sso_url)
            fed.served.body = fed.signed(rolled, reference_uri="").encode()
            _refreshed(broker)
            second = await broker.connector.metadata.get()
            assert len(first.certificates) == 1 and len(second.certificates) == 2
            assert await _login(fed, broker) == "bob@example.com"
            assert await _login(fed, broker, attacker=True) == "bob@example.com"  # the IdP published that key
            assert broker.count("ok") == 2 and [e["certificates"] for e in broker.events("saml_metadata_refreshed")] \
                == [1, 2]
    asyncio.run(scenario())


def test_no_good_copy_at_all(fed: Federation, tmp_path: Path) -> None:
    """The first document is refused: nothing to log in with (the login is refused as for an unreachable
    metadata URL), audited with kept_last_good false; the next good one is used."""
    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            broker = _connector(fed, http, tmp_path)
            fed.served.body = fed.document().encode()
            with pytest.raises(UpstreamUnavailable) as info:
                await _login(fed, broker)
            assert info.value.reason == "saml_metadata_unsigned" and http_status(info.value) == 502
            [event] = broker.events("saml_metadata_refused")
            assert event["kept_last_good"] is False and broker.count("saml_metadata_unsigned") == 1
            fed.served.body = fed.signed().encode()
            assert await _login(fed, broker) == "bob@example.com"  # a failed first fetch is retried at once
    asyncio.run(scenario())


def test_a_held_copy_is_not_used_past_its_valid_until(fed: Federation, tmp_path: Path) -> None:
    """The document said until when; when no refresh replaced it by then, logins stop trusting it."""
    now = [1_900_000_000.0]  # 2030-03-17T17:46:40Z
    document = sign(fed.document(valid_until="2030-03-17T18:46:40Z"), fed.key, fed.cert)

    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            config = SamlIdpConfig.model_validate({"id": "fed", "type": "saml", "name": "F", "metadata_url": fed.url,
                                                   "entity_id": fed.idp.entity_id,
                                                   "metadata_signing_certificate": str(fed.cert)})
            source = MetadataSource(config, http, clock=lambda: now[0])
            fed.served.body = document.encode()
            held = await source.get()
            assert held.valid_until == 1_900_003_600.0
            assert source._interval(held) == 1800  # half the hour left
            fed.served.body = b"<not-metadata/>"
            source._expires = 0.0
            now[0] += 1800
            assert await source.get() is held  # refused refresh, still in date
            now[0] += 1800
            with pytest.raises(UpstreamUnavailable) as info:
                await source.get()
            assert info.value.reason == "saml_metadata_expired"
    asyncio.run(scenario())


def _config(fed: Federation) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({"id": "fed", "type": "saml", "name": "F", "metadata_url": fed.url,
                                         "entity_id": fed.idp.entity_id, "metadata_signing_certificate": str(fed.cert)})


def _sha1(signature: Any) -> None:
    signature.find(f".//{{{DS}}}SignatureMethod").set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    signature.find(f".//{{{DS}}}DigestMethod").set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")


@pytest.mark.parametrize(("name", "make", "detail"), [
    ("sha1", lambda fed: fed.signed(template=_sha1), "rsa-sha1"),
    # An entity carrying the root's ID: "#ID" could resolve to either (ID confusion).
    ("id_twice", lambda fed: fed.signed(idp_entity("https://idp9.example.org/idp", [fed.cert.read_text()]).replace(
        "<md:EntityDescriptor ", '<md:EntityDescriptor ID="_federation20261203" ', 1), fed.idp.metadata_xml()),
     "appears 2 times"),
    # A signature on an entity inside the aggregate, besides the root's: nothing but the whole is signed.
    ("inner_signature", lambda fed: fed.signed(sign(fed.idp.metadata_xml(), fed.key, fed.cert)), "2 Signature(s)"),
])
def test_signature_shapes_refused_before_xmlsec(fed: Federation, name: str, make: Callable[[Federation], str],
                                                 detail: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_metadata(make(fed).encode(), _config(fed))
    assert getattr(info.value, "reason", None) == "saml_metadata_signature" and detail in str(info.value), name
