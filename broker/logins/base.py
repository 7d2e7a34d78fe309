"""The connector interfaces. A login style is one of:
- `RedirectLogin`: the browser is sent to the IdP (`start`: a redirect, or a form to post, plus a pending
  state remembered server-side and bound to the browser by a cookie) and comes back to the broker's finish
  URL (`finish`: the verified Identity and the allow-listed path to land on). OIDC and SAML.
- a token verifier (`connectors.tokens.TokenConnector.identity`: a token in, an Identity out), for the
  token IdPs the token exchange accepts.
Adding an IdP kind: a module implementing one of them (a browser login also has a `build(config, Parts)`)
and one entry in `kinds.KINDS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from broker.identity import Identity

if TYPE_CHECKING:  # types only: logins/kinds.py (read by config loading) imports this module, and stays light
    import httpx

    from broker.audit import AuditLog
    from broker.connectors.xml_workers import XmlWorkers
    from broker.store import StateStore

LOGIN_TTL = 600.0


@dataclass(frozen=True, slots=True)
class LoginStart:
    """Where the browser goes next. `fields` empty: a redirect to `url`; otherwise a form posted to `url`
    (the SAML HTTP-POST binding). `state` is bound to the browser by a cookie scoped to `finish_path`;
    `cross_site_finish`: the IdP comes back by a cross-site POST (the cookie must then be SameSite=None)."""

    idp_name: str
    url: str
    state: str = field(repr=False)
    finish_path: str
    cross_site_finish: bool
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)
    audit: Mapping[str, Any] = field(default_factory=dict)


class RedirectLogin(Protocol):
    id: str
    name: str
    finish_template: str  # urls.OIDC_CALLBACK or urls.SAML_ACS: the route that finishes this kind

    async def start(self, return_to: str) -> LoginStart: ...

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> tuple[Identity, str]:
        """The verified identity and the path to land on; `browser_state`: the state the cookie carried."""
        ...


@dataclass(frozen=True)
class Parts:
    """What a connector may be built from."""

    public_url: str
    http: httpx.AsyncClient
    store: StateStore
    audit: AuditLog
    xml_workers: XmlWorkers  # one pool for every SAML IdP: the cap on XML work holds for the process
