"""The broker without HTTP: logins, decisions, credentials, console URLs. web/ is a thin layer on this."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from broker.audit import AuditLog
from broker.config import IdpConfig, OidcIdpConfig, SamlIdpConfig, Settings, TokenIdpConfig, load_idps, load_rules
from broker.connectors.oidc import OidcConnector, PendingLogin
from broker.connectors.saml import SamlConnector, SamlStart, relay_path
from broker.connectors.saml_metadata import check_metadata_file
from broker.connectors.xml_workers import XmlWorkers
from broker.errors import (
    BadRequest,
    LoginRefused,
    LoginStateInvalid,
    NotAuthorized,
    RateLimited,
    TokenInvalid,
    UnknownIdp,
    ViaNotAvailable,
)
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.credentials import Credentials, isoformat
from broker.issuers.saml import SamlIssuer
from broker.issuers.saml_idp import SamlKey, load_saml_keys
from broker.issuers.signing import KeyRing
from broker.issuers.sts_client import StsClient
from broker.issuers.web_identity import WebIdentityIssuer
from broker.outputs.console import ConsoleSignIn
from broker.rules.evaluate import Decision, evaluate
from broker.rules.schema import RuleSet
from broker.rules_source import RulesSource
from broker.store import StateStore, open_store

LOGIN_TTL = 600.0


@dataclass
class Components:
    settings: Settings
    idps: dict[str, IdpConfig]
    rules: RuleSet
    keys: KeyRing
    saml_keys: list[SamlKey]
    saml_key: SamlKey


def load_components(settings: Settings) -> Components:
    """Read every file the settings name. Raises ConfigError listing all problems."""
    idps = load_idps(settings.idp_configs)
    for cfg in idps.values():
        if isinstance(cfg, SamlIdpConfig):
            check_metadata_file(cfg)
    saml_keys, saml_key = load_saml_keys(settings.keys)
    return Components(settings, idps, load_rules(settings.rules), KeyRing.load(settings.keys), saml_keys, saml_key)


class BrokerService:
    def __init__(self, parts: Components, *, store: StateStore, http: httpx.AsyncClient, audit: AuditLog):
        self.settings, self.keys = parts.settings, parts.keys
        self.rules_source = RulesSource(parts.settings.rules, parts.rules, audit)
        self.store, self.http, self.audit = store, http, audit
        # Browser logins only (the index page lists these); `type: token` IdPs serve POST /oauth2/token.
        self.connectors = {idp_id: OidcConnector(cfg, http) for idp_id, cfg in parts.idps.items()
                           if isinstance(cfg, OidcIdpConfig)}
        self.token_idps = {idp_id: cfg for idp_id, cfg in parts.idps.items() if isinstance(cfg, TokenIdpConfig)}
        # One pool for every SAML IdP: the cap on XML work holds for the process, whichever ACS is posted to.
        self.xml_workers = XmlWorkers(parts.settings.xml_workers.threads, parts.settings.xml_workers.max_pending)
        self.saml = {idp_id: SamlConnector(cfg, parts.settings.public_url, http, workers=self.xml_workers,
                                            audit=audit)
                     for idp_id, cfg in parts.idps.items() if isinstance(cfg, SamlIdpConfig)}
        aws = parts.settings.aws
        sts = StsClient(aws)
        self.web_identity = WebIdentityIssuer(
            parts.keys, sts, issuer=parts.settings.public_url,
            audience=aws.web_identity_audience, lifetime=parts.settings.issuer.token_lifetime,
        )
        self.saml_keys = parts.saml_keys  # published at /saml/idp/metadata
        self.saml_issuer = SamlIssuer(parts.saml_key, sts, public_url=parts.settings.public_url,
                                      signin_region=aws.signin_region)
        self.console = ConsoleSignIn(http, issuer_url=parts.settings.public_url,
                                     federation_url=aws.federation_url, console_url=aws.console_url)

    @classmethod
    def build(cls, settings: Settings, audit: AuditLog) -> BrokerService:
        store = open_store(settings.store.url.get_secret_value(), max_connections=settings.store.max_connections)
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)
        return cls(load_components(settings), store=store, http=http, audit=audit)

    async def close(self) -> None:
        await self.http.aclose()
        await self.store.close()

    def connector(self, idp: str) -> OidcConnector:
        try:
            return self.connectors[idp]
        except KeyError:
            raise UnknownIdp(f"no IdP {idp[:64]!r}") from None

    def browser_idps(self) -> list[tuple[str, str]]:
        """(id, name) of every IdP a person can sign in with here: OIDC and SAML, not token ones."""
        found = [(c.config.id, c.config.name) for c in self.connectors.values()]
        return found + [(c.config.id, c.config.name) for c in self.saml.values()]

    def saml_connector(self, idp: str) -> SamlConnector:
        try:
            return self.saml[idp]
        except KeyError:
            raise UnknownIdp(f"no SAML IdP {idp[:64]!r}") from None

    async def start_saml_login(self, idp: str, client: str, return_to: str = "/roles") -> SamlStart:
        """The AuthnRequest (a Redirect URL, or the fields of a form posted to the IdP's SSO URL) and its ID,
        remembered server-side (single use) and bound to the browser by a cookie."""
        connector = self.saml_connector(idp)
        await self.rate_limit("login", client, self.settings.rate_limits.login_starts)
        start = await connector.start(relay_path(return_to))
        await self.store.put(f"saml_request:{start.request_id}", json.dumps({"idp": idp, "return_to": return_to}),
                             LOGIN_TTL)
        self.audit.event("login_started", idp=idp, client=client, protocol="saml", binding=start.binding)
        return start

    async def limit_acs(self, client: str) -> None:
        """POST /saml/{idp}/acs per client address, before the form is read (a refused post costs nothing)."""
        await self.rate_limit("acs", client, self.settings.rate_limits.acs_posts)

    async def finish_saml_login(self, idp: str, form: Mapping[str, str], browser_request: str | None
                                ) -> tuple[Identity, str]:
        """Verify a POSTed response; returns the identity and the (allow-listed) path to land on.

        Order: parse and the structure check (worker thread); the InResponseTo must be the request this
        browser's cookie names (so nobody can use up a request ID they do not hold); that pending request is
        used up atomically (GETDEL) before anything else is checked, so one AuthnRequest ID allows one
        attempt whatever its outcome; then the signature shape check and the verification (worker thread),
        and the assertion replay cache."""
        connector = self.saml_connector(idp)
        saml_response = form.get("SAMLResponse")
        if not isinstance(saml_response, str) or not saml_response:
            raise BadRequest("ACS without SAMLResponse", reason="saml_response_missing")
        relay = form.get("RelayState")
        return_to = relay_path(relay) if isinstance(relay, str) and relay else "/roles"
        incoming = await connector.read(saml_response)
        request_id = incoming.in_response_to
        if request_id is not None:
            if not browser_request or not hmac.compare_digest(request_id.encode(), browser_request.encode()):
                raise LoginStateInvalid("InResponseTo names a request this browser did not start",
                                        reason="saml_request_not_bound")
            return_to = await self._use_saml_request(idp, request_id)
        login = await connector.finish(incoming, request_id)
        # Single use, atomically across replicas: the assertion ID, until NotOnOrAfter + skew.
        issuer = hashlib.sha256(login.identity.issuer.encode()).hexdigest()[:16]
        if not await self.store.put_new(f"saml_assertion:{idp}:{issuer}:{login.assertion_id}", "1",
                                        login.replay_ttl):
            raise TokenInvalid("assertion already used", reason="saml_replay")
        return login.identity, return_to

    async def _use_saml_request(self, idp: str, request_id: str) -> str:
        """Consume the pending AuthnRequest (whatever the verification then says); its return path."""
        stored = await self.store.pop(f"saml_request:{request_id}")
        if stored is None:
            raise LoginStateInvalid("no pending AuthnRequest with this ID (used or expired)",
                                    reason="saml_request_unknown")
        pending = json.loads(stored)
        if pending["idp"] != idp:
            raise LoginStateInvalid(f"request sent to {pending['idp']!r}, answered at {idp!r}", reason="idp_mixup")
        return str(pending["return_to"])

    def redirect_uri(self, idp: str) -> str:
        return f"{self.settings.public_url}/oidc/{idp}/callback"

    @staticmethod
    def rate_key(scope: str, client: str) -> str:
        return f"rate:{scope}:{client}"

    async def rate_limit(self, scope: str, client: str, limit: int) -> None:
        count = await self.store.incr(self.rate_key(scope, client), self.settings.rate_limits.window.total_seconds())
        self.check_rate(scope, count, limit)

    def check_rate(self, scope: str, count: int, limit: int, who: str = "client") -> None:
        """Refuse (429, Retry-After: the window) a count taken in the current window beyond its limit."""
        if count > limit:
            window = self.settings.rate_limits.window.total_seconds()
            raise RateLimited(f"{scope} rate limit for {who}", retry_after=max(1, int(window)))

    async def start_login(self, idp: str, client: str, return_to: str = "/roles") -> tuple[str, str]:
        """Returns the IdP URL and the state the browser must bring back (bound to it by a cookie)."""
        connector = self.connector(idp)
        await self.rate_limit("login", client, self.settings.rate_limits.login_starts)
        url, pending = await connector.start(self.redirect_uri(idp), return_to)
        await self.store.put(f"login:{pending.state}", pending.to_json(), LOGIN_TTL)
        self.audit.event("login_started", idp=idp, client=client)
        return url, pending.state

    async def finish_login(self, idp: str, params: Mapping[str, str], browser_state: str | None) -> Identity:
        connector = self.connector(idp)
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
        if pending.idp != idp:
            raise LoginStateInvalid(f"login started at {pending.idp!r}, answered at {idp!r}", reason="idp_mixup")
        return await connector.finish(params, pending)

    @property
    def rules(self) -> RuleSet:
        return self.rules_source.current

    def decide(self, identity: Identity) -> Decision:
        return evaluate(self.rules, identity)

    def grant(self, identity: Identity, role_arn: str) -> RoleGrant:
        grant = self.decide(identity).grant_for(role_arn)
        if grant is None:
            raise NotAuthorized(f"role {role_arn[:200]!r} not granted", reason="role_not_granted")
        return grant

    async def credentials(self, identity: Identity, role_arn: str) -> tuple[RoleGrant, Credentials]:
        grant = self.grant(identity, role_arn)
        if grant.via == "saml":
            creds = await self.saml_issuer.issue(identity, grant)
        elif grant.via == "web_identity":
            creds = await self.web_identity.issue(identity, grant)
        else:
            # The rules language can say assume_role; this version does not issue through it yet.
            raise ViaNotAvailable(f"grant via {grant.via} for {grant.role_arn}")
        self.audit.event("credentials_issued", idp=identity.idp, subject=identity.subject,
                         role=grant.role_arn, rule=grant.rule_id, via=grant.via, passthrough=grant.passthrough,
                         access_key_id=creds.access_key_id, expires=isoformat(creds.expiration))
        return grant, creds

    async def console_url(self, identity: Identity, role_arn: str) -> str:
        grant, creds = await self.credentials(identity, role_arn)
        url = await self.console.signin_url(creds, grant)
        self.audit.event("console_issued", idp=identity.idp, subject=identity.subject, role=grant.role_arn)
        return url
