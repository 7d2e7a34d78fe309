"""Upstream SAML IdP metadata: from a file, an https URL (bounded, refreshed on a schedule), or inline config.

The result is an IdpDescriptor: entity id, SSO URL and its binding (HTTP-Redirect when the IdP offers it,
else HTTP-POST; `sso_binding` in the IdP file overrides), every signing certificate (several at once during
a rollover) and whether the IdP wants signed AuthnRequests. A metadata URL comes
only from configuration, https only, never `file:`; a refresh that fails keeps the last good metadata.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import httpx
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import validate_url
from pydantic import TypeAdapter, ValidationError

from broker.config import IdpUrl, SamlIdpConfig
from broker.connectors.fetch import fetch_bytes
from broker.connectors.saml_xml import XmlRejected, guarded_parse
from broker.errors import ConfigError, UpstreamUnavailable

RETRY_AFTER_FAILURE = 60.0


SsoBinding = Literal["redirect", "post"]
BINDINGS: dict[SsoBinding, str] = {"redirect": C.BINDING_HTTP_REDIRECT, "post": C.BINDING_HTTP_POST}


@dataclass(frozen=True, slots=True)
class IdpDescriptor:
    entity_id: str
    sso_url: str
    certificates: tuple[str, ...]
    want_authn_requests_signed: bool
    sso_binding: SsoBinding = "redirect"

    @property
    def sso_binding_urn(self) -> str:
        return BINDINGS[self.sso_binding]


def parse_metadata(xml: bytes, config: SamlIdpConfig) -> IdpDescriptor:
    """Parse IdP metadata (after the same XML guard as responses: no DTD, bounded size and depth)."""
    try:
        guarded_parse(xml, max_bytes=config.metadata_max_bytes, allow_comments=True)
        data, binding = _parse_for_binding(xml, config)
    except XmlRejected as exc:
        raise ValueError(f"metadata refused: {exc.detail}") from None
    except Exception as exc:  # the parser raises bare Exceptions on bad XML
        raise ValueError(f"metadata is not valid SAML metadata: {type(exc).__name__}") from None
    idp = data.get("idp") or {}
    sso = (idp.get("singleSignOnService") or {}).get("url")
    certs = (idp.get("x509certMulti") or {}).get("signing") or ([idp["x509cert"]] if idp.get("x509cert") else [])
    if not idp.get("entityId") or not sso or not certs:
        wanted = {"redirect": "an HTTP-Redirect", "post": "an HTTP-POST"}.get(config.sso_binding or "", "an")
        raise ValueError(f"metadata lacks an IdP entityID, {wanted} SSO URL or a signing certificate")
    if not validate_url(str(sso)):  # else python3-saml refuses the settings at every login (a 500 each)
        raise ValueError(f"metadata SSO URL {str(sso)[:100]!r} is not a valid URL")
    _check_sso_url(str(sso), binding)
    if config.entity_id is not None and idp["entityId"] != config.entity_id:
        raise ValueError(f"metadata entityID {idp['entityId']!r} is not the configured entity_id")
    wants = bool((data.get("security") or {}).get("authnRequestsSigned", False))
    if config.want_authn_requests_signed is not None:
        wants = config.want_authn_requests_signed
    if wants and config.sp_keys is None:  # python3-saml would refuse the settings at every login (a 500 each)
        raise ValueError("metadata asks for signed AuthnRequests and this IdP has no sp_keys to sign them")
    return IdpDescriptor(str(idp["entityId"]), str(sso), tuple(str(c) for c in certs), wants, binding)


_IDP_URL = TypeAdapter(IdpUrl)


def _check_sso_url(url: str, binding: SsoBinding) -> None:
    """The same rule as an IdP URL in configuration (https; plain http only on loopback; no userinfo or
    fragment; never javascript:, data: or file:): the browser is sent there, and with the HTTP-POST binding
    the broker's own page posts the AuthnRequest to it."""
    try:
        _IDP_URL.validate_python(url)
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(f"metadata {BINDINGS[binding].rsplit(':', 1)[1]} SSO URL {url[:100]!r} is refused: "
                         f"{problem}") from None


def _parse_for_binding(xml: bytes, config: SamlIdpConfig) -> tuple[dict[str, Any], SsoBinding]:
    """The IdP's settings for the configured binding, or else Redirect when offered, then POST."""
    order: tuple[SsoBinding, ...] = (config.sso_binding,) if config.sso_binding else ("redirect", "post")
    data: dict[str, Any] = {}
    for binding in order:
        data = OneLogin_Saml2_IdPMetadataParser.parse(xml, required_sso_binding=BINDINGS[binding],
                                                      entity_id=config.entity_id)
        if ((data.get("idp") or {}).get("singleSignOnService") or {}).get("url"):
            return data, binding
    return data, order[-1]


def inline_descriptor(config: SamlIdpConfig) -> IdpDescriptor:
    assert config.entity_id is not None and config.sso_url is not None
    return IdpDescriptor(config.entity_id, config.sso_url, tuple(config.certificates),
                         bool(config.want_authn_requests_signed), config.sso_binding or "redirect")


async def fetch_metadata(http: httpx.AsyncClient, url: str, *, seconds: float, max_bytes: int) -> bytes:
    """GET the metadata; no redirects, bounded in time and size."""
    body, _ = await fetch_bytes(http, url, seconds=seconds, max_bytes=max_bytes, reasons="saml_metadata")
    return body


class MetadataSource:
    """The IdP's current descriptor. File and inline configs load once (at build); URLs on first use and
    then every `metadata_refresh`, keeping the last good descriptor when a refresh fails."""

    def __init__(self, config: SamlIdpConfig, http: httpx.AsyncClient | None) -> None:
        self.config, self._http = config, http
        self._current: IdpDescriptor | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        if config.metadata_file is not None:
            self._current = _from_file(config.metadata_file, config)
        elif config.metadata_url is None:
            self._current = inline_descriptor(config)

    @property
    def loaded(self) -> IdpDescriptor | None:
        return self._current

    async def get(self) -> IdpDescriptor:
        if self.config.metadata_url is None or (self._current is not None and time.monotonic() < self._expires):
            assert self._current is not None
            return self._current
        async with self._lock:
            if self._current is None or time.monotonic() >= self._expires:
                await self._refresh(self.config.metadata_url)
        assert self._current is not None
        return self._current

    async def _refresh(self, url: str) -> None:
        if self._http is None:
            raise UpstreamUnavailable("no HTTP client to fetch SAML metadata", reason="saml_metadata_unreachable")
        try:
            xml = await fetch_metadata(self._http, url, seconds=self.config.timeout.total_seconds(),
                                       max_bytes=self.config.metadata_max_bytes)
            try:  # in a worker thread: up to metadata_max_bytes of XML, parsed twice (guard, then library)
                self._current = await anyio.to_thread.run_sync(parse_metadata, xml, self.config)
            except ValueError as exc:
                raise UpstreamUnavailable(f"metadata from {url}: {exc}", reason="saml_metadata_invalid") from None
            self._expires = time.monotonic() + self.config.metadata_refresh.total_seconds()
        except UpstreamUnavailable:
            if self._current is None:
                raise
            self._expires = time.monotonic() + RETRY_AFTER_FAILURE  # keep the last good one, retry soon


def _from_file(path: Path, config: SamlIdpConfig) -> IdpDescriptor:
    try:
        return parse_metadata(path.read_bytes(), config)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read SAML metadata: {exc.strerror}"]) from None
    except ValueError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


def check_metadata_file(config: SamlIdpConfig) -> None:
    """`sts-broker check`: a metadata file must parse (a URL is fetched only when serving)."""
    if config.metadata_file is not None:
        _from_file(config.metadata_file, config)
