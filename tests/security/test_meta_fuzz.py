"""Fuzzing signed metadata (metadata_signing_certificate): any mutation of a signed federation aggregate (or
a whole-document signed EntityDescriptor) is refused with a ValueError carrying a metadata reason code, or
gives exactly the descriptor of the document as signed. Never another exception, never a changed IdP."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_descriptor import IdpDescriptor
from broker.connectors.saml_metadata import parse_metadata
from broker.devstack.dev_saml_idp import DevSamlIdp, write_key_and_cert
from tests.saml_sp._meta_support import aggregate, idp_entity, sign, sp_entity
from tests.security._fuzz_support import fuzz_settings, mutated

REASONS = {"saml_metadata_invalid", "saml_metadata_entity", "saml_metadata_signature", "saml_metadata_unsigned",
           "saml_metadata_expired"}


@pytest.fixture(scope="module")
def signed() -> Iterator[tuple[SamlIdpConfig, list[tuple[bytes, IdpDescriptor]]]]:
    with tempfile.TemporaryDirectory(prefix="fuzz-meta-") as tmp:
        work = Path(tmp)
        idp = DevSamlIdp("http://127.0.0.1:9", work / "idp")
        key, cert = write_key_and_cert(work / "fed", "fed", "federation-signer")
        _, other = write_key_and_cert(work / "other", "other", "decoy")
        config = SamlIdpConfig.model_validate({
            "id": "fed", "type": "saml", "name": "F", "metadata_url": "https://federation.example.org/md.xml",
            "entity_id": idp.entity_id, "metadata_signing_certificate": str(cert)})
        decoys = [idp_entity(f"https://idp{n}.example.org/idp", [other.read_text()]) for n in range(3)]
        documents = [sign(aggregate(sp_entity("https://sp.example.org/sp"), *decoys, [idp.metadata_xml()],
                                    valid_until="2099-01-01T00:00:00Z"), key, cert),
                     sign(idp.metadata_xml(), key, cert, reference_uri="")]
        yield config, [(d.encode(), parse_metadata(d.encode(), config)) for d in documents]


@fuzz_settings(80)
@given(data=st.data(), which=st.integers(0, 1))
def test_signed_metadata_mutations(signed: tuple[SamlIdpConfig, list[tuple[bytes, IdpDescriptor]]],
                                   data: st.DataObject, which: int) -> None:
    config, seeds = signed
    genuine, descriptor = seeds[which]
    xml = data.draw(mutated(genuine))
    try:
        got = parse_metadata(xml, config)
    except ValueError as exc:
        assert getattr(exc, "reason", None) in REASONS, exc
        return
    assert got == descriptor
