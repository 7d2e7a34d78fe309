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
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote_plus

from broker.connectors.tokens import TokenConnector, TokenConnectors, Unverified, digest_of, peek
from broker.errors import BadRequest, NotAuthorized, TokenInvalid
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuance import Issuance, choose_grant
from broker.issuers.cache import CredentialCache, cache_key
from broker.issuers.credentials import Credentials
from broker.issuers.sts_http import HttpStsClient
from broker.rate_limits import RateLimits, subject_key
from broker.rules.evaluate import Decision, evaluate
from broker.rules.schema import RuleSet
from broker.rules_source import RulesSource
from broker.settings import TokenExchangeConfig
from broker.store import StateStore

if TYPE_CHECKING:  # boto3's transport, imported only when configured (service.open_sts)
    from broker.issuers.sts_client import StsClient

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a type URI, not a secret
CREDENTIALS_TYPE = "urn:sts-broker:token-type:aws-credentials"  # what the broker issues (RFC 8693 3: any URI)
# Every parameter of the token endpoint's grants (and of /oauth2/revoke): RFC 6749 3.2, once each.
SINGLE_VALUED = frozenset({"grant_type", "subject_token", "subject_token_type", "requested_token_type", "resource",
                           "audience", "actor_token", "actor_token_type", "scope", "code", "redirect_uri",
                           "client_id", "code_verifier", "device_code", "device_name", "token",
                           "token_type_hint"})
MAX_FIELDS = 16
DECISIONS_MAX = 4096
WEB_IDENTITY = ("web_identity",)  # what the exchange issues: credentials an app holds without a browser
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


def read_form(body: bytes) -> dict[str, str]:
    """A token endpoint form: each parameter once (unknown ones ignored), refusals as BadRequest."""
    return _single(_pairs(body))


def parse_form(body: bytes, client: str) -> ExchangeRequest:
    return exchange_request(read_form(body), client)


def exchange_request(form: dict[str, str], client: str) -> ExchangeRequest:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _bad("grant_type_missing", "grant_type is required.")
    if grant_type != GRANT_TYPE:
        raise _bad("unsupported_grant_type", "This grant_type is not supported.")
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


class TokenExchange:
    """The token exchange entry point of BrokerService (which builds it and calls it): its own steps only;
    the decisions' rules, rate limits, grant choice, issuance, cache and audit are the service's."""

    def __init__(self, settings: TokenExchangeConfig, connectors: TokenConnectors, rules: RulesSource,
                 limits: RateLimits, issuance: Issuance, store: StateStore) -> None:
        self.cors_origins = frozenset(settings.cors_origins)
        self.connectors, self._rules, self._limits, self._issuance = connectors, rules, limits, issuance
        self._store = store  # the single-use marks of `replay: once` tokens
        self._decisions: dict[str, tuple[int, RuleSet, Decision, dict[str, str]]] = {}

    @property
    def cache(self) -> CredentialCache:
        return self._issuance.cache

    @property
    def sts(self) -> HttpStsClient | StsClient:
        """The process's one STS transport (tests record what reaches it)."""
        return self._issuance.sts

    async def limit_client(self, client: str) -> None:
        await self._limits.token_client(client)

    async def exchange(self, request: ExchangeRequest, trace: ExchangeTrace) -> Exchanged:
        digest = digest_of(request.subject_token)
        identity, connector = await self._identify(request, digest, trace)
        grant = choose_grant(self._decide(identity, digest), request.resource, WEB_IDENTITY)
        trace.role = grant.role_arn
        # Last before STS: a request refused for any other reason (no `resource` among several roles, a
        # role not granted, a rate limit) leaves a single-use token unused.
        await self._consume_if_single_use(connector, digest, identity)
        key = self._cache_key(identity, digest, grant) if self.cache.enabled else ""
        creds, cached = await self._issuance.issue_cached(
            identity, grant, key, channel="token_exchange", issuer=identity.issuer,
            client=request.client)
        return Exchanged(identity, grant, creds, cached)

    async def _identify(self, request: ExchangeRequest, digest: str,
                        trace: ExchangeTrace) -> tuple[Identity, TokenConnector]:
        """The verified identity and its IdP, with the client and its subject counted against their limits."""
        identity = self.connectors.verified.get(digest)  # seen and verified before: no parsing at all
        if identity is not None:
            connector = self.connectors.by_id[identity.idp]
            if connector.config.replay != "once":
                trace.idp, trace.subject = identity.idp, identity.subject
                await self._limits.token_client_and_subject(
                    request.client, subject_key(connector.config.id, identity.issuer, identity.subject))
                return identity, connector
        await self.limit_client(request.client)  # before any signature check, JWKS fetch or single-use mark
        if identity is None:
            token = peek(request.subject_token, digest)
            connector = self.connectors.select(token)
            trace.idp = connector.config.id
            identity = await self._verify(connector, token)
        connector = self.connectors.by_id[identity.idp]
        trace.idp, trace.subject = identity.idp, identity.subject
        await self._limits.token_subject(subject_key(connector.config.id, identity.issuer, identity.subject))
        return identity, connector

    async def _verify(self, connector: TokenConnector, token: Unverified) -> Identity:
        # Not verified yet: refuse a subject already over its limit before any JWKS fetch. The claim is
        # unverified, so this only reads the counter; only verified subjects are counted (a forger cannot
        # spend someone else's budget).
        if token.issuer is not None and token.subject is not None:
            await self._limits.token_subject_over(subject_key(connector.config.id, token.issuer, token.subject))
        return await connector.identity(token)

    async def _consume_if_single_use(self, connector: TokenConnector, digest: str, identity: Identity) -> None:
        if connector.config.replay != "once":
            return
        exp = identity.claims.get("exp", ("0",))[0]
        ttl = float(exp) + connector.config.leeway.total_seconds() - time.time()
        if not await self._store.put_new(f"replay:token:{digest}", "1", max(ttl, 1.0)):
            raise TokenInvalid("subject token already exchanged (replay: once)", reason="token_replayed")

    def _decide(self, identity: Identity, digest: str) -> Decision:
        """The rules' decision, remembered per token for the current second (the same rules object): a
        burst of exchanges of one token (an app starting several clients) evaluates once. A time
        condition in the rules is then judged at most a second late, within any token's leeway."""
        rules, second = self._rules.current, int(time.time())
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
