"""Fuzzing the IdP metadata parser (broker/connectors/saml_metadata.py) with mutations of real metadata: the
example in idp_configs/metadata/ and what pysaml2 publishes. parse_metadata answers an IdpDescriptor or a
ValueError (which a metadata file turns into a ConfigError and a metadata URL into "keep the last good
metadata"), never another exception; and what it accepts, python3-saml accepts as IdP settings, so a
refreshed document can never make every later login fail with a 500."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import MetadataSource, _from_file, parse_metadata
from broker.devstack.dev_saml_idp import DevSamlIdp
from broker.errors import ConfigError, UpstreamUnavailable
from tests.security._fuzz_support import NS, REPO, VALUES, fuzz_settings, mutated

EXAMPLE = REPO / "idp_configs" / "metadata" / "generic-idp.xml"
URL = "https://idp.example.com/md"


def _config(**kw: object) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({"id": "corp", "type": "saml", "name": "Corp", "metadata_url": URL, **kw})


@pytest.fixture(scope="module")
def seeds() -> Iterator[list[bytes]]:
    with tempfile.TemporaryDirectory(prefix="fuzz-md-") as tmp:
        yield [EXAMPLE.read_bytes(), DevSamlIdp("http://127.0.0.1:9", Path(tmp)).metadata_xml().encode()]


def _judge(xml: bytes) -> None:
    config = _config()
    try:
        descriptor = parse_metadata(xml, config)
    except ValueError:
        return
    # Accepted: python3-saml must take it as the IdP of the broker's settings (built as a login builds them).
    connector = SamlConnector(config, "https://broker.example.com", None)
    OneLogin_Saml2_Settings(connector.settings_dict(descriptor), custom_base_path=None)


@fuzz_settings(100)
@given(data=st.data(), which=st.integers(0, 1))
def test_metadata_mutations(seeds: list[bytes], data: st.DataObject, which: int) -> None:
    _judge(data.draw(mutated(seeds[which])))


def _set_field(where: str, value: str) -> Callable[[bytes], bytes]:
    """Replace one field that ends up in the descriptor (SSO URL, binding, entity id, certificate, flag)."""
    def apply(xml: bytes) -> bytes:
        root = etree.fromstring(xml)
        path, _, attr = where.partition("@")
        for el in root.iter(f"{{{NS['md']}}}{path}" if ":" not in path else path):
            if attr:
                el.set(attr, value)
            else:
                el.text = value
            break
        return bytes(etree.tostring(root))
    return apply


FIELDS = st.sampled_from(["SingleSignOnService@Location", "SingleSignOnService@Binding", "EntityDescriptor@entityID",
                          f"{{{NS['ds']}}}X509Certificate", "IDPSSODescriptor@WantAuthnRequestsSigned",
                          "KeyDescriptor@use"])


@fuzz_settings(60)
@given(edits=st.lists(st.builds(_set_field, FIELDS, VALUES), min_size=1, max_size=3), which=st.integers(0, 1))
def test_metadata_field_values(seeds: list[bytes], edits: list[Callable[[bytes], bytes]], which: int) -> None:
    xml = seeds[which]
    for edit in edits:
        xml = edit(xml)
    _judge(xml)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("SingleSignOnService@Location", "not a url", "SSO URL"),
    ("SingleSignOnService@Location", "javascript:alert(1)", "SSO URL"),
    ("SingleSignOnService@Location", "https://", "SSO URL"),
    ("SingleSignOnService@Location", "file:///etc/passwd", "SSO URL"),
    ("IDPSSODescriptor@WantAuthnRequestsSigned", "true", "sp_keys"),
])
def test_metadata_python3_saml_would_refuse_is_refused(seeds: list[bytes], field: str, value: str, problem: str,
                                                       tmp_path: Path) -> None:
    """Found by the fuzz: metadata with an SSO URL python3-saml does not take as a URL, or asking for signed
    AuthnRequests from an IdP config without sp_keys, was accepted, and every later login then failed
    building the library's settings (a 500 at /login/{idp} and at the ACS). Now the metadata is refused: a
    file at start-up (ConfigError), a URL by keeping the last good metadata."""
    xml = _set_field(field, value)(seeds[0])
    with pytest.raises(ValueError, match=problem):
        parse_metadata(xml, _config())
    file = tmp_path / "md.xml"
    file.write_bytes(xml)
    with pytest.raises(ConfigError, match=problem):
        _from_file(file, _config())
    answers = [seeds[0], xml]
    source = MetadataSource(_config(metadata_refresh="1s"), httpx.AsyncClient(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, content=answers.pop(0) if len(answers) > 1 else answers[0]))))

    async def twice() -> tuple[str, str]:
        first = await source.get()
        source._expires = 0.0  # due for a refresh now
        return first.sso_url, (await source.get()).sso_url

    assert asyncio.run(twice()) == ("https://idp.example.com/saml/sso",) * 2


@fuzz_settings(30)
@given(data=st.data())
def test_metadata_file_and_url_refusals(seeds: list[bytes], data: st.DataObject) -> None:
    """The two callers: a metadata file gives a ConfigError, a metadata URL an UpstreamUnavailable (no
    metadata yet) - never anything else."""
    xml = data.draw(mutated(seeds[0]))
    with tempfile.NamedTemporaryFile(suffix=".xml") as file:
        file.write(xml)
        file.flush()
        with contextlib.suppress(ConfigError):
            _from_file(Path(file.name), _config())
    source = MetadataSource(_config(), httpx.AsyncClient(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, content=xml))))
    with contextlib.suppress(UpstreamUnavailable):
        asyncio.run(source.get())
