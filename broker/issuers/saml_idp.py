"""The broker as a SAML IdP toward AWS: its signing keys with X.509 certificates, and its IdP metadata.

IAM wants a certificate in the SAML provider's metadata; the broker's keys are bare RSA keys. Each key's
certificate is derived from the key at load, deterministically (self-signed, serial and dates fixed, and
PKCS#1 v1.5 signatures are deterministic), so every replica and every restart publishes the same bytes and
the metadata registered in IAM stays valid until the key itself changes. No certificate file to manage
(one may be configured: `cert:`). A KMS key's certificate is signed through KMS Sign.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped]

from broker.errors import ConfigError
from broker.issuers.key_sources import LocalSigner, Signer, describe, load_signer
from broker.seams.cryptography_keys import SignerAsKey
from broker.settings import KeyConfig

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # RFC 5280: no well-defined expiration


@dataclass(frozen=True)
class SamlKey:
    """An RSA signing key as the SAML IdP uses it: its signer (loaded once) and the certificate it publishes."""

    kid: str
    signer: Signer = field(repr=False)
    cert_pem: bytes

    @property
    def cert_base64(self) -> str:
        """The DER certificate in base64, as X509Certificate elements carry it."""
        return _cert_body(self.cert_pem)


@functools.lru_cache(maxsize=64)
def _cert_body(cert_pem: bytes) -> str:
    return "".join(cert_pem.decode().strip().splitlines()[1:-1])


def certificate_for(key: rsa.RSAPrivateKey, kid: str) -> x509.Certificate:
    """A self-signed certificate for `key`, the same bytes on every call."""
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    serial = int.from_bytes(hashlib.sha256(public_der).digest()[:16], "big") >> 1 or 1
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sts-broker {kid}"[:64])])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def _certificate_pem(cfg: KeyConfig, signer: Signer) -> bytes:
    """The configured certificate (it must certify this key), else one derived from the key (through KMS for
    a KMS key: its TBS part built here, its digest signed there)."""
    if cfg.cert is not None:
        pem = cfg.cert.read_bytes()
        if x509.load_pem_x509_certificate(pem).public_key() != signer.public_key:
            raise ValueError(f"{cfg.cert}: the certificate is not for this key")
        return pem
    private = signer.private if isinstance(signer, LocalSigner) else SignerAsKey(signer)
    assert isinstance(private, rsa.RSAPrivateKey)
    return certificate_for(private, cfg.kid).public_bytes(serialization.Encoding.PEM)


_KEYS: dict[tuple[str, int, bytes | None], SamlKey] = {}


def saml_key(cfg: KeyConfig) -> SamlKey:
    """The key with its certificate, derived once per loaded key (cached like the key itself)."""
    signer = load_signer(cfg)
    if signer.algorithm != "RS256":
        raise ValueError("SAML assertions need an RSA key (AWS verifies RSA signatures only)")
    cache_key = (cfg.kid, id(signer), cfg.cert.read_bytes() if cfg.cert is not None else None)
    found = _KEYS.get(cache_key)
    if found is None or found.signer is not signer:
        found = _KEYS[cache_key] = SamlKey(cfg.kid, signer, _certificate_pem(cfg, signer))
    return found


def load_saml_keys(configs: Sequence[KeyConfig]) -> tuple[list[SamlKey], SamlKey | None]:
    """Every configured RSA key with its certificate, and the active one (which signs assertions; None when
    the active key is EC, which signs web identity tokens only)."""
    keys: list[SamlKey] = []
    problems: list[str] = []
    for cfg in configs:
        try:
            if load_signer(cfg).algorithm == "RS256":
                keys.append(saml_key(cfg))
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"keys.{cfg.kid}: {describe(cfg)}: {exc}")
    if problems:
        raise ConfigError(problems)
    active_kid = next(c.kid for c in configs if c.active)
    return keys, next((k for k in keys if k.kid == active_kid), None)


def entity_id(public_url: str) -> str:
    return public_url.rstrip("/") + "/saml/idp"


def idp_metadata(public_url: str, keys: Sequence[SamlKey]) -> bytes:
    """EntityDescriptor with one IDPSSODescriptor listing every key's certificate for signing.

    The broker has no SingleSignOnService endpoint (it only mints IdP-initiated assertions for AWS), but the
    metadata schema requires one, so it names /saml/idp/sso, which is not served.
    """
    root = etree.Element(f"{{{MD_NS}}}EntityDescriptor", nsmap={"md": MD_NS, "ds": DS_NS})
    root.set("entityID", entity_id(public_url))
    idp = etree.SubElement(root, f"{{{MD_NS}}}IDPSSODescriptor")
    idp.set("protocolSupportEnumeration", PROTOCOL)
    idp.set("WantAuthnRequestsSigned", "false")
    for key in keys:
        descriptor = etree.SubElement(idp, f"{{{MD_NS}}}KeyDescriptor", use="signing")
        info = etree.SubElement(descriptor, f"{{{DS_NS}}}KeyInfo")
        etree.SubElement(info, f"{{{DS_NS}}}KeyName").text = key.kid
        data = etree.SubElement(info, f"{{{DS_NS}}}X509Data")
        etree.SubElement(data, f"{{{DS_NS}}}X509Certificate").text = key.cert_base64
    etree.SubElement(idp, f"{{{MD_NS}}}NameIDFormat").text = NAMEID_PERSISTENT
    sso = etree.SubElement(idp, f"{{{MD_NS}}}SingleSignOnService")
    sso.set("Binding", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
    sso.set("Location", entity_id(public_url) + "/sso")
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result
