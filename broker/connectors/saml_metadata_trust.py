"""Whether a metadata document may be used at all: its signature, when the IdP file names a
`metadata_signing_certificate` (the federation's or vendor's metadata signing key), and its validUntil.

Signed metadata is used only when, in this order:
1. the document's signatures have the allow-listed shape (saml_signature_shape.check_metadata_signature_shape:
   exactly one Signature, a direct child of the root, referencing the root by its ID or URI="", enveloped +
   exclusive c14n, strong algorithms, nothing else signed or transformed) - before xmlsec runs anything;
2. the root carries that Signature (reason saml_metadata_unsigned otherwise);
3. xmlsec (python3-saml's validate_node_sign) verifies it with the configured certificate's key only;
and the descriptor is then read from the very tree that was verified (never parsed again).
Any document, signed or not, whose validUntil (root, enclosing EntitiesDescriptors, entity, IdP role) has
passed is stale and refused (saml_metadata_expired).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import xmlsec
from cryptography import x509
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata_read import MetadataRefused
from broker.connectors.saml_signature_shape import check_metadata_signature_shape
from broker.errors import ConfigError, TokenInvalid


def load_signing_certificate(config: SamlIdpConfig) -> str | None:
    """The PEM text of metadata_signing_certificate (None when not set); a ConfigError naming the file when
    it cannot be read or holds no X.509 certificate."""
    path = config.metadata_signing_certificate
    if path is None:
        return None
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read metadata_signing_certificate: {exc.strerror}"]) from None
    try:
        x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError([f"{path}: metadata_signing_certificate is not a PEM X.509 certificate"]) from None
    return pem.decode("ascii", errors="replace")


def verify_metadata_signature(root: Any, certificate: str) -> None:
    try:
        signature = check_metadata_signature_shape(root)
    except TokenInvalid as exc:
        raise MetadataRefused(f"metadata {exc.detail}", "saml_metadata_signature") from None
    if signature is None:
        raise MetadataRefused("metadata is not signed, and metadata_signing_certificate is set",
                              "saml_metadata_unsigned")
    xmlsec.tree.add_ids(root, ["ID"])  # the Reference's "#ID" (unique, checked above) resolves to the root
    try:  # without raise_exceptions the library answers False on failure instead of raising
        verified = OneLogin_Saml2_Utils.validate_node_sign(signature, root, certificate, raise_exceptions=True)
    except Exception:  # python3-saml's ValidationError, or xmlsec's own
        verified = False
    if verified is not True:
        raise MetadataRefused("metadata signature does not verify with metadata_signing_certificate",
                              "saml_metadata_signature")


def refuse_if_expired(until: float | None, now: float) -> None:
    if until is not None and until <= now:
        when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        raise MetadataRefused(f"metadata validUntil {when} has passed", "saml_metadata_expired")
