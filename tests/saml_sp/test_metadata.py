"""security.md SAML item 11 (metadata URLs), IdP metadata parsing, certificate rollover, signed AuthnRequests."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import MetadataSource, parse_metadata
from broker.devstack.dev_saml_idp import DevSamlIdp, saml_idp_config, write_key_and_cert
from broker.errors import TokenInvalid, UpstreamUnavailable

BROKER = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> DevSamlIdp:
    return DevSamlIdp("http://127.0.0.1:9", tmp_path_factory.mktemp("md-idp"))


def _cfg(**kw: Any) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({"id": "corp", "type": "saml", "name": "Corp", **kw})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://idp.example.com/md.xml",
                                 "http://idp.example.com/metadata", "gopher://x", "https://user@idp.example.com/md", "https://idp.example.com/md#x"])
def test_metadata_url_rules(url: str) -> None:
    with pytest.raises(ValidationError):
        _cfg(metadata_url=url)


def test_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        _cfg(metadata_url="https://idp.example.com/md", metadata_file=str(tmp_path / "x.xml"))
    with pytest.raises(ValidationError, match="go together"):
        _cfg(entity_id="urn:x")
    with pytest.raises(ValidationError, match="sp_keys"):
        _cfg(metadata_url="https://idp.example.com/md", want_authn_requests_signed=True)
    assert _cfg(metadata_url="https://idp.example.com/md").metadata_url == "https://idp.example.com/md"


def test_parse_pysaml2_metadata(idp: DevSamlIdp) -> None:
    descriptor = parse_metadata(idp.metadata_xml().encode(), _cfg(metadata_url="https://idp.example.com/md"))
    assert descriptor.entity_id == idp.entity_id and descriptor.sso_url == idp.sso_url
    assert len(descriptor.certificates) == 1 and not descriptor.want_authn_requests_signed
    with pytest.raises(ValueError, match="refused"):
        parse_metadata(b'<!DOCTYPE x [<!ENTITY a "b">]>' + idp.metadata_xml().encode(),
                       _cfg(metadata_url="https://idp.example.com/md"))


def _source(handler: Any, **kw: Any) -> MetadataSource:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MetadataSource(_cfg(metadata_url="https://idp.example.com/md", **kw), http)


def test_fetch_bounded(idp: DevSamlIdp) -> None:
    xml = idp.metadata_xml().encode()

    async def run() -> None:
        big = _source(lambda r: httpx.Response(200, content=b"<a>" + b" " * 600_000 + b"</a>"))
        with pytest.raises(UpstreamUnavailable) as info:
            await big.get()
        assert info.value.reason == "saml_metadata_too_large"
        moved = _source(lambda r: httpx.Response(302, headers={"Location": "file:///etc/passwd"}))
        with pytest.raises(UpstreamUnavailable) as info:
            await moved.get()
        assert info.value.reason == "saml_metadata_http_error"

        def slow(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("slow", request=request)
        with pytest.raises(UpstreamUnavailable) as info:
            await _source(slow).get()
        assert info.value.reason == "saml_metadata_timeout"
        calls = []

        def flaky(request: httpx.Request) -> httpx.Response:
            calls.append(request.url)
            return httpx.Response(200, content=xml) if len(calls) == 1 else httpx.Response(500)
        source = _source(flaky, metadata_refresh="1s")
        first = await source.get()
        source._expires = 0.0  # due for refresh; the refresh fails; the last good metadata stays
        assert await source.get() == first and len(calls) == 2
    asyncio.run(run())


def test_certificate_rollover(idp: DevSamlIdp, tmp_path: Path) -> None:
    _, old_cert = write_key_and_cert(tmp_path, "old", "old")
    connector_md = SamlConnector(_cfg(**_inline(idp, [old_cert.read_text(), idp.certificate])), BROKER, None)
    idp.trust_sp([connector_md.sp_metadata()])

    def verify(certs: list[str]) -> Any:
        connector = SamlConnector(_cfg(**_inline(idp, certs)), BROKER, None)
        xml = idp.response_xml("bob", in_response_to=None, destination=connector.acs_url,
                               sp_entity_id=connector.sp_entity_id)
        return asyncio.run(connector.finish(connector.receive(base64.b64encode(xml.encode()).decode()), None))
    assert verify([old_cert.read_text(), idp.certificate]).identity.subject == "bob@example.com"
    assert verify([idp.certificate, old_cert.read_text()]).identity.subject == "bob@example.com"
    with pytest.raises(TokenInvalid) as info:
        verify([old_cert.read_text()])
    assert info.value.reason == "saml_invalid_signature"


def _inline(idp: DevSamlIdp, certs: list[str]) -> dict[str, Any]:
    cfg = saml_idp_config("corp", idp.url, idp.certificate)
    return {k: v for k, v in cfg.items() if k not in {"id", "type", "name"}} | {
        "certificates": certs, "allow_idp_initiated": True}


def test_signed_authn_request(idp: DevSamlIdp, tmp_path: Path) -> None:
    key, cert = write_key_and_cert(tmp_path, "sp", "sts-broker-sp")
    config = _cfg(**_inline(idp, [idp.certificate]), want_authn_requests_signed=True,
                  sp_keys={"key_file": str(key), "cert_file": str(cert)})
    start = asyncio.run(SamlConnector(config, BROKER, None).start("/roles"))
    url, request_id = start.url, start.request_id
    query = urlsplit(url).query
    params = parse_qs(query)
    assert params["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and request_id
    signed = "&".join(f"{name}={quote(params[name][0], safe='')}" for name in ("SAMLRequest", "RelayState", "SigAlg"))
    public_key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)  # write_key_and_cert makes RSA keys
    public_key.verify(base64.b64decode(params["Signature"][0]), signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    unsigned = asyncio.run(SamlConnector(_cfg(**_inline(idp, [idp.certificate])), BROKER, None).start("/roles")).url
    assert "Signature=" not in unsigned


XENC = "http://www.w3.org/2001/04/xmlenc#"


def test_encrypted_assertion(idp: DevSamlIdp, tmp_path: Path) -> None:
    """pysaml2 signs the assertion, then encrypts it to the SP's certificate; the broker decrypts and verifies.
    When encryption is required, a plain assertion is refused."""
    key, cert = write_key_and_cert(tmp_path, "sp", "sts-broker-sp")
    config = _cfg(**_inline(idp, [idp.certificate]), want_assertions_encrypted=True,
                  sp_keys={"key_file": str(key), "cert_file": str(cert)})
    connector = SamlConnector(config, BROKER, None)
    idp.trust_sp([connector.sp_metadata()])

    def finish(**kw: Any) -> Any:
        xml = idp.response_xml("alice", in_response_to=None, destination=connector.acs_url,
                               sp_entity_id=connector.sp_entity_id, **kw)
        return asyncio.run(connector.finish(connector.receive(base64.b64encode(xml.encode()).decode()), None))
    # (pysaml2's default "self-contained" mode re-prefixes the assertion after signing it, which breaks its own
    # exclusive-c14n signature; with it off the signed assertion is encrypted as signed.)
    encrypted = {"encrypt_assertion": True, "encrypt_cert_assertion": cert.read_text(),
                 "encrypt_assertion_self_contained": False}
    for content in (f"{XENC}aes256-cbc", f"{XENC}aes128-cbc"):
        login = finish(**encrypted, encryption=(content, f"{XENC}rsa-oaep-mgf1p"))
        assert login.identity.subject == "alice@example.com" and "developers" in login.identity.groups
    with pytest.raises(TokenInvalid) as info:
        finish()
    assert info.value.reason == "saml_no_encrypted_assertion"
    # Weak algorithms are refused before anything is decrypted: 3DES (pysaml2's own default) and RSA
    # PKCS#1 v1.5 key transport (a decryption oracle).
    for weak in ((f"{XENC}tripledes-cbc", f"{XENC}rsa-oaep-mgf1p"), (f"{XENC}aes256-cbc", f"{XENC}rsa-1_5")):
        with pytest.raises(TokenInvalid) as refused:
            finish(**encrypted, encryption=weak)
        assert refused.value.reason == "saml_weak_encryption", weak
    with pytest.raises(TokenInvalid) as default:
        finish(**encrypted)
    assert default.value.reason == "saml_weak_encryption"
