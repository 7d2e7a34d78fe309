"""One registry of every configured IdP, keyed by IdP id: browser logins (`RedirectLogin`) and token
verifiers, each built as its kind says (logins/kinds.py, the one table of IdP kinds)."""

from __future__ import annotations

from collections.abc import Mapping

from broker.connectors.idp_icon import icon_data_url
from broker.connectors.saml import SamlConnector
from broker.connectors.token_config import TokenIdpConfig
from broker.connectors.tokens import TokenConnectors
from broker.errors import UnknownIdp
from broker.logins.base import Parts, RedirectLogin
from broker.logins.kinds import KINDS
from broker.logins.saml import SamlLogin
from broker.settings import IdpModel


class Registry:
    def __init__(self, idps: Mapping[str, IdpModel], parts: Parts) -> None:
        self.logins: dict[str, RedirectLogin] = {
            idp_id: build(cfg, parts) for idp_id, cfg in idps.items() if (build := KINDS[cfg.type].login)}
        # IdP id -> its icon as a data: URL, read once (checked by the config loader).
        self.icons = {idp_id: icon_data_url(icon) for idp_id, cfg in idps.items()
                      if idp_id in self.logins and (icon := getattr(cfg, "icon", None)) is not None}
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
