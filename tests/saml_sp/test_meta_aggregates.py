"""IdP metadata as federations publish it: aggregates (EntitiesDescriptor, nested) with `entity_id` naming the
IdP, validUntil / cacheDuration, KeyDescriptor uses, `sts-broker check` on metadata files, and the time a
5 MB aggregate takes. Documents are pysaml2's real IdP metadata among decoy entities."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli import main
from broker.config import load_idps
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import MetadataSource, check_metadata_file, parse_metadata
from broker.connectors.saml_metadata_read import MetadataRefused
from broker.devstack.dev_saml_idp import DevSamlIdp, saml_idp_config, write_key_and_cert
from broker.devstack.local_aws import LocalAws
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, write_config
from broker.errors import ConfigError
from tests.saml_sp._meta_support import aggregate, cert_body, idp_entity, sign, sp_entity

URL = "https://federation.example.org/metadata.xml"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> DevSamlIdp:
    return DevSamlIdp("http://127.0.0.1:9", tmp_path_factory.mktemp("meta-idp"))


@pytest.fixture(scope="module")
def other_cert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_key_and_cert(tmp_path_factory.mktemp("meta-other"), "other", "decoy")[1].read_text()


def _cfg(**kw: Any) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({"id": "fed", "type": "saml", "name": "Federation", "metadata_url": URL,
                                         **kw})


def _decoys(other_cert: str, count: int, prefix: str = "https://idp") -> list[str]:
    return [idp_entity(f"{prefix}{n}.example.org/idp", [other_cert]) for n in range(count)]


def _refused(xml: str | bytes, config: SamlIdpConfig, **kw: Any) -> MetadataRefused:
    with pytest.raises(MetadataRefused) as info:
        parse_metadata(xml.encode() if isinstance(xml, str) else xml, config, **kw)
    return info.value


def test_aggregate_names_the_idp_among_decoys(idp: DevSamlIdp, other_cert: str) -> None:
    """Nested as eduGAIN and InCommon nest them: the named IdP sits in an inner EntitiesDescriptor after SPs
    and other IdPs; what is read is what the same metadata alone gives."""
    alone = parse_metadata(idp.metadata_xml().encode(), _cfg())
    document = aggregate(sp_entity("https://sp.example.org/sp"), *_decoys(other_cert, 3),
                         [idp_entity("https://inner.example.org/idp", [other_cert]), idp.metadata_xml()])
    chosen = parse_metadata(document.encode(), _cfg(entity_id=idp.entity_id))
    assert chosen == alone and chosen.certificates == (cert_body(idp.certificate),)
    decoy = parse_metadata(document.encode(), _cfg(entity_id="https://idp1.example.org/idp"))
    assert decoy.certificates == (cert_body(other_cert),) and decoy.entity_id == "https://idp1.example.org/idp"


def test_aggregate_without_entity_id_lists_the_idps(idp: DevSamlIdp, other_cert: str) -> None:
    """Which key to set, how many IdPs, the first ten of them; never an SP, never all 25."""
    document = aggregate(sp_entity("https://sp.example.org/sp"), *_decoys(other_cert, 24), [idp.metadata_xml()])
    refused = _refused(document, _cfg())
    message = str(refused)
    assert refused.reason == "saml_metadata_entity"
    assert "set entity_id:" in message and "of 25 IdPs" in message and "(25)" in message
    assert all(f"https://idp{n}.example.org/idp" in message for n in range(10))
    assert "https://idp10.example.org/idp" not in message and idp.entity_id not in message and message.endswith("...")
    assert "sp.example.org" not in message and len(message) < 1200


def test_wrong_entity_id_lists_the_idps(idp: DevSamlIdp, other_cert: str) -> None:
    document = aggregate(*_decoys(other_cert, 2), idp.metadata_xml())
    refused = _refused(document, _cfg(entity_id="https://nobody.example.org/idp"))
    assert refused.reason == "saml_metadata_entity"
    assert "no entity with entityID 'https://nobody.example.org/idp'" in str(refused)
    assert "(3)" in str(refused) and idp.entity_id in str(refused) and "https://idp1.example.org/idp" in str(refused)


def test_an_sp_is_not_an_idp(idp: DevSamlIdp, other_cert: str) -> None:
    document = aggregate(sp_entity("https://sp.example.org/sp"), idp.metadata_xml())
    refused = _refused(document, _cfg(entity_id="https://sp.example.org/sp"))
    assert refused.reason == "saml_metadata_entity" and "is not a SAML 2.0 IdP" in str(refused)
    assert idp.entity_id in str(refused)  # what could be meant instead
    alone = _refused(sp_entity("https://sp.example.org/sp"), _cfg())
    assert alone.reason == "saml_metadata_entity" and "not a SAML 2.0 IdP" in str(alone)


def test_aggregate_with_one_idp_needs_no_entity_id(idp: DevSamlIdp) -> None:
    """TestShib's documents: an EntitiesDescriptor of one IdP and one SP (accepted before aggregates were)."""
    document = aggregate(sp_entity("https://sp.example.org/sp"), idp.metadata_xml())
    assert parse_metadata(document.encode(), _cfg()).entity_id == idp.entity_id


def test_single_entity_other_than_entity_id(idp: DevSamlIdp) -> None:
    refused = _refused(idp.metadata_xml(), _cfg(entity_id="https://other.example.org/idp"))
    assert refused.reason == "saml_metadata_entity"
    assert repr(idp.entity_id) in str(refused) and "'https://other.example.org/idp'" in str(refused)
    assert parse_metadata(idp.metadata_xml().encode(), _cfg(entity_id=idp.entity_id)).entity_id == idp.entity_id


def test_an_entity_twice_is_ambiguous(idp: DevSamlIdp, other_cert: str) -> None:
    twin = idp_entity(idp.entity_id, [other_cert])
    refused = _refused(aggregate(idp.metadata_xml(), [twin]), _cfg(entity_id=idp.entity_id))
    assert refused.reason == "saml_metadata_entity" and "2 entities with entityID" in str(refused)


def test_key_descriptor_uses(idp: DevSamlIdp, other_cert: str) -> None:
    """No `use` is signing; every signing certificate is kept, in order (rollover); encryption-only keys are
    not signing keys, even when they are the only key."""
    mine = idp.certificate
    rollover = idp_entity("https://r.example.org/idp", [other_cert, mine, other_cert],
                          uses=[None, "signing", "encryption"])
    assert parse_metadata(rollover.encode(), _cfg()).certificates == (cert_body(other_cert), cert_body(mine))
    encryption_only = idp_entity("https://e.example.org/idp", [other_cert], uses=["encryption"])
    assert "signing certificate" in str(_refused(encryption_only, _cfg()))


def test_valid_until(idp: DevSamlIdp, other_cert: str) -> None:
    """Past validUntil on the root, on an enclosing EntitiesDescriptor or on the entity: a stale document,
    refused signed or not. A future one is kept on the descriptor (it is not used beyond it)."""
    entity = idp.metadata_xml()
    assert _refused(aggregate(entity, valid_until="2020-01-01T00:00:00Z"),
                    _cfg()).reason == "saml_metadata_expired"
    stale_entity = idp_entity("https://s.example.org/idp", [other_cert], valid_until="2021-06-01T00:00:00Z")
    refused = _refused(aggregate(entity, stale_entity, valid_until="2099-01-01T00:00:00Z"),
                       _cfg(entity_id="https://s.example.org/idp"))
    assert refused.reason == "saml_metadata_expired" and "2021-06-01T00:00:00+00:00" in str(refused)
    fresh = parse_metadata(aggregate(entity, valid_until="2099-01-01T00:00:00.5Z").encode(), _cfg())
    assert fresh.valid_until == 4070908800.5
    assert _refused(aggregate(entity, valid_until="next tuesday"), _cfg()).reason == "saml_metadata_invalid"


def test_cache_duration_and_valid_until_shorten_the_refresh(idp: DevSamlIdp) -> None:
    """metadata_refresh (12h by default), or the document's cacheDuration, or half the time left before its
    validUntil, whichever is soonest, but a document never asks for less than a minute."""
    source = MetadataSource(_cfg(), None, clock=lambda: 1_000_000.0)

    def interval(**attributes: str) -> float:
        document = aggregate(idp.metadata_xml()).replace(
            "<md:EntitiesDescriptor ", "<md:EntitiesDescriptor " + " ".join(f'{k}="{v}"' for k, v in attributes.items())
            + " ", 1)
        return source._interval(parse_metadata(document.encode(), _cfg(), now=1_000_000.0))
    assert interval() == 12 * 3600
    assert interval(cacheDuration="PT6H") == 6 * 3600
    assert interval(cacheDuration="PT5S") == 60
    # 1970-01-13T13:46:40Z is 24 h after the clock: half of it; 23 h after: 11.5 h; 25 h after: 12 h.
    assert interval(cacheDuration="P2D", validUntil="1970-01-13T13:46:40Z") == 12 * 3600
    assert interval(validUntil="1970-01-13T12:46:40Z") == 11.5 * 3600
    assert interval(validUntil="1970-01-13T14:46:40Z") == 12 * 3600
    assert interval(validUntil="1970-01-12T13:47:40Z") == 60  # a minute left: never sooner than that
    assert _refused(aggregate(idp.metadata_xml()).replace("<md:EntitiesDescriptor ",
                                                         '<md:EntitiesDescriptor cacheDuration="soon" ', 1),
                    _cfg()).reason == "saml_metadata_invalid"


# ---- metadata files: `sts-broker check` and start-up ------------------------------------------------------

@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, secrets.token_urlsafe(48))
    monkeypatch.setenv("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))


def _broker_with(tmp: Path, idp_file: dict[str, Any], files: dict[str, str]) -> Path:
    dead = "http://127.0.0.1:9"
    config = write_config(tmp / "broker", "http://127.0.0.1:8000", dead, LocalAws(dead, dead, "123456789012"),
                          DEMO_RULES, {}, {})
    for name, text in files.items():
        (tmp / "broker" / "idp_configs" / name).write_text(text)
    (tmp / "broker" / "idp_configs" / "fed.yaml").write_text(yaml.safe_dump(idp_file))
    return config


def _fed_file(idp: DevSamlIdp, **kw: Any) -> dict[str, Any]:
    base = saml_idp_config("fed", idp.url, idp.certificate)
    for inline in ("entity_id", "sso_url", "certificates"):
        base.pop(inline)
    return {**base, "metadata_file": "federation.xml", **kw}


def test_check_refuses_a_metadata_file_naming_file_and_reason(idp: DevSamlIdp, other_cert: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    key, cert = write_key_and_cert(tmp_path / "signer", "signer", "federation-signer")
    other_key, _ = write_key_and_cert(tmp_path / "signer2", "other", "not-the-federation")
    good = sign(aggregate(*_decoys(other_cert, 2), idp.metadata_xml()), key, cert)
    files = {"federation.xml": good, "signer.pem": cert.read_text()}
    config = _broker_with(tmp_path, _fed_file(idp, entity_id=idp.entity_id, metadata_signing_certificate="signer.pem"),
                          files)
    assert main(["check", "--config", str(config)]) == 0
    loaded = load_idps(config.parent / "idp_configs")["fed"]
    assert isinstance(loaded, SamlIdpConfig) and loaded.metadata_signing_certificate == (
        config.parent / "idp_configs" / "signer.pem")
    capsys.readouterr()
    cases = {
        "saml_metadata_entity": (_fed_file(idp), good),
        "saml_metadata_signature": (_fed_file(idp, entity_id=idp.entity_id, metadata_signing_certificate="signer.pem"),
                                    sign(aggregate(idp.metadata_xml()), other_key, cert)),
        "saml_metadata_unsigned": (_fed_file(idp, entity_id=idp.entity_id, metadata_signing_certificate="signer.pem"),
                                   aggregate(idp.metadata_xml())),
        "saml_metadata_expired": (_fed_file(idp), aggregate(idp.metadata_xml(), valid_until="2001-01-01T00:00:00Z")),
    }
    for reason, (idp_file, document) in cases.items():
        config = _broker_with(tmp_path, idp_file, {**files, "federation.xml": document})
        assert main(["check", "--config", str(config)]) == 1, reason
        out = capsys.readouterr()
        assert "federation.xml" in out.out + out.err and f"({reason})" in out.out + out.err, (reason, out)


def test_signing_certificate_file_problems(idp: DevSamlIdp, tmp_path: Path) -> None:
    config = _broker_with(tmp_path, _fed_file(idp, metadata_signing_certificate="missing.pem"),
                          {"federation.xml": idp.metadata_xml()})
    with pytest.raises(ConfigError, match="metadata_signing_certificate: no such file"):
        load_idps(config.parent / "idp_configs")
    (config.parent / "idp_configs" / "missing.pem").write_text("not a certificate")
    loaded = load_idps(config.parent / "idp_configs")["fed"]
    assert isinstance(loaded, SamlIdpConfig)
    with pytest.raises(ConfigError, match=r"missing\.pem: metadata_signing_certificate is not a PEM X\.509"):
        check_metadata_file(loaded)
    with pytest.raises(ValueError, match="goes with metadata_url or metadata_file"):
        SamlIdpConfig.model_validate({**saml_idp_config("x", idp.url, idp.certificate),
                                      "metadata_signing_certificate": "x.pem"})


# ---- size and time --------------------------------------------------------------------------------------

def _federation(idp: DevSamlIdp, other_cert: str, entities: int) -> str:
    """~2.5 KB per entity as federations write them (two certificates, the organization)."""
    extras = ('<md:Organization><md:OrganizationName xml:lang="en">Example University {n}</md:OrganizationName>'
              '<md:OrganizationURL xml:lang="en">https://www{n}.example.org/</md:OrganizationURL></md:Organization>'
              )
    decoys = [idp_entity(f"https://idp{n}.example.org/idp", [other_cert, other_cert], uses=["signing", None]).replace(
        "</md:EntityDescriptor>", extras.format(n=n) + "</md:EntityDescriptor>") for n in range(entities)]
    half = entities // 2
    return aggregate(*decoys[:half], [idp.metadata_xml()], *decoys[half:])


def test_a_5mb_aggregate_of_2000_entities(idp: DevSamlIdp, other_cert: str, tmp_path: Path) -> None:
    """Parsed (and verified) in a worker thread; on this shared 2-core machine ~0.2 s unsigned, ~0.4 s signed.
    The bound asserted is loose (CPU is shared), the figure is printed."""
    key, cert = write_key_and_cert(tmp_path, "fed", "federation-signer")
    document = sign(_federation(idp, other_cert, 2000), key, cert).encode()
    assert 4_800_000 < len(document) < 5_600_000
    config = _cfg(entity_id=idp.entity_id, metadata_max_bytes=8 * 1024 * 1024)
    signed_config = _cfg(entity_id=idp.entity_id, metadata_max_bytes=8 * 1024 * 1024,
                         metadata_signing_certificate=str(cert))
    timings = {}
    for name, cfg in (("unsigned", config), ("signed", signed_config)):
        started = time.perf_counter()
        assert parse_metadata(document, cfg).entity_id == idp.entity_id
        timings[name] = time.perf_counter() - started
    print(f"\n5 MB aggregate ({len(document)} bytes, 2001 entities): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in timings.items()))
    assert max(timings.values()) < 10.0
    # Over metadata_max_bytes (default 512 KiB): refused before parsing.
    assert "over" in str(_refused(document, _cfg(entity_id=idp.entity_id)))
