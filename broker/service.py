"""The broker without HTTP: logins, decisions, credentials, console URLs. web/ is a thin layer on this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from broker.audit import AuditLog
from broker.cli_authorize import AuthorizeRequest, CliAuthorize, check_request, code_digest
from broker.cli_sessions import CliSession, CliSessions, person_of
from broker.config import IdpConfig, load_idps
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import check_metadata_file
from broker.connectors.xml_workers import XmlWorkers
from broker.container_credentials import ContainerCredentials
from broker.container_tokens import ContainerTokens
from broker.device_codes import DeviceCodes
from broker.errors import BadRequest, GrantInvalid, NotAuthenticated, NotFound
from broker.grants import RoleGrant
from broker.http_client import outbound_client
from broker.identity import Identity
from broker.issuance import Issuance, choose_grant
from broker.issuers.assume_role import AssumeRoleIssuer
from broker.issuers.cache import CredentialCache
from broker.issuers.credentials import Credentials
from broker.issuers.federation_token import FederationTokenIssuer
from broker.issuers.live_keys import LiveKeys
from broker.issuers.own_credentials import OwnCredentials
from broker.issuers.saml import SamlIssuer
from broker.issuers.sts_http import HttpStsClient
from broker.issuers.web_identity import WebIdentityIssuer
from broker.logins.base import LOGIN_TTL, LoginStart, RedirectLogin
from broker.logins.base import Parts as ConnectorParts
from broker.logins.registry import Registry
from broker.outputs.console import ConsoleSignIn
from broker.outputs.console_links import console_link
from broker.rate_limits import RateLimits
from broker.readiness import Readiness, idp_probes
from broker.redis_urls import store_options
from broker.return_paths import is_return_path
from broker.rules.evaluate import Decision, evaluate
from broker.rules.explain import as_json, for_audit
from broker.rules.schema import IdentitySpec, RuleSet
from broker.rules.testing import identity_of
from broker.rules_source import RulesSource, load_rules
from broker.settings import Settings
from broker.store import StateStore, open_store
from broker.store_measured import measured
from broker.token_exchange import Exchanged, ExchangeRequest, ExchangeTrace, TokenExchange

if TYPE_CHECKING:
    from broker.issuers.sts_client import StsClient

__all__ = ["LOGIN_TTL", "BrokerService", "Components", "load_components"]
CODE_REUSE_WATCH = 600.0  # how long a used authorization code is remembered, to end its session if replayed


@dataclass
class Components:
    settings: Settings
    idps: dict[str, IdpConfig]
    rules: RuleSet
    keys: LiveKeys  # broker.yaml's keys, or the rotation state file's (issuers/key_state.py)


def load_components(settings: Settings) -> Components:
    """Read every file the settings name. Raises ConfigError listing all problems."""
    idps = load_idps(settings.idp_configs)
    for cfg in idps.values():
        if isinstance(cfg, SamlIdpConfig):
            check_metadata_file(cfg)
    rotation = settings.key_rotation
    keys = LiveKeys(settings.keys, rotation.state_file, poll=rotation.poll.total_seconds())
    return Components(settings, idps, load_rules(settings.rules), keys)


def open_sts(settings: Settings) -> HttpStsClient | StsClient:
    """The process's one STS transport, for browser sign-ins and token exchange alike: `event_loop` (the fast
    one, issuers/sts_http.py) or `boto3` (issuers/sts_client.py), as `token_exchange.sts_transport` says."""
    exchange = settings.token_exchange
    if exchange.sts_transport == "event_loop":
        return HttpStsClient(settings.aws, max_connections=exchange.sts_max_connections)
    from broker.issuers.sts_client import StsClient  # boto3 (0.2 s to import) only when it is the transport

    return StsClient(settings.aws)


class BrokerService:
    def __init__(self, parts: Components, *, store: StateStore, http: httpx.AsyncClient, audit: AuditLog):
        self.settings, self.keys = parts.settings, parts.keys
        self.rules_source = RulesSource(parts.settings.rules, parts.rules, audit)
        self.store, self.http, self.audit = store, http, audit
        # One pool for every SAML IdP: the cap on XML work holds for the process, whichever ACS is posted to.
        self.xml_workers = XmlWorkers(parts.settings.xml_workers.threads, parts.settings.xml_workers.max_pending)
        self.idps = Registry(parts.idps, ConnectorParts(parts.settings.public_url, http, store, audit,
                                                        self.xml_workers))
        aws = parts.settings.aws
        self.sts = open_sts(parts.settings)  # one transport for every flow, configured once
        self.web_identity = WebIdentityIssuer(
            parts.keys, self.sts, issuer=parts.settings.public_url,
            audience=aws.web_identity_audience, lifetime=parts.settings.issuer.token_lifetime,
        )
        self.saml_issuer = SamlIssuer(parts.keys.saml_key, self.sts, public_url=parts.settings.public_url,
                                      signin_region=aws.signin_region)
        exchange = parts.settings.token_exchange
        cache = CredentialCache(store, parts.settings.session.secret.get_secret_value(),
                                min_remaining=exchange.cache_min_remaining, enabled=exchange.cache_credentials)
        # The broker's own AWS credentials (assume_role without from:, federation_token), found on first use.
        own = OwnCredentials(profile=aws.credentials_profile, credentials_file=aws.credentials_file)
        self.issuance = Issuance(self.sts, {"web_identity": self.web_identity, "saml": self.saml_issuer,
                                            "federation_token": FederationTokenIssuer(self.sts, own)}, cache, audit)
        # A role chain's hub session comes through the issuance (and its cache) itself.
        self.issuance.add("assume_role", AssumeRoleIssuer(self.sts, own, self.issuance))
        self.limits = RateLimits(store, parts.settings.rate_limits)
        self.readiness = Readiness(store, parts.keys, idp_probes(self.idps),
                                   require_idps=parts.settings.readiness.require_idps)
        self.console = ConsoleSignIn(http, issuer_url=parts.settings.public_url,
                                     federation_url=aws.federation_url, console_url=aws.console_url)
        self.token_exchange = TokenExchange(exchange, self.idps.tokens, self.rules_source,
                                            self.limits, self.issuance, store)
        session = parts.settings.session
        self.cli_sessions = CliSessions(store, session.secret.get_secret_value(), session.lifetime.total_seconds())
        self.cli_authorize = CliAuthorize(store, session.secret.get_secret_value())
        self.device_codes = DeviceCodes(store, session.secret.get_secret_value(), parts.settings.device_authorization,
                                        self.limits, audit)
        self.containers = ContainerCredentials(
            ContainerTokens(store, session.secret.get_secret_value()), self.cli_sessions, self.decide,
            lambda: self.rules.accounts, self.issuance, audit, parts.settings.container_credentials.refresh_before)

    @classmethod
    def build(cls, settings: Settings, audit: AuditLog) -> BrokerService:
        store = measured(open_store(settings.store.url.get_secret_value(),
                                    max_connections=settings.store.max_connections,
                                    options=store_options(settings.store)))
        http = outbound_client(10.0)  # its transport (httpcore, the CA store) built on first use
        return cls(load_components(settings), store=store, http=http, audit=audit)

    async def close(self) -> None:
        self.readiness.close()
        await self.issuance.close()
        await self.http.aclose()
        await self.store.close()

    def browser_idps(self) -> list[tuple[str, str]]:
        """(id, name) of every IdP a person can sign in with here: OIDC and SAML, not token ones."""
        return self.idps.browser_idps()

    def saml_connector(self, idp: str) -> SamlConnector:
        return self.idps.saml(idp)

    def login_connector(self, idp: str, finish_template: str) -> RedirectLogin:
        """The IdP's browser login if it finishes at this route; UnknownIdp (404) otherwise."""
        return self.idps.login(idp, finish_template)

    async def start_login(self, idp: str, client: str, return_to: str = "/roles") -> LoginStart:
        """Where the browser goes (a redirect, or a form it posts) and the state the browser must bring back
        (bound to it by a cookie); the pending login is remembered server-side, single use. `return_to`
        must be an allow-listed path (return_paths.py)."""
        if not is_return_path(return_to):
            raise BadRequest(f"return_to {return_to[:100]!r}", reason="return_path_invalid",
                             public="The login's return address is not allowed.")
        login = self.idps.login(idp)
        await self.limits.login_start(client)
        start = await login.start(return_to)
        self.audit.event("login_started", idp=idp, client=client, **start.audit)
        return start

    async def limit_acs(self, client: str) -> None:
        """POST /saml/{idp}/acs per client address, before the form is read (a refused post costs nothing)."""
        await self.limits.acs_post(client)

    async def finish_login(self, idp: str, finish_template: str, params: Mapping[str, str],
                           browser_state: str | None) -> tuple[Identity, str]:
        """The verified identity and the (allow-listed) path to land on."""
        return await self.idps.login(idp, finish_template).finish(params, browser_state)

    def login_succeeded(self, identity: Identity, client: str) -> Decision:
        """After any verified browser login: audited with the rules' decision."""
        decision = self.decide(identity)
        self.audit.event("login_succeeded", idp=identity.idp, subject=identity.subject, issuer=identity.issuer,
                         mfa=identity.mfa, client=client, protocol=identity.protocol)
        self.audit.event("decision", idp=identity.idp, subject=identity.subject, **for_audit(decision))
        return decision

    @property
    def rules(self) -> RuleSet:
        return self.rules_source.current

    def decide(self, identity: Identity) -> Decision:
        return evaluate(self.rules, identity)

    def logged_out(self, identity: Identity) -> None:
        self.audit.event("logout", idp=identity.idp, subject=identity.subject)

    def explain(self, spec: IdentitySpec) -> dict[str, Any]:
        """The admin API: what the current rules decide for an identity described by hand, rule by rule."""
        decision = evaluate(self.rules, identity_of(spec), explain=True)
        self.audit.event("rules_explained", idp=spec.idp, rules=len(decision.traces))
        return as_json(decision)

    def grant(self, identity: Identity, role_arn: str) -> RoleGrant:
        return choose_grant(self.decide(identity), role_arn)

    async def credentials(self, identity: Identity, role_arn: str, *, duration: int | None = None,
                          **context: str) -> tuple[RoleGrant, Credentials]:
        """A person's credentials for one role (fresh: never from the cache); `duration`: seconds, within the
        grant's (a shorter session for a CLI that asks for one); `context`: more fields for the audit event."""
        return await self._issue(identity, self.grant(identity, role_arn), duration, **context)

    async def _issue(self, identity: Identity, grant: RoleGrant, duration: int | None,
                     **context: str) -> tuple[RoleGrant, Credentials]:
        if duration is not None:
            grant = replace(grant, duration=timedelta(seconds=min(duration, grant.duration.total_seconds())))
        return grant, await self.issuance.issue(identity, grant, **context)

    async def exchange_token(self, request: ExchangeRequest, trace: ExchangeTrace) -> Exchanged:
        """RFC 8693: an app's ID token in, AWS credentials out (see token_exchange.py for the order)."""
        return await self.token_exchange.exchange(request, trace)

    async def limit_exchange_client(self, client: str) -> None:
        """A token request refused before the exchange (content type, form) still counts against its client."""
        await self.token_exchange.limit_client(client)

    def exchange_origin_allowed(self, origin: str) -> bool:
        """A browser origin may call the token endpoint (CORS): `token_exchange.cors_origins`."""
        return origin in self.token_exchange.cors_origins

    async def console_url(self, identity: Identity, role_arn: str, destination: str = "", region: str = "", *,
                          duration: int | None = None, **context: str) -> str:
        """`destination` and `region`: a deep link, checked against `console:` before anything is issued."""
        grant = self.grant(identity, role_arn)  # decided once: the link's partition and the issuance
        link = console_link(self.settings.console, grant.partition, destination, region)
        grant, creds = await self._issue(identity, grant, duration, **context)
        url = await self.console.signin_url(creds, grant, link)
        self.audit.event("console_issued", idp=identity.idp, subject=identity.subject, role=grant.role_arn,
                         destination=link.path, region=link.region, **context)
        return url

    # CLI sessions (`sts-broker login`): started from a browser session, used with a bearer token.

    async def start_cli_session(self, identity: Identity, device_name: str, not_after: float, *, client: str,
                                grant: str) -> tuple[CliSession, str]:
        """A CLI session for a person whose browser step is done (`grant`: how, e.g. authorization_code);
        `not_after`: their browser session's expiry. Returns the session and its bearer token."""
        session, token = await self.cli_sessions.create(identity, device_name, not_after)
        self.audit.event("cli_session_started", idp=identity.idp, subject=identity.subject,
                         session_id=session.session_id, device=session.device_name, grant=grant, client=client,
                         expires=int(session.expires_at))
        return session, token

    async def cli_session(self, bearer: str | None) -> CliSession:
        """The live CLI session of a bearer token; NotAuthenticated (401) for anything else."""
        session = await self.cli_sessions.load(bearer)
        if session is None:
            raise NotAuthenticated("no live CLI session for this bearer token", reason="cli_session_invalid",
                                   public="Your broker session has ended. Run `sts-broker login` again.")
        return session

    async def revoke_cli_token(self, token: str | None, client: str) -> CliSession | None:
        """RFC 7009 (by the bearer): the session ended, or None when the token named none."""
        session = await self.cli_sessions.revoke_token(token)
        self._cli_revoked(session, client, by="token")
        if session is not None:
            await self.containers.session_ended(session, client)
        return session

    async def revoke_cli_session(self, session_id: str, identity: Identity, client: str) -> CliSession:
        """The portal (by the person): their own session only; NotFound for any other id."""
        session = await self.cli_sessions.revoke(session_id, person_of(identity))
        if session is None:
            raise NotFound(f"no live CLI session {session_id[:64]!r} of this person", reason="cli_session_unknown")
        self._cli_revoked(session, client, by="portal")
        await self.containers.session_ended(session, client)
        return session

    async def redeem_device_code(self, device_code: str, client_id: str, client: str) -> tuple[CliSession, str]:
        """RFC 8628 3.4: the CLI session of the person who approved the user code, once (DeviceGrantError
        with the RFC 8628 reason while pending, too fast, denied, expired or already redeemed)."""
        approved = await self.device_codes.poll(device_code, client_id)
        return await self.start_cli_session(approved.identity, approved.request.device_name, approved.until,
                                            client=client, grant="device_code")

    def _cli_revoked(self, session: CliSession | None, client: str, *, by: str) -> None:
        if session is None:
            self.audit.event("cli_session_revoke_unknown", client=client, by=by)
            return
        ident = session.identity
        self.audit.event("cli_session_revoked", idp=ident.idp, subject=ident.subject, session_id=session.session_id,
                         device=session.device_name, client=client, by=by)

    # The loopback login (RFC 6749 code + RFC 7636 PKCE + RFC 8252), see cli_authorize.py.

    async def cli_authorize_request(self, query: Mapping[str, str], client: str) -> tuple[str, AuthorizeRequest]:
        """A checked authorization request, parked (its id) until the person consents; counted per client
        address like a login start (each parks a value in the store)."""
        request = check_request(query)
        await self.limits.login_start(client)
        return await self.cli_authorize.park(request), request

    async def cli_consent(self, request_id: str, identity: Identity, not_after: float, *, allow: bool,
                          client: str) -> tuple[AuthorizeRequest, str | None]:
        """The person's answer to a parked request (used up either way): the request and, when allowed, its
        one-time code."""
        request = await self.cli_authorize.parked(request_id, use=True)
        fields = {"idp": identity.idp, "subject": identity.subject, "device": request.device_name,
                  "redirect_uri": request.redirect_uri, "client": client}
        if not allow:
            self.audit.event("cli_code_denied", **fields)
            return request, None
        code = await self.cli_authorize.issue_code(request, identity, not_after)
        self.audit.event("cli_code_issued", **fields)
        return request, code

    async def redeem_cli_code(self, form: Mapping[str, str], client: str) -> tuple[CliSession, str]:
        """grant_type=authorization_code: a CLI session for the code's person. A code presented again after it
        made a session ends that session (RFC 6749 4.1.2: the code may have been stolen)."""
        try:
            redeemed = await self.cli_authorize.redeem(form)
        except GrantInvalid as exc:
            if exc.reason == "code_invalid":
                await self._revoke_replayed(form.get("code", ""), client)
            raise
        session, token = await self.start_cli_session(redeemed.identity, redeemed.device_name, redeemed.not_after,
                                                      client=client, grant="authorization_code")
        await self.store.put(f"cli_code_used:{redeemed.code_hash}", session.session_id, CODE_REUSE_WATCH)
        return session, token

    async def _revoke_replayed(self, code: str, client: str) -> None:
        session_id = await self.store.pop(f"cli_code_used:{code_digest(code)}") if code else None
        session = None if session_id is None else await self.cli_sessions.by_id(session_id)
        if session is not None:
            await self.cli_sessions.revoke(session.session_id, session.person)
            self._cli_revoked(session, client, by="code_replay")
