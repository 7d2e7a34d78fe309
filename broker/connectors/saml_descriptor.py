"""What the broker knows of a SAML IdP once its metadata is read (saml_metadata.py reads it; the response
checks and the connector use it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

__all__ = ["BINDINGS", "IdpDescriptor", "SsoBinding"]

SsoBinding = Literal["redirect", "post"]
BINDINGS: dict[SsoBinding, str] = {"redirect": C.BINDING_HTTP_REDIRECT, "post": C.BINDING_HTTP_POST}


@dataclass(frozen=True, slots=True)
class IdpDescriptor:
    entity_id: str
    sso_url: str
    certificates: tuple[str, ...]
    want_authn_requests_signed: bool
    sso_binding: SsoBinding = "redirect"
    valid_until: float | None = None  # epoch seconds: the descriptor is not used from then on
    cache_duration: float | None = None  # seconds: the document asks to be fetched again this often

    @property
    def sso_binding_urn(self) -> str:
        return BINDINGS[self.sso_binding]
