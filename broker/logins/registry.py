"""One registry of every configured IdP, keyed by IdP id: browser logins (`RedirectLogin`) and token
verifiers. A new IdP kind is one module and one entry in KINDS."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from broker.audit import AuditLog
from broker.config import IdpConfig
from broker.connectors.oidc import OidcConnector
from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.connectors.tokens import TokenConnectors
from broker.connectors.xml_workers import XmlWorkers
from broker.errors import UnknownIdp
from broker.logins.base import RedirectLogin
from broker.logins.oidc import OidcLogin
from broker.logins.saml import SamlLogin
from broker.store import StateStore


@dataclass(frozen=True)
class Parts:
    """What a connector may be built from."""

    public_url: str
    http: httpx.AsyncClient
    store: StateStore
    audit: AuditLog
    xml_workers: XmlWorkers  # one pool for every SAML IdP: the cap on XML work holds for the process


def _oidc(cfg: IdpConfig, parts: Parts) -> RedirectLogin:
    assert isinstance(cfg, OidcIdpConfig)
    return OidcLogin(OidcConnector(cfg, parts.http), parts.store, parts.public_url)


def _saml(cfg: IdpConfig, parts: Parts) -> RedirectLogin:
    assert isinstance(cfg, SamlIdpConfig)
    connector = SamlConnector(cfg, parts.public_url, parts.http, workers=parts.xml_workers, audit=parts.audit)
    return SamlLogin(connector, parts.store)


# Browser login kinds, by config model. `type: token` IdPs are verifiers (below), not logins.
KINDS: dict[type, Callable[[IdpConfig, Parts], RedirectLogin]] = {OidcIdpConfig: _oidc, SamlIdpConfig: _saml}


class Registry:
    def __init__(self, idps: Mapping[str, IdpConfig], parts: Parts) -> None:
        self.logins: dict[str, RedirectLogin] = {
            idp_id: KINDS[type(cfg)](cfg, parts) for idp_id, cfg in idps.items() if type(cfg) in KINDS}
        self.tokens = TokenConnectors(
            {idp_id: cfg for idp_id, cfg in idps.items() if isinstance(cfg, TokenIdpConfig)}, parts.http)

    def login(self, idp: str, finish_template: str | None = None) -> RedirectLogin:
        """The browser login of `idp`; with `finish_template`, only if it finishes at that route (a SAML
        answer posted to an OIDC IdP's id is an unknown IdP, as is any id not configured)."""
        login = self.logins.get(idp)
        if login is None or (finish_template is not None and login.finish_template != finish_template):
            raise UnknownIdp(f"no such IdP {idp[:64]!r}")
        return login

    def saml(self, idp: str) -> SamlConnector:
        login = self.login(idp)
        if not isinstance(login, SamlLogin):
            raise UnknownIdp(f"no SAML IdP {idp[:64]!r}")
        return login.connector

    def browser_idps(self) -> list[tuple[str, str]]:
        """(id, name) of every IdP a person can sign in with here: OIDC and SAML, not token ones."""
        return [(login.id, login.name) for login in self.logins.values()]
