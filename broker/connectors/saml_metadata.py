"""Upstream SAML IdP metadata: from a file, an https URL (bounded, refreshed on a schedule), or inline config.

The result is an IdpDescriptor: entity id, SSO URL and its binding (HTTP-Redirect when the IdP offers it,
else HTTP-POST; `sso_binding` in the IdP file overrides), every signing certificate (several at once during
a rollover) and whether the IdP wants signed AuthnRequests. The document may be one EntityDescriptor or an
aggregate (EntitiesDescriptor, as federations publish them; `entity_id` names the IdP), optionally signed
(`metadata_signing_certificate`, saml_metadata_trust), and is refused once its validUntil has passed.
A metadata URL comes only from configuration, https only, never `file:`; a refresh that fails keeps the
last good metadata, and every refresh is audited (saml_metadata_refreshed / saml_metadata_refused, which
/metrics counts per IdP and result).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from onelogin.saml2.settings import validate_url
from pydantic import TypeAdapter, ValidationError

from broker.audit import AuditLog
from broker.connectors.fetch import fetch_bytes
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_descriptor import BINDINGS, IdpDescriptor, SsoBinding
from broker.connectors.saml_metadata_read import (
    MetadataRefused,
    cache_duration,
    choose_idp,
    signing_certificates,
    sso_location,
    valid_until,
)
from broker.connectors.saml_metadata_trust import (
    load_signing_certificate,
    refuse_if_expired,
    verify_metadata_signature,
)
from broker.connectors.saml_xml import MAX_ELEMENTS, guarded_parse
from broker.errors import ConfigError, UpstreamUnavailable, XmlRejected
from broker.settings import IdpUrl
from broker.telemetry import idp_refresh

RETRY_AFTER_FAILURE = 60.0
MIN_DOCUMENT_REFRESH = 60.0  # a cacheDuration or a near validUntil shortens the refresh, never below this
BYTES_PER_ELEMENT = 32  # metadata's element bound: an aggregate of metadata_max_bytes, counted in libxml2


def parse_metadata(xml: bytes, config: SamlIdpConfig, *, signing_certificate: str | None = None,
                   now: float | None = None) -> IdpDescriptor:
    """Parse IdP metadata (after the same XML guard as responses: no DTD, bounded size and depth), verify
    its signature when metadata_signing_certificate is set, and read the IdP from the same tree."""
    try:
        root = guarded_parse(xml, max_bytes=config.metadata_max_bytes, allow_comments=True,
                             max_elements=max(MAX_ELEMENTS, config.metadata_max_bytes // BYTES_PER_ELEMENT))
    except XmlRejected as exc:
        raise MetadataRefused(f"metadata refused: {exc.detail}") from None
    certificate = signing_certificate if signing_certificate is not None else load_signing_certificate(config)
    if certificate is not None:
        verify_metadata_signature(root, certificate)
    chosen = choose_idp(root, config.entity_id)
    until = valid_until(chosen.path, chosen.role)
    refuse_if_expired(until, time.time() if now is None else now)
    sso, binding = _sso_for_binding(chosen.role, config)
    certs = signing_certificates(chosen.role)
    entity_id = chosen.entity.get("entityID")
    if not entity_id or not sso or not certs:
        wanted = {"redirect": "an HTTP-Redirect", "post": "an HTTP-POST"}.get(config.sso_binding or "", "an")
        raise MetadataRefused(f"metadata lacks an IdP entityID, {wanted} SSO URL or a signing certificate")
    if not validate_url(sso):  # else python3-saml refuses the settings at every login (a 500 each)
        raise MetadataRefused(f"metadata SSO URL {sso[:100]!r} is not a valid URL")
    _check_sso_url(sso, binding)
    wants = chosen.role.get("WantAuthnRequestsSigned") == "true"
    if config.want_authn_requests_signed is not None:
        wants = config.want_authn_requests_signed
    if wants and config.sp_keys is None:  # python3-saml would refuse the settings at every login (a 500 each)
        raise MetadataRefused("metadata asks for signed AuthnRequests and this IdP has no sp_keys to sign them")
    return IdpDescriptor(str(entity_id), sso, tuple(certs), wants, binding, until,
                         cache_duration(chosen.path, chosen.role))


_IDP_URL = TypeAdapter(IdpUrl)


def _check_sso_url(url: str, binding: SsoBinding) -> None:
    """The same rule as an IdP URL in configuration (https; plain http only on loopback; no userinfo or
    fragment; never javascript:, data: or file:): the browser is sent there, and with the HTTP-POST binding
    the broker's own page posts the AuthnRequest to it."""
    try:
        _IDP_URL.validate_python(url)
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise MetadataRefused(f"metadata {BINDINGS[binding].rsplit(':', 1)[1]} SSO URL {url[:100]!r} is refused: "
                               f"{problem}") from None


def _sso_for_binding(role: Any, config: SamlIdpConfig) -> tuple[str | None, SsoBinding]:
    """The IdP's SSO URL for the configured binding, or else Redirect when offered, then POST."""
    order: tuple[SsoBinding, ...] = (config.sso_binding,) if config.sso_binding else ("redirect", "post")
    for binding in order:
        location = sso_location(role, BINDINGS[binding])
        if location:
            return location, binding
    return None, order[-1]


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
    then every `metadata_refresh` (sooner when the document's cacheDuration or validUntil asks), keeping the
    last good descriptor when a refresh fails. A descriptor past its validUntil is never used."""

    def __init__(self, config: SamlIdpConfig, http: httpx.AsyncClient | None, audit: AuditLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self._http, self._audit, self._clock = config, http, audit, clock
        self._signing_certificate = load_signing_certificate(config)  # a ConfigError at start-up
        self._current: IdpDescriptor | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        if config.metadata_file is not None:
            self._current = _from_file(config.metadata_file, config, self._signing_certificate)
        elif config.metadata_url is None:
            self._current = inline_descriptor(config)

    @property
    def loaded(self) -> IdpDescriptor | None:
        return self._current

    async def get(self) -> IdpDescriptor:
        url = self.config.metadata_url
        if url is not None and (self._current is None or time.monotonic() >= self._expires):
            async with self._lock:
                if self._current is None or time.monotonic() >= self._expires:
                    await self._refresh(url)
        assert self._current is not None
        return self._usable(self._current)

    async def ready(self) -> None:
        """Raise UpstreamUnavailable unless usable metadata is held (fetched if due)."""
        await self.get()

    def _usable(self, idp: IdpDescriptor) -> IdpDescriptor:
        """A held copy whose validUntil passed (no refresh replaced it in time) is not used."""
        if idp.valid_until is not None and self._clock() >= idp.valid_until:
            raise UpstreamUnavailable(f"the held metadata of {self.config.id} is past its validUntil",
                                      reason="saml_metadata_expired")
        return idp

    async def _refresh(self, url: str) -> None:
        try:
            idp = await self._download(url)
        except UpstreamUnavailable as exc:
            idp_refresh(self.config.id, "saml_metadata", exc.reason)
            self._report("saml_metadata_refused", reason=exc.reason, detail=exc.detail[:300],
                         kept_last_good=self._current is not None)
            if self._current is None:
                raise
            self._expires = time.monotonic() + RETRY_AFTER_FAILURE  # keep the last good one, retry soon
            return
        self._current = idp
        self._expires = time.monotonic() + self._interval(idp)
        idp_refresh(self.config.id, "saml_metadata", "ok")
        self._report("saml_metadata_refreshed", entity_id=idp.entity_id[:200], certificates=len(idp.certificates))

    async def _download(self, url: str) -> IdpDescriptor:
        if self._http is None:
            raise UpstreamUnavailable("no HTTP client to fetch SAML metadata", reason="saml_metadata_unreachable")
        xml = await fetch_metadata(self._http, url, seconds=self.config.timeout.total_seconds(),
                                   max_bytes=self.config.metadata_max_bytes)
        try:  # in a worker thread: up to metadata_max_bytes of XML (an aggregate), parsed once
            return await anyio.to_thread.run_sync(self._parse, xml)
        except MetadataRefused as exc:
            raise UpstreamUnavailable(f"metadata from {url}: {exc}", reason=exc.reason) from None
        except ValueError as exc:
            raise UpstreamUnavailable(f"metadata from {url}: {exc}", reason="saml_metadata_invalid") from None

    def _parse(self, xml: bytes) -> IdpDescriptor:
        return parse_metadata(xml, self.config, signing_certificate=self._signing_certificate, now=self._clock())

    def _interval(self, idp: IdpDescriptor) -> float:
        """metadata_refresh, or sooner: the document's cacheDuration, or half the time left to its
        validUntil (so a failed refresh is retried before the copy goes stale); those two never below
        MIN_DOCUMENT_REFRESH."""
        asked = [idp.cache_duration] if idp.cache_duration is not None else []
        if idp.valid_until is not None:
            asked.append((idp.valid_until - self._clock()) / 2)
        interval = self.config.metadata_refresh.total_seconds()
        return min(interval, max(min(asked), MIN_DOCUMENT_REFRESH)) if asked else interval

    def _report(self, event: str, **fields: str | int | bool) -> None:
        if self._audit is not None:
            self._audit.event(event, idp=self.config.id, **fields)


def _from_file(path: Path, config: SamlIdpConfig, signing_certificate: str | None = None) -> IdpDescriptor:
    try:
        return parse_metadata(path.read_bytes(), config, signing_certificate=signing_certificate)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read SAML metadata: {exc.strerror}"]) from None
    except MetadataRefused as exc:
        raise ConfigError([f"{path}: {exc} ({exc.reason})"]) from None
    except ValueError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


def check_metadata_file(config: SamlIdpConfig) -> None:
    """`sts-broker check`: a metadata file must parse, verify and be in date; a metadata_signing_certificate
    must be a certificate (a URL is fetched only when serving)."""
    certificate = load_signing_certificate(config)
    if config.metadata_file is not None:
        _from_file(config.metadata_file, config, certificate)
