"""Configuration: broker.yaml and idp_configs/*.yaml, loaded into pydantic models.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
`${NAME}` in any string is replaced by the environment variable NAME (a missing one is an error).
Relative paths are resolved against the directory of the file that names them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from broker.durations import Duration
from broker.errors import ConfigError
from broker.rules.schema import RuleSet
from broker.yaml_limits import yaml_shape_problem

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WEAK_SECRETS = {"changeme", "change-me", "secret", "password", "development", "insecure"}
MIN_SECRET_LENGTH = 32


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _https_or_loopback(url: str) -> str:
    """https everywhere; plain http only on loopback, for the embedded demo and tests."""
    parts = urlsplit(url)
    if not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute URL without query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return url.rstrip("/")
    raise ValueError("must use https (plain http is allowed only for loopback addresses)")


HttpsUrl = Annotated[str, AfterValidator(_https_or_loopback)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _strong_secret(secret: SecretStr) -> SecretStr:
    value = secret.get_secret_value()
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"secret is too short: use at least {MIN_SECRET_LENGTH} random characters")
    if value.lower() in _WEAK_SECRETS or len(set(value)) < 12:
        raise ValueError("secret is too weak: generate one with `python -c 'import secrets; "
                         "print(secrets.token_urlsafe(48))'`")
    return secret


class SessionConfig(Model):
    secret: Annotated[SecretStr, AfterValidator(_strong_secret)]
    lifetime: Duration = timedelta(hours=8)
    cookie_name: str = Field(default="sts_broker_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class StoreConfig(Model):
    url: SecretStr = SecretStr("memory://")  # a Redis URL may carry a password
    # The cap on Redis connections per process. Commands are pipelined, so one or two carry the load; another
    # opens only when every open one has a deep queue of unanswered commands.
    max_connections: int = Field(default=64, ge=1, le=10000)

    @model_validator(mode="after")
    def _known_scheme(self) -> StoreConfig:
        scheme = urlsplit(self.url.get_secret_value()).scheme
        if scheme not in {"memory", "redis", "rediss", "unix"}:
            raise ValueError(f"store url scheme {scheme!r} is not one of memory, redis, rediss, unix")
        return self


class KeyConfig(Model):
    kid: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    file: Path
    active: bool = False


class AwsConfig(Model):
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    sts_endpoint_url: HttpsUrl | None = None
    federation_url: HttpsUrl | None = None
    console_url: HttpsUrl | None = None
    web_identity_audience: str = Field(default="sts.amazonaws.com", min_length=1, max_length=255)
    # Minted SAML assertions name https://REGION.signin.aws.amazon.com/saml as Recipient (SAML:aud) when set.
    signin_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    connect_timeout: Duration = timedelta(seconds=3)
    read_timeout: Duration = timedelta(seconds=10)


class IssuerConfig(Model):
    """The broker as an OIDC issuer: tokens it mints for AssumeRoleWithWebIdentity."""

    token_lifetime: Duration = timedelta(minutes=5)


class RateLimitConfig(Model):
    """Per client address, fixed windows counted in the state store (so they hold across replicas)."""

    login_starts: int = Field(default=30, ge=1)
    window: Duration = timedelta(minutes=1)
    # POST /oauth2/token: per client address (checked first, before the body is read) and per verified
    # subject (checked before the STS call; a subject already over it is refused before any JWKS fetch).
    token_exchange_per_client: int = Field(default=300, ge=1)
    token_exchange_per_subject: int = Field(default=30, ge=1)
    # POST /saml/{idp}/acs per client address, counted before the form is read: a refused post costs no
    # XML parse and no signature check.
    acs_posts: int = Field(default=60, ge=1)


class XmlWorkersConfig(Model):
    """SAML XML work (parse, schema, signature check, decryption) runs in `threads` worker threads, off the
    event loop; past `max_pending` jobs running or waiting, an ACS post is refused at once (503)."""

    threads: int = Field(default=2, ge=1, le=64)
    max_pending: int = Field(default=16, ge=1, le=4096)


class AdminConfig(Model):
    """The admin API (rule explanations). Off unless a token is set; the token is a bearer secret."""

    token: Annotated[SecretStr, AfterValidator(_strong_secret)] | None = None


def split_listen(address: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port`) -> (host, port); the host is an IP address or `localhost`."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, such as 127.0.0.1:9100")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError("the host must be an IP address (or localhost), such as 127.0.0.1:9100") from None
    return host, int(port)


def _listen_address(address: str) -> str:
    split_listen(address)
    return address


class MetricsConfig(Model):
    """GET /metrics (Prometheus): counts of audit events by reason and request latencies, nothing about a
    person. Open on the main port unless `token` (scrapers send `Authorization: Bearer <token>`) or
    `listen` (a separate listener of `sts-broker serve`, the main port's /metrics then 404) is set."""

    token: Annotated[SecretStr, AfterValidator(_strong_secret)] | None = None
    listen: Annotated[str, AfterValidator(_listen_address)] | None = None


class AuditConfig(Model):
    path: str = "-"


def _web_origin(origin: str) -> str:
    """An exact web origin: scheme://host[:port], no path. Never '*' or 'null'."""
    parts = urlsplit(origin)
    if parts.scheme not in {"https", "http"} or not parts.hostname or parts.path or parts.query \
            or parts.fragment or "@" in parts.netloc or origin != origin.strip().lower():
        raise ValueError("must be an exact origin such as https://app.example.com (lower case, no path)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed only for loopback addresses)")
    return origin


WebOrigin = Annotated[str, AfterValidator(_web_origin)]


class TokenExchangeConfig(Model):
    """POST /oauth2/token (RFC 8693): ID tokens from `type: token` IdPs exchanged for AWS credentials."""

    cors_origins: list[WebOrigin] = []  # web apps allowed to call the endpoint from a browser
    cache_credentials: bool = True  # reuse credentials per (identity, role, scope); single flight per key
    # Cached credentials are handed out while at least this much of their life remains (capped at half
    # their life, so short sessions are still reused).
    cache_min_remaining: Duration = timedelta(minutes=10)
    # event_loop (the default): a keep-alive HTTP/1.1 pool on the event loop, answers parsed by httptools
    # (llhttp), hundreds of calls in flight. boto3: in worker threads (at most 40 in flight), for what only
    # the SDK does: an egress proxy (HTTPS_PROXY), FIPS endpoints.
    sts_transport: Literal["boto3", "event_loop"] = "event_loop"
    sts_max_connections: int = Field(default=256, ge=1, le=4096)


class Settings(Model):
    public_url: HttpsUrl
    session: SessionConfig
    store: StoreConfig = StoreConfig()
    keys: list[KeyConfig] = Field(min_length=1)
    aws: AwsConfig = AwsConfig()
    issuer: IssuerConfig = IssuerConfig()
    idp_configs: Path
    rules: Path
    audit: AuditConfig = AuditConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()
    xml_workers: XmlWorkersConfig = XmlWorkersConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    token_exchange: TokenExchangeConfig = TokenExchangeConfig()
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    # The access log (logger broker.access, INFO): every request, only refused or failed ones (status >= 400),
    # or none. Every credential issued and every refusal is in the audit log either way, every request in
    # /metrics; a line per request through Python logging costs more than a cached token exchange's own work.
    access_log: Literal["all", "errors", "off"] = "errors"

    @model_validator(mode="after")
    def _one_active_key(self) -> Settings:
        active = [k.kid for k in self.keys if k.active]
        if len(active) != 1:
            raise ValueError(f"exactly one key must be active (found {len(active)})")
        if len({k.kid for k in self.keys}) != len(self.keys):
            raise ValueError("key ids (kid) must be unique")
        return self


# IdP ids are path segments (/login/{idp}, /oidc/{idp}/callback, /saml/{idp}/acs, /saml/{idp}/metadata).
# An id that equals a fixed segment at the same place would be shadowed by the broker's own route:
# `idp` by /saml/idp/metadata (the broker's SAML IdP metadata). tests/security/test_web_routes.py derives
# the collisions from the routes and checks that each is listed here.
RESERVED_IDP_IDS = frozenset({"idp"})


def _not_reserved(idp_id: str) -> str:
    if idp_id in RESERVED_IDP_IDS:
        raise ValueError(f"{idp_id!r} is reserved: it is a fixed path segment of the broker's own URLs "
                         f"(reserved ids: {', '.join(sorted(RESERVED_IDP_IDS))}); choose another id")
    return idp_id


IdpId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"), AfterValidator(_not_reserved)]


class ClaimMap(Model):
    email: str = "email"
    email_verified: str = "email_verified"
    groups: str = "groups"


class MfaConfig(Model):
    amr: list[str] = []
    acr: list[str] = []


STANDARD_OIDC_CLAIMS = {
    "sub", "iss", "aud", "azp", "iat", "exp", "auth_time", "nonce", "acr", "amr", "name", "given_name",
    "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "email",
    "email_verified", "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified",
    "address", "updated_at",
}
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class JwksTiming(Model):
    """How long an IdP's signing keys are trusted (see broker/connectors/jwks.py for the guarantees)."""

    # A fetched key set is trusted this long at most (a withdrawn key: refused after this), refreshed in
    # the background from half of it on. Shorter when the IdP's Cache-Control max-age is (not under 60 s).
    jwks_max_age: Duration = timedelta(minutes=5)
    # A token whose kid the held set lacks (a new key) may start a fetch at most this often.
    jwks_unknown_kid_interval: Duration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _jwks_bounds(self) -> JwksTiming:
        if not timedelta(seconds=1) <= self.jwks_max_age <= timedelta(hours=24):
            raise ValueError("jwks_max_age must be between 1s and 24h")
        if not timedelta(seconds=1) <= self.jwks_unknown_kid_interval <= min(self.jwks_max_age, timedelta(minutes=5)):
            raise ValueError("jwks_unknown_kid_interval must be between 1s and the smaller of jwks_max_age and 5m")
        return self


class OidcIdpConfig(JwksTiming):
    id: IdpId
    type: Literal["oidc"]
    name: str
    issuer: HttpsUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    scopes: list[str] = ["openid", "email", "profile"]
    claims: ClaimMap = ClaimMap()
    mfa: MfaConfig = MfaConfig()
    algorithms: list[Algorithm] = Field(default=["RS256"], min_length=1)
    leeway: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=5)
    max_token_bytes: int = Field(default=16 * 1024, ge=1024, le=256 * 1024)
    # Claims this IdP sends beyond the standard OIDC ones (`rules check` warns about templates naming
    # claims that no IdP in a rule's scope provides).
    provides: list[str] = []

    def claims_provided(self) -> set[str]:
        mapped = {self.claims.email, self.claims.email_verified, self.claims.groups}
        return STANDARD_OIDC_CLAIMS | mapped | set(self.provides)

    @model_validator(mode="after")
    def _openid_scope(self) -> OidcIdpConfig:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include 'openid'")
        return self


GOOGLE_ISSUER = "https://accounts.google.com"
# The preset fills what the deployment leaves out: Google issues `iss` in two forms and publishes its
# keys at a fixed JWKS URI (the one its discovery document names).
TOKEN_PRESETS: dict[str, dict[str, Any]] = {
    "google": {"name": "Google", "issuer": GOOGLE_ISSUER, "issuers": [GOOGLE_ISSUER, "accounts.google.com"],
               "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs", "algorithms": ["RS256"]},
}


class TokenIdpConfig(JwksTiming):
    """Bearer ID tokens an app already holds, exchanged at POST /oauth2/token (never a browser login)."""

    id: IdpId
    type: Literal["token"]
    preset: Literal["google"] | None = None
    name: str = ""
    issuer: HttpsUrl  # discovery base (when jwks_uri is absent) and the default accepted `iss`
    issuers: list[Annotated[str, Field(min_length=1)]] = []  # accepted `iss` values, exact; default [issuer]
    jwks_uri: HttpsUrl | None = None  # default: discovered from {issuer}/.well-known/openid-configuration
    client_ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)  # `aud` must name one
    # `azp` allow-list (the app client ids: Android, iOS, web). Empty: `azp`, when present, must be one of
    # client_ids (OIDC Core 3.1.3.7).
    authorized_parties: list[Annotated[str, Field(min_length=1)]] = []
    hosted_domains: list[str] = []  # Google Workspace: `hd` must be one of these
    require_email_verified: bool = False
    claims: ClaimMap = ClaimMap()
    mfa: MfaConfig = MfaConfig()
    algorithms: list[Algorithm] = Field(default=["RS256"], min_length=1)
    leeway: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=5)
    max_token_bytes: int = Field(default=8 * 1024, ge=1024, le=20000)  # 20000: STS's WebIdentityToken cap
    # Replay within the token's life: `allow` (the default: an app re-presents its ID token to refresh
    # credentials, as with Cognito) or `once` (each token accepted once, across replicas, until it expires).
    replay: Literal["allow", "once"] = "allow"
    provides: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in TOKEN_PRESETS:
            return {**TOKEN_PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _defaults(self) -> TokenIdpConfig:
        if self.leeway > timedelta(minutes=5):
            raise ValueError("leeway must be at most 5m")
        updates: dict[str, Any] = {}
        if not self.issuers:
            updates["issuers"] = [self.issuer]
        if not self.name:
            updates["name"] = self.id
        for key, value in updates.items():
            object.__setattr__(self, key, value)
        return self

    def claims_provided(self) -> set[str]:
        mapped = {self.claims.email, self.claims.email_verified, self.claims.groups}
        google = {"hd"} if self.preset == "google" else set()
        return STANDARD_OIDC_CLAIMS | mapped | google | set(self.provides)


def _idp_url(url: str) -> str:
    """A SAML IdP URL (metadata, SSO): https only (plain http on loopback for tests), never file: or other
    schemes, no userinfo or fragment; a query is allowed (Entra ?appid=, Google ?idpid=)."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"}:
        raise ValueError("must be an https URL (file: and other schemes are refused)")
    if "@" in parts.netloc or parts.fragment or not parts.hostname:
        raise ValueError("must be an absolute https URL without userinfo or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed only for loopback addresses)")
    return url


def _pem_certificate(text: str) -> str:
    body = "".join(line.strip() for line in text.strip().splitlines()
                   if line.strip() and not line.startswith("-----"))
    if not re.fullmatch(r"[A-Za-z0-9+/=]{100,}", body):
        raise ValueError("must be an X.509 certificate (PEM, or its base64 body)")
    return body


PemCertificate = Annotated[str, AfterValidator(_pem_certificate)]
IdpUrl = Annotated[str, AfterValidator(_idp_url)]
NAMEID_FORMATS = {
    "emailAddress": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
}


class SamlAttributeMap(Model):
    """Which SAML attribute (its Name, exactly as the IdP sends it) carries each normalized field."""

    email: str | None = None  # None: the NameID, when its format is emailAddress
    email_verified: str | None = None
    groups: str | None = None
    # The IdP vouches for the email it sends (a directory-managed address): email_verified is true.
    email_trusted: bool = False
    # Extra friendly names for attributes (claim name -> SAML attribute Name), for rules and templates.
    aliases: dict[str, str] = {}


class SamlMfaConfig(Model):
    authn_context: list[str] = []  # AuthnContextClassRef values that count as MFA (exact match)
    attribute: str | None = None  # or an attribute (e.g. ADFS authnmethodsreferences) naming the method ...
    attribute_values: list[str] = []  # ... with one of these values


class SamlSpKeys(Model):
    """This SP's own key pair: signs AuthnRequests (when the IdP wants them signed) and decrypts assertions."""

    key_file: Path
    cert_file: Path


class SamlIdpConfig(Model):
    """An upstream SAML 2.0 IdP; the broker is its SP (python3-saml, strict)."""

    id: IdpId
    type: Literal["saml"]
    name: str
    # Either metadata (a file, or an https URL refreshed on a schedule) ...
    metadata_file: Path | None = None
    metadata_url: IdpUrl | None = None
    metadata_refresh: Duration = timedelta(hours=12)
    metadata_max_bytes: int = Field(default=512 * 1024, ge=4096, le=8 * 1024 * 1024)
    # The metadata signer's certificate (PEM file): when set, metadata is used only if its root is signed
    # with this key (broker/connectors/saml_metadata_trust.py).
    metadata_signing_certificate: Path | None = None
    timeout: Duration = timedelta(seconds=5)
    # ... or the IdP spelled out: entity id, SSO URL (HTTP-Redirect binding) and signing certificates.
    # Several certificates are accepted at once (rollover). With metadata, entity_id names the IdP to use
    # in an aggregate (EntitiesDescriptor), and must match a single EntityDescriptor's entityID.
    entity_id: str | None = Field(default=None, min_length=1, max_length=1024)
    sso_url: IdpUrl | None = None
    certificates: list[PemCertificate] = []
    want_authn_requests_signed: bool | None = None  # default: what the metadata says (false when inline)
    # How the AuthnRequest travels: by default HTTP-Redirect when the IdP offers it, else HTTP-POST.
    # Inline configs (sso_url) default to redirect.
    sso_binding: Literal["redirect", "post"] | None = None
    # This SP: default entity id {public_url}/saml/{id}/metadata.
    sp_entity_id: str | None = Field(default=None, min_length=1, max_length=1024)
    sp_keys: SamlSpKeys | None = None
    want_assertions_encrypted: bool = False  # needs sp_keys
    # true (the default): the assertion carries its own signature (security.md: an unsigned assertion in a
    # signed Response is refused). false: a signature on the Response that covers the one assertion it holds
    # is enough (Shibboleth's default, Keycloak "Sign documents", AD FS MessageOnly); either way every
    # signature present must verify and have the allowed shape.
    want_assertions_signed: bool = True
    name_id_format: str = "emailAddress"
    attributes: SamlAttributeMap = SamlAttributeMap()
    mfa: SamlMfaConfig = SamlMfaConfig()
    allow_idp_initiated: bool = False
    clock_skew: Duration = timedelta(seconds=120)
    max_assertion_age: Duration = timedelta(minutes=5)  # bound on IssueInstant's age
    max_response_bytes: int = Field(default=256 * 1024, ge=4096, le=2 * 1024 * 1024)
    provides: list[str] = []

    @model_validator(mode="after")
    def _one_source(self) -> SamlIdpConfig:
        metadata = [self.metadata_file is not None, self.metadata_url is not None]
        # With metadata, entity_id names the IdP in it (an aggregate's entity, or a check on a single one).
        inline = self.sso_url is not None or bool(self.certificates) or (
            self.entity_id is not None and not any(metadata))
        sources = [*metadata, inline]
        if sum(sources) != 1:
            raise ValueError("give exactly one of metadata_file, metadata_url, or entity_id + sso_url + "
                             "certificates")
        if sources[2] and (self.entity_id is None or self.sso_url is None or not self.certificates):
            raise ValueError("entity_id, sso_url and certificates go together")
        if sources[2] and self.metadata_signing_certificate is not None:
            raise ValueError("metadata_signing_certificate goes with metadata_url or metadata_file")
        if self.clock_skew > timedelta(minutes=5):
            raise ValueError("clock_skew must be at most 5m")
        if (self.want_assertions_encrypted or self.want_authn_requests_signed) and self.sp_keys is None:
            raise ValueError("sp_keys is required for signed AuthnRequests or encrypted assertions")
        if self.name_id_format not in NAMEID_FORMATS and ":" not in self.name_id_format:
            raise ValueError(f"name_id_format: one of {sorted(NAMEID_FORMATS)} or a full URN")
        return self

    @property
    def name_id_format_urn(self) -> str:
        return NAMEID_FORMATS.get(self.name_id_format, self.name_id_format)

    def claims_provided(self) -> set[str]:
        attrs = self.attributes
        named = {a for a in (attrs.email, attrs.email_verified, attrs.groups) if a}
        return {"email", "email_verified", "groups", "name_id", "authn_context"} | named \
            | set(attrs.aliases) | set(self.provides)


IdpConfig = Annotated[OidcIdpConfig | TokenIdpConfig | SamlIdpConfig, Field(discriminator="type")]
IDP_MODELS: dict[str, type[OidcIdpConfig] | type[TokenIdpConfig] | type[SamlIdpConfig]] = {
    "oidc": OidcIdpConfig, "token": TokenIdpConfig, "saml": SamlIdpConfig}
_IDP_ADAPTER: TypeAdapter[OidcIdpConfig | TokenIdpConfig | SamlIdpConfig] = TypeAdapter(IdpConfig)


def parse_idp(data: Any) -> OidcIdpConfig | TokenIdpConfig | SamlIdpConfig:
    """Dispatch on `type`. The chosen model validates directly, so error locations stay relative to the
    file; an absent or unknown type gets the union's own message (expected 'oidc' or 'token')."""
    kind = data.get("type") if isinstance(data, dict) else None
    model = IDP_MODELS.get(kind) if isinstance(kind, str) else None
    return model.model_validate(data) if model is not None else _IDP_ADAPTER.validate_python(data)


# ---- loading -------------------------------------------------------------------------------------


def _expand_env(node: Any, path: tuple[str, ...], problems: list[tuple[str, ...]] | None) -> Any:
    """Replace ${NAME}; a missing variable is a problem, or (problems=None, for linting) an empty string."""
    if isinstance(node, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ and problems is not None:
                problems.append((*path, f"environment variable {name} is not set"))
            return os.environ.get(name, "")
        return _ENV_REF.sub(sub, node)
    if isinstance(node, dict):
        return {k: _expand_env(v, (*path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, (*path, str(i)), problems) for i, v in enumerate(node)]
    return node


Lines = dict[tuple[str, ...], int]


def _line_map(node: yaml.Node | None, path: tuple[str, ...] = (), lines: Lines | None = None) -> Lines:
    """The 1-based line of every key and list item, by its path, so problems can name their line."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines[child] = item.start_mark.line + 1
            _line_map(item, child, lines)
    return lines


def _located(file: Path, lines: Lines, loc: tuple[str, ...], message: str) -> str:
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    where = f"{file}:{line}" if line else f"{file}"
    return f"{where}: {'.'.join(loc) or '<root>'}: {message}"


def _load(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree it was built from, from one parse: `safe_load` and `compose` each parse
    the text, and the line map needs the nodes."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def read_yaml(file: Path, *, need_env: bool = True) -> tuple[Any, list[str], Lines]:
    """Parse a YAML file and expand ${ENV} references. Problems name the file and line."""
    try:
        text = file.read_text(encoding="utf-8")
        shape = yaml_shape_problem(text)
        if shape is not None:
            return None, [f"{file}: {shape}"], {}
        raw, node = _load(text)
        lines = _line_map(node)
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror}"], {}
    except UnicodeDecodeError as exc:
        return None, [f"{file}: not UTF-8 (byte {exc.start}); save it as UTF-8"], {}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # PyYAML's constructors, on `!!int x` & co.
        return None, [f"{file}: not valid YAML: a value does not fit its explicit tag ({type(exc).__name__})"], {}
    except yaml.YAMLError as exc:
        return None, [f"{file}: not valid YAML: {exc}"], {}
    problems: list[tuple[str, ...]] = []
    data = _expand_env(raw, (), problems if need_env else None)
    return data, [_located(file, lines, loc, msg) for *loc_parts, msg in problems
                  for loc in [tuple(loc_parts)]], lines


_PART_PATH = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): (.*)$", re.DOTALL)


def validation_problems(file: Path, exc: ValidationError, lines: Lines | None = None) -> list[str]:
    """One line per problem, located as precisely as the message allows: a message that starts with a
    relative path ("when.groups.regexp: ...") extends the field path, and a cross-field message listing
    several "rules.0.grant.1: ..." parts is split into one problem each."""
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts = message.split("; ") if not loc else [message]
        for part in parts:
            match = _PART_PATH.fullmatch(part)
            if match and (not loc or match.group(1).split(".")[0] == loc[-1]):
                where = (*loc[:-1], *match.group(1).split(".")) if loc else tuple(match.group(1).split("."))
                out.append(_located(file, lines or {}, where, match.group(2)))
            else:
                out.append(_located(file, lines or {}, loc, part))
    return out


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_settings(file: Path) -> Settings:
    data, problems, lines = read_yaml(file)
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: <root>: expected a mapping"])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(file, exc, lines)) from None
    base = file.resolve().parent
    audit_path = settings.audit.path
    if audit_path != "-":
        audit_path = str(_resolve(base, Path(audit_path)))
    return settings.model_copy(update={
        "audit": AuditConfig(path=audit_path),
        "idp_configs": _resolve(base, settings.idp_configs),
        "rules": _resolve(base, settings.rules),
        "keys": [k.model_copy(update={"file": _resolve(base, k.file)}) for k in settings.keys],
    })


def load_idps(directory: Path, *, need_env: bool = True) -> dict[str, IdpConfig]:
    """Every *.yaml in the directory is one IdP. All problems in all files are reported together."""
    if not directory.is_dir():
        raise ConfigError([f"{directory}: idp_configs is not a directory"])
    idps: dict[str, IdpConfig] = {}
    problems: list[str] = []
    for file in sorted(directory.glob("*.yaml")):
        data, file_problems, lines = read_yaml(file, need_env=need_env)
        problems += file_problems
        if file_problems:
            continue
        try:
            idp = parse_idp(data)
        except ValidationError as exc:
            problems += validation_problems(file, exc, lines)
            continue
        if idp.id in idps:
            problems.append(f"{file}: id: duplicate IdP id {idp.id!r}")
        if isinstance(idp, SamlIdpConfig):
            idp, saml_problems = _saml_paths(file, idp, lines)
            problems += saml_problems
        idps[idp.id] = idp
    if problems:
        raise ConfigError(problems)
    return idps


def _saml_paths(file: Path, idp: SamlIdpConfig, lines: Lines) -> tuple[SamlIdpConfig, list[str]]:
    """Resolve a SAML IdP's files against the directory of its config file; each must exist."""
    base = file.resolve().parent
    update: dict[str, Any] = {}
    problems = []
    if idp.metadata_file is not None:
        update["metadata_file"] = _resolve(base, idp.metadata_file)
    if idp.metadata_signing_certificate is not None:
        update["metadata_signing_certificate"] = _resolve(base, idp.metadata_signing_certificate)
    if idp.sp_keys is not None:
        update["sp_keys"] = SamlSpKeys(key_file=_resolve(base, idp.sp_keys.key_file),
                                       cert_file=_resolve(base, idp.sp_keys.cert_file))
    for loc, path in (("metadata_file", update.get("metadata_file")),
                      ("metadata_signing_certificate", update.get("metadata_signing_certificate")),
                      ("sp_keys", getattr(update.get("sp_keys"), "key_file", None)),
                      ("sp_keys", getattr(update.get("sp_keys"), "cert_file", None))):
        if path is not None and not path.is_file():
            problems.append(_located(file, lines, (loc,), f"no such file: {path}"))
    return idp.model_copy(update=update), problems


def load_rules(file: Path) -> RuleSet:
    data, problems, lines = read_yaml(file)
    if problems:
        raise ConfigError(problems)
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(file, exc, lines)) from None
