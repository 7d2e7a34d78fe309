"""The ACS speed-ups change no decision: on every response of the benchmark corpus the cached validation
answers exactly as stock python3-saml (accept/refuse and the error), and the broker's ACS path accepts only
responses stock python3-saml accepts (it refuses more: the checks the library leaves to the application).
How fast it is, is not a test's business: bench/saml_acs.py measures it against stock in the same run."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from bench.saml_acs import BROKER_URL, REQUEST_ID, Setup, build, corpus, stock_verdict, verdicts
from broker.connectors.saml import SamlConnector, request_data
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_xml import guarded_parse
from broker.devstack.dev_saml_idp import saml_idp_config, write_key_and_cert
from broker.seams.python3_saml import PIECES, ParsedResponse, cached_validation


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    yield build(tmp_path_factory.mktemp("bench-saml"))


def test_identical_decisions_on_every_response(setup: Setup) -> None:
    results = verdicts(setup)
    assert len(results) >= 13
    for name, stock, cached, acs in results:
        assert stock == cached, name
        assert acs == stock[0], name  # on this corpus: the same accept/refuse as stock, response by response
    assert [name for name, _, _, acs in results if acs] == ["valid alice", "valid bob", "valid carol"]


# ---- broker/seams/python3_saml.py, piece by piece (bench/seams.py measures each against stock) -----------

XENC = "http://www.w3.org/2001/04/xmlenc#"
ENCRYPTION = (f"{XENC}aes256-cbc", f"{XENC}rsa-oaep-mgf1p")


@pytest.mark.parametrize("piece", sorted(PIECES))
def test_each_cached_piece_alone_decides_as_stock(setup: Setup, piece: str) -> None:
    for name, b64 in corpus(setup):
        stock = stock_verdict(setup, b64)
        with cached_validation(frozenset({piece})):
            assert stock_verdict(setup, b64) == stock, (piece, name)


def _parsed_verdict(settings: OneLogin_Saml2_Settings, acs_url: str, b64: str) -> tuple[bool, str | None]:
    """As `stock_verdict`, with ParsedResponse over the XML guard's tree instead of the library's constructor."""
    raw = base64.b64decode(b64)
    try:
        response = ParsedResponse(settings, raw, guarded_parse(raw, max_bytes=len(raw)))
        ok = bool(response.is_valid(request_data(acs_url, b64), REQUEST_ID))
        return ok, response.get_error()
    except Exception as exc:
        return False, type(exc).__name__


def _stock(settings: OneLogin_Saml2_Settings, acs_url: str, b64: str) -> tuple[bool, str | None]:
    try:
        response = OneLogin_Saml2_Response(settings, b64)
        return bool(response.is_valid(request_data(acs_url, b64), REQUEST_ID)), response.get_error()
    except Exception as exc:
        return False, type(exc).__name__


def test_parsed_response_decides_as_the_library_constructor(setup: Setup) -> None:
    acs = setup.connector.acs_url
    for name, b64 in corpus(setup):
        assert _parsed_verdict(setup.settings, acs, b64) == _stock(setup.settings, acs, b64), name


def test_parsed_response_decrypts_as_the_library_constructor(setup: Setup, tmp_path: Path) -> None:
    """Encrypted assertions (ParsedResponse's own decryption path): same verdicts and the same plaintext."""
    sp_key, sp_cert = write_key_and_cert(tmp_path / "sp", "sp", "sts-broker-sp")
    _, other_cert = write_key_and_cert(tmp_path / "other-sp", "other", "other-sp")
    data = saml_idp_config("corpenc", setup.idp.url, setup.idp.certificate)
    data |= {"want_assertions_signed": False, "want_assertions_encrypted": True,
             "sp_keys": {"key_file": str(sp_key), "cert_file": str(sp_cert)}}
    connector = SamlConnector(SamlIdpConfig.model_validate(data), BROKER_URL, None)
    setup.idp.trust_sp([setup.connector.sp_metadata(), connector.sp_metadata()])
    _, settings = asyncio.run(connector.settings())
    acs, entity = connector.acs_url, connector.sp_entity_id

    def encrypted(cert: Path, **kw: Any) -> str:
        kw.setdefault("destination", acs)
        xml = setup.idp.response_xml("bob", in_response_to=REQUEST_ID, sp_entity_id=entity, sign_assertion=False,
                                     sign_response=True, encrypt_assertion=True, encryption=ENCRYPTION,
                                     encrypt_cert_assertion=cert.read_text(), encrypt_assertion_self_contained=True,
                                     **kw)
        return base64.b64encode(xml.encode()).decode()

    cases = {"valid": encrypted(sp_cert), "to another SP's key": encrypted(other_cert),
             "other destination": encrypted(sp_cert, destination="https://evil.example.com/acs")}
    verdicts = {name: (_parsed_verdict(settings, acs, b64), _stock(settings, acs, b64)) for name, b64 in cases.items()}
    for name, (parsed, stock) in verdicts.items():
        assert parsed == stock, name
    assert [name for name, (parsed, _) in verdicts.items() if parsed[0]] == ["valid"]
    raw = base64.b64decode(cases["valid"])
    ours = ParsedResponse(settings, raw, guarded_parse(raw, max_bytes=len(raw))).decrypted_document
    theirs = OneLogin_Saml2_Response(settings, cases["valid"]).decrypted_document
    assert etree.tostring(ours, method="c14n") == etree.tostring(theirs, method="c14n")
