"""SAML Web SSO (SP-initiated, HTTP-Redirect or HTTP-POST AuthnRequest, HTTP-POST answer) as a RedirectLogin:
the pending AuthnRequest in the state store under its ID, single use; the assertion ID single use too.

Where a login lands: an SP-initiated answer lands where its pending request (found by InResponseTo, bound
to the browser's cookie) says, never where the posted RelayState says. RelayState goes out as the return
path and comes back from the IdP untrusted; it is checked once, here, on every answer (`relay_path`, before
anything is used up), and it decides the landing only when there is no pending request: an IdP-initiated
login (allow_idp_initiated)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from broker import urls
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.errors import BadRequest, LoginStateInvalid, TokenInvalid
from broker.identity import Identity
from broker.logins.base import LOGIN_TTL, LoginStart, Parts
from broker.return_paths import is_return_path
from broker.store import StateStore

DEFAULT_RETURN = "/roles"


def relay_path(relay_state: str | None) -> str | None:
    """The one RelayState check. A posted RelayState is absent, or a relative return path from a fixed
    allow-list (broker/return_paths.py): absolute URLs, `//host`, backslashes, userinfo, percent-encodings and
    `javascript:` never match."""
    if not relay_state:
        return None
    if not is_return_path(relay_state):
        raise BadRequest(f"RelayState {relay_state[:100]!r} is not an allowed return path",
                         reason="saml_relay_state", public="The login's return address is not allowed.")
    return relay_state


class SamlLogin:
    finish_template = urls.SAML_ACS

    def __init__(self, connector: SamlConnector, store: StateStore) -> None:
        self.connector, self.store = connector, store
        self.id, self.name = connector.config.id, connector.config.name
        self.finish_path = urls.for_idp(urls.SAML_ACS, self.id)

    async def start(self, return_to: str) -> LoginStart:
        """The AuthnRequest (a Redirect URL, or the fields of a form posted to the IdP's SSO URL) and its ID,
        remembered server-side (single use) and bound to the browser by a cookie."""
        start = await self.connector.start(return_to)  # RelayState: the IdP posts it back with the answer
        await self.store.put(f"saml_request:{start.request_id}", json.dumps({"idp": self.id, "return_to": return_to}),
                             LOGIN_TTL)
        # The ACS is a cross-site POST from the IdP.
        return LoginStart(self.name, start.url, start.request_id, self.finish_path, cross_site_finish=True,
                          fields=start.fields, audit={"protocol": "saml", "binding": start.binding})

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> tuple[Identity, str]:
        """Verify a POSTed response; returns the identity and the (allow-listed) path to land on.

        Order: parse and the structure check (worker thread); the InResponseTo must be the request this
        browser's cookie names (so nobody can use up a request ID they do not hold); that pending request is
        used up atomically (GETDEL) before anything else is checked, so one AuthnRequest ID allows one
        attempt whatever its outcome; then the signature shape check and the verification (worker thread),
        and the assertion replay cache."""
        saml_response = params.get("SAMLResponse")
        if not isinstance(saml_response, str) or not saml_response:
            raise BadRequest("ACS without SAMLResponse", reason="saml_response_missing")
        relay = relay_path(params.get("RelayState"))  # refused before anything is used up
        incoming = await self.connector.read(saml_response)
        request_id = incoming.in_response_to
        if request_id is None:  # IdP-initiated (the connector refuses it unless allow_idp_initiated)
            return_to = relay or DEFAULT_RETURN
        else:
            if not browser_state or not hmac.compare_digest(request_id.encode(), browser_state.encode()):
                raise LoginStateInvalid("InResponseTo names a request this browser did not start",
                                        reason="saml_request_not_bound")
            return_to = await self._use_request(request_id)  # SP-initiated: the stored request decides
        login = await self.connector.finish(incoming, request_id)
        # Single use, atomically across replicas: the assertion ID, until NotOnOrAfter + skew.
        issuer = hashlib.sha256(login.identity.issuer.encode()).hexdigest()[:16]
        if not await self.store.put_new(f"saml_assertion:{self.id}:{issuer}:{login.assertion_id}", "1",
                                        login.replay_ttl):
            raise TokenInvalid("assertion already used", reason="saml_replay")
        return login.identity, return_to

    async def _use_request(self, request_id: str) -> str:
        """Consume the pending AuthnRequest (whatever the verification then says); its return path."""
        stored = await self.store.pop(f"saml_request:{request_id}")
        if stored is None:
            raise LoginStateInvalid("no pending AuthnRequest with this ID (used or expired)",
                                    reason="saml_request_unknown")
        pending = json.loads(stored)
        if pending["idp"] != self.id:
            raise LoginStateInvalid(f"request sent to {pending['idp']!r}, answered at {self.id!r}",
                                    reason="idp_mixup")
        return str(pending["return_to"])


def build(config: SamlIdpConfig, parts: Parts) -> SamlLogin:
    connector = SamlConnector(config, parts.public_url, parts.http, workers=parts.xml_workers, audit=parts.audit)
    return SamlLogin(connector, parts.store)
