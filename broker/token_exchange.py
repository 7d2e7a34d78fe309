"""RFC 8693 token exchange without HTTP: an ID token an app holds in, AWS credentials for one role out.

The order of checks is the order of cost, so a refused request spends nothing it need not:
  1. the form (`parse_form`): grant type, token types, one of each parameter (a request refused here
     still counts against its client address: the web layer calls `limit_client`);
  2. per client address rate limit, before anything is verified or spent. For a token verified before
     (remembered by digest) it is counted with the subject's count (7) in one store round trip: the
     common case, an app exchanging its token again, costs one round trip to a shared Redis, not two;
  3. the token's own claims, unverified, pick the token IdP (issuer + audience); its size is capped;
  4. a subject already over its rate limit is refused here: no JWKS fetch, no signature check;
  5. verification (signature against the IdP's JWKS, iss/aud/azp/exp/iat/nbf, hd, email_verified);
  6. the verified subject is counted against its rate limit;
  7. the rules choose the role (`resource`, or the single granted one);
  8. replay policy (`replay: once` consumes the token atomically in the shared store): after every check
     that can refuse without STS, so a refused request leaves the token unused, and before STS;
  9. credentials from the cache, or one STS call per (identity, role, scope) (single flight); for a
     pass-through grant the scope includes the token itself (what STS judges), see issuers/cache.py.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote_plus

from broker.connectors.tokens import TokenConnector, TokenConnectors, Unverified, digest_of, peek
from broker.errors import BadRequest, NotAuthorized, RoleChoiceNeeded, TokenInvalid
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.cache import CredentialCache, cache_key
from broker.issuers.credentials import Credentials, isoformat
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.issuers.web_identity import WebIdentityIssuer
from broker.rules.evaluate import Decision, evaluate
from broker.rules.schema import RuleSet

if TYPE_CHECKING:
    from broker.service import BrokerService

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a type URI, not a secret
CREDENTIALS_TYPE = "urn:sts-broker:token-type:aws-credentials"  # what the broker issues (RFC 8693 3: any URI)
SINGLE_VALUED = ("grant_type", "subject_token", "subject_token_type", "requested_token_type", "resource",
                 "audience", "actor_token", "actor_token_type", "scope")
MAX_FIELDS = 16
DECISIONS_MAX = 4096
ROLE_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    subject_token: str = field(repr=False)
    resource: str | None
    client: str


@dataclass(slots=True)
class ExchangeTrace:
    """How far an exchange got, for the audit event when it fails."""

    idp: str | None = None
    subject: str | None = None
    role: str | None = None


class Exchanged(NamedTuple):
    """One per answered exchange: immutable like a frozen dataclass, built at half its cost."""

    identity: Identity
    grant: RoleGrant
    credentials: Credentials
    cached: bool


def _bad(reason: str, public: str) -> BadRequest:
    return BadRequest(public, reason=reason, public=public)


def _pairs(body: bytes) -> list[tuple[str, str]]:
    """parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS), the same
    pairs and the same refusals (tests/token_exchange/test_form.py compares them), at a fifth of its cost:
    parse_qsl's generic str/bytes handling took ~9 us of a cached exchange's ~90."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("form_not_utf8", "The request body is not UTF-8.") from None
    if not text:
        return []
    fields = text.split("&")
    if len(fields) > MAX_FIELDS:
        raise _malformed()
    pairs = []
    for item in fields:
        name, equals, value = item.partition("=")
        if not equals:  # strict: every field, even an empty one between two &, is name=value
            raise _malformed()
        pairs.append((_form_decode(name), _form_decode(value)))
    return pairs


def _form_decode(part: str) -> str:
    # '+' is a space, then percent-decoding with U+FFFD for bad UTF-8, exactly as parse_qsl decodes.
    if "+" not in part and "%" not in part:
        return part  # a JWT, most names
    return _decode_short(part) if len(part) <= 128 else unquote_plus(part)


@functools.lru_cache(maxsize=512)
def _decode_short(part: str) -> str:
    """The grant and token type URNs come percent-encoded in every request: decoded once."""
    return unquote_plus(part)


def _malformed() -> BadRequest:
    return _bad("form_malformed", "The request body is not a valid form (application/x-www-form-urlencoded).")


def _single(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form and name in SINGLE_VALUED:
            # RFC 6749 3.2: request parameters MUST NOT be included more than once.
            raise _bad("parameter_repeated", f"The parameter {name} appears more than once.")
        form.setdefault(name, value)  # unknown parameters are ignored (RFC 6749 3.2)
    return form


def parse_form(body: bytes, client: str) -> ExchangeRequest:
    form = _single(_pairs(body))
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _bad("grant_type_missing", "grant_type is required.")
    if grant_type != GRANT_TYPE:
        raise _bad("unsupported_grant_type", f"Only grant_type={GRANT_TYPE} is supported.")
    if not form.get("subject_token"):
        raise _bad("subject_token_missing", "subject_token is required.")
    if form.get("subject_token_type") != ID_TOKEN_TYPE:
        raise _bad("subject_token_type_unsupported", f"subject_token_type must be {ID_TOKEN_TYPE}.")
    if form.get("requested_token_type", CREDENTIALS_TYPE) != CREDENTIALS_TYPE:
        raise _bad("requested_token_type_unsupported", f"requested_token_type can only be {CREDENTIALS_TYPE}.")
    if "actor_token" in form or "actor_token_type" in form:
        raise _bad("actor_token_unsupported", "Delegation (actor_token) is not supported.")
    resource = form.get("resource") or None
    if resource is not None and not ROLE_ARN.fullmatch(resource):
        raise NotAuthorized("resource is not an IAM role ARN", reason="resource_invalid")
    return ExchangeRequest(subject_token=form["subject_token"], resource=resource, client=client)


@functools.lru_cache(maxsize=4096)
def _subject_key(idp: str, issuer: str, subject: str) -> str:
    """Hashed (a subject id can be an email address): once per active subject, not once per exchange."""
    who = hashlib.sha256(f"{idp}|{issuer}|{subject}".encode()).hexdigest()[:40]
    return f"rate:token-subject:{who}"


class TokenExchange:
    def __init__(self, service: BrokerService) -> None:
        settings = service.settings
        self._service = service
        self._limits, self._window = settings.rate_limits, settings.rate_limits.window.total_seconds()
        self.cors_origins = frozenset(settings.token_exchange.cors_origins)
        self._decisions: dict[str, tuple[int, RuleSet, Decision, dict[str, str]]] = {}
        self.connectors = TokenConnectors(service.token_idps, service.http)
        exchange = settings.token_exchange
        self.sts: HttpStsClient | StsClient = (
            HttpStsClient(settings.aws, max_connections=exchange.sts_max_connections)
            if exchange.sts_transport == "event_loop" else StsClient(settings.aws))
        self.issuer = WebIdentityIssuer(
            service.keys, self.sts, issuer=settings.public_url, audience=settings.aws.web_identity_audience,
            lifetime=settings.issuer.token_lifetime,
        )
        self.cache = CredentialCache(
            service.store, settings.session.secret.get_secret_value(),
            min_remaining=settings.token_exchange.cache_min_remaining,
            enabled=settings.token_exchange.cache_credentials,
        )

    async def close(self) -> None:
        await self.sts.close()

    async def limit_client(self, client: str) -> None:
        await self._service.rate_limit("token", client, self._limits.token_exchange_per_client)

    async def exchange(self, request: ExchangeRequest, trace: ExchangeTrace) -> Exchanged:
        digest = digest_of(request.subject_token)
        identity, connector = await self._identify(request, digest, trace)
        grant = self._choose(identity, digest, request.resource)
        trace.role = grant.role_arn
        # Last before STS: a request refused for any other reason (no `resource` among several roles, a
        # role not granted, a rate limit) leaves a single-use token unused.
        await self._consume_if_single_use(connector, digest, identity)
        key = self._cache_key(identity, digest, grant) if self.cache.enabled else ""
        creds, cached = await self.cache.get_or_issue(key, lambda: self.issuer.issue(identity, grant))
        self._service.audit.event(
            "credentials_issued", channel="token_exchange", idp=identity.idp, subject=identity.subject,
            issuer=identity.issuer, role=grant.role_arn, rule=grant.rule_id, via=grant.via,
            passthrough=grant.passthrough, cached=cached, access_key_id=creds.access_key_id,
            expires=isoformat(creds.expiration), client=request.client,
        )
        return Exchanged(identity, grant, creds, cached)

    async def _identify(self, request: ExchangeRequest, digest: str,
                        trace: ExchangeTrace) -> tuple[Identity, TokenConnector]:
        """The verified identity and its IdP, with the client and its subject counted against their limits."""
        identity = self.connectors.verified.get(digest)  # seen and verified before: no parsing at all
        if identity is not None:
            connector = self.connectors.by_id[identity.idp]
            if connector.config.replay != "once":
                trace.idp, trace.subject = identity.idp, identity.subject
                await self._count_client_and_subject(request.client, connector, identity)
                return identity, connector
        await self.limit_client(request.client)  # before any signature check, JWKS fetch or single-use mark
        if identity is None:
            token = peek(request.subject_token, digest)
            connector = self.connectors.select(token)
            trace.idp = connector.config.id
            identity = await self._verify(connector, token)
        connector = self.connectors.by_id[identity.idp]
        trace.idp, trace.subject = identity.idp, identity.subject
        await self._count_subject(connector, identity.issuer, identity.subject)
        return identity, connector

    async def _count_client_and_subject(self, client: str, connector: TokenConnector, identity: Identity) -> None:
        keys = [self._service.rate_key("token", client),
                _subject_key(connector.config.id, identity.issuer, identity.subject)]
        client_count, subject_count = await self._service.store.incr_all(keys, self._window)
        self._service.check_rate("token", client_count, self._limits.token_exchange_per_client)
        self._check_subject(subject_count)

    def _check_subject(self, count: int) -> None:
        self._service.check_rate("token exchange", count, self._limits.token_exchange_per_subject, who="subject")

    async def _verify(self, connector: TokenConnector, token: Unverified) -> Identity:
        # Not verified yet: refuse a subject already over its limit before any JWKS fetch. The claim is
        # unverified, so this only reads the counter; only verified subjects are counted (a forger cannot
        # spend someone else's budget).
        if token.issuer is not None and token.subject is not None:
            count = await self._service.store.get(_subject_key(connector.config.id, token.issuer, token.subject))
            if count is not None:
                self._check_subject(int(count) + 1)  # refused when this exchange would go over
        return await connector.identity(token)

    async def _consume_if_single_use(self, connector: TokenConnector, digest: str, identity: Identity) -> None:
        if connector.config.replay != "once":
            return
        exp = identity.claims.get("exp", ("0",))[0]
        ttl = float(exp) + connector.config.leeway.total_seconds() - time.time()
        if not await self._service.store.put_new(f"replay:token:{digest}", "1", max(ttl, 1.0)):
            raise TokenInvalid("subject token already exchanged (replay: once)", reason="token_replayed")

    async def _count_subject(self, connector: TokenConnector, issuer: str, subject: str) -> None:
        key = _subject_key(connector.config.id, issuer, subject)
        self._check_subject(await self._service.store.incr(key, self._window))

    def _decide(self, identity: Identity, digest: str) -> Decision:
        """The rules' decision, remembered per token for the current second (the same rules object): a
        burst of exchanges of one token (an app starting several clients) evaluates once. A time
        condition in the rules is then judged at most a second late, within any token's leeway."""
        rules, second = self._service.rules, int(time.time())
        memo = self._decisions.get(digest)
        if memo is not None and memo[0] == second and memo[1] is rules:
            return memo[2]
        decision = evaluate(rules, identity)
        self._decisions[digest] = (second, rules, decision, {})
        if len(self._decisions) > DECISIONS_MAX:
            self._decisions.pop(next(iter(self._decisions)))
        return decision

    def _cache_key(self, identity: Identity, digest: str, grant: RoleGrant) -> str:
        """Computed once per grant object of a remembered decision (the same grant, the same key)."""
        memo = self._decisions.get(digest)
        keys = memo[3] if memo is not None and any(g is grant for g in memo[2].grants) else {}
        key = keys.get(grant.role_arn)
        if key is None:
            key = keys[grant.role_arn] = cache_key(identity, grant)
        return key

    def _choose(self, identity: Identity, digest: str, resource: str | None) -> RoleGrant:
        decision = self._decide(identity, digest)
        grants = [g for g in decision.grants if g.via == "web_identity"]
        # One answer for "no rule matched" and "not this role": nothing to enumerate.
        if resource is not None:
            grant = next((g for g in grants if g.role_arn == resource), None)
            if grant is None:
                raise NotAuthorized(f"role {resource!r} not granted (rules matched: {list(decision.matched)})",
                                    reason="role_not_granted")
            return grant
        if len(grants) == 1:
            return grants[0]
        if not grants:
            raise NotAuthorized(f"no role granted (rules matched: {list(decision.matched)})",
                                reason="role_not_granted")
        raise RoleChoiceNeeded(f"{len(grants)} roles granted", roles=tuple(g.role_arn for g in grants))
