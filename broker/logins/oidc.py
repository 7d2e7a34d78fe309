"""OIDC authorization code flow (PKCE, nonce) as a RedirectLogin: the pending login in the state store under
its `state`, single use; the callback must carry the state this browser's cookie names."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from broker import urls
from broker.connectors.oidc import OidcConnector, PendingLogin
from broker.connectors.oidc_config import OidcIdpConfig
from broker.errors import LoginRefused, LoginStateInvalid
from broker.identity import Identity
from broker.logins.base import LOGIN_TTL, LoginStart, Parts
from broker.store import StateStore


class OidcLogin:
    finish_template = urls.OIDC_CALLBACK

    def __init__(self, connector: OidcConnector, store: StateStore, public_url: str) -> None:
        self.connector, self.store = connector, store
        self.id, self.name = connector.config.id, connector.config.name
        self.finish_path = urls.for_idp(urls.OIDC_CALLBACK, self.id)
        self.redirect_uri = public_url + self.finish_path

    async def start(self, return_to: str) -> LoginStart:
        url, pending = await self.connector.start(self.redirect_uri, return_to)
        await self.store.put(f"login:{pending.state}", pending.to_json(), LOGIN_TTL)
        return LoginStart(self.name, url, pending.state, self.finish_path, cross_site_finish=False)

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> tuple[Identity, str]:
        state = params.get("state", "")
        if "error" in params and not state:
            # Some IdPs drop state on errors. Nothing can be issued from an error, so say what happened.
            raise LoginRefused(f"IdP error {params['error'][:64]!r} without state", reason="idp_error")
        if not browser_state or not hmac.compare_digest(state.encode(), browser_state.encode()):
            raise LoginStateInvalid("state is not the one this browser started", reason="state_not_bound")
        stored = await self.store.pop(f"login:{state}")  # single use: a replayed callback finds nothing
        if stored is None:
            raise LoginStateInvalid("no pending login for this state (replayed or expired)", reason="state_unknown")
        pending = PendingLogin.from_json(stored)
        if pending.idp != self.id:
            raise LoginStateInvalid(f"login started at {pending.idp!r}, answered at {self.id!r}", reason="idp_mixup")
        return await self.connector.finish(params, pending), pending.return_to


def build(config: OidcIdpConfig, parts: Parts) -> OidcLogin:
    return OidcLogin(OidcConnector(config, parts.http), parts.store, parts.public_url)
