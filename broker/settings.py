"""The settings models: broker.yaml as pydantic models (every model forbids unknown keys, so a typo is an error
rather than a silently ignored setting), and the field types IdP models share. Loading (YAML, ${NAME}, paths)
is config.py; each IdP kind's model sits beside its connector (connectors/*_config.py)."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from broker.durations import Duration
from broker.portal_settings import ConsoleConfig, CredentialsPageConfig

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


def https_or_loopback(url: str) -> str:
    """https everywhere; plain http only on loopback, for the embedded demo and tests."""
    parts = urlsplit(url)
    if not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute URL without query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return url.rstrip("/")
    raise ValueError("must use https (plain http is allowed only for loopback addresses)")


HttpsUrl = Annotated[str, AfterValidator(https_or_loopback)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdpModel(Protocol):
    """What every IdP kind's config model has (the models: connectors/*_config.py; the table of kinds that
    names them: logins/kinds.py, which checks each model has these fields)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    def claims_provided(self) -> set[str]:
        """The claim names its identities carry (what `rules lint --idp-configs` checks rules against)."""
        ...


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


STORE_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel",
                 "rediss+sentinel")


class StoreTlsConfig(Model):
    """TLS toward Redis (a rediss URL): the CA that signed the server's certificate (else the system's), a
    client certificate where the server asks for one, and the name to verify when it is not the host."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]{1,253}$")


class StoreConfig(Model):
    url: SecretStr = SecretStr("memory://")  # a Redis URL may carry a password
    # The cap on Redis connections per process (per node in a cluster). Commands are pipelined, so one or two
    # carry the load; another opens only when every open one has a deep queue of unanswered commands.
    max_connections: int = Field(default=64, ge=1, le=10000)
    # An ACL user and its password (AUTH username password), kept out of the URL (e.g. password: ${REDIS_PW}).
    # Printable ASCII without '/', ':' or '@' (they would read as URL parts): ranges, not \S (Unicode there).
    username: str | None = Field(default=None, pattern=r"^[!-.0-9;-?A-~]{1,128}$")
    password: SecretStr | None = None
    tls: StoreTlsConfig | None = None

    @model_validator(mode="after")
    def _known_scheme(self) -> StoreConfig:
        url = self.url.get_secret_value()
        scheme = url.partition("://")[0].lower() if "://" in url else urlsplit(url).scheme
        if scheme not in STORE_SCHEMES:
            raise ValueError(f"store url scheme {scheme!r} is not one of {', '.join(STORE_SCHEMES)}")
        if self.tls is not None and not scheme.startswith("rediss"):
            raise ValueError(f"store tls is set but the url is {scheme}:// (use rediss:// or rediss+cluster://)")
        return self

    def resolved(self, base: Path) -> StoreConfig:
        """TLS files relative to the directory of broker.yaml."""
        if self.tls is None:
            return self
        files = {name: base / path for name in ("ca_file", "cert_file", "key_file")
                 if (path := getattr(self.tls, name)) is not None and not path.is_absolute()}
        return self.model_copy(update={"tls": self.tls.model_copy(update=files)})


class KmsKeyConfig(Model):
    """An AWS KMS asymmetric key (SIGN_VERIFY, RSA_2048.. or ECC_NIST_P256): the broker needs kms:Sign and
    kms:GetPublicKey on it; the private key never leaves KMS."""

    key_id: str = Field(min_length=1, max_length=2048)  # key id, key ARN, alias name or alias ARN
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    endpoint_url: HttpsUrl | None = None


class KeyConfig(Model):
    """One signing key from exactly one source: `file` (PEM), `env` (the name of a variable holding the PEM)
    or `kms`. `cert` is the X.509 certificate published for SAML (else one is derived from the key)."""

    kid: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    file: Path | None = None
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    kms: KmsKeyConfig | None = None
    cert: Path | None = None
    active: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> KeyConfig:
        if sum(source is not None for source in (self.file, self.env, self.kms)) != 1:
            raise ValueError("a key needs exactly one source: file, env or kms")
        return self


class KeyRotationConfig(Model):
    """`sts-broker keys rotate` (broker/keys_rotate.py): the state file every replica reads (in the keys
    directory, shared), and the cache lifetimes the waits between its steps are computed from."""

    state_file: Path | None = None
    # How long a relying party (AWS STS for web identity tokens) may keep the JWKS it fetched.
    relying_party_cache: Duration = timedelta(hours=1)
    clock_skew: Duration = timedelta(minutes=5)
    # How often a replica looks at the state file for a step another replica's operator took.
    poll: Duration = Field(default=timedelta(seconds=5), ge=timedelta(0), le=timedelta(minutes=5))


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
    # STS calls refused as throttled or failing (5xx, a dropped connection) are tried again, this many times in
    # all, after a random wait (full jitter) of up to sts_retry_backoff, doubled per attempt.
    sts_max_attempts: int = Field(default=2, ge=1, le=5)
    sts_retry_backoff: Duration = timedelta(milliseconds=200)
    # The broker's own credentials (via assume_role without from:, via federation_token): botocore's standard
    # chain, from this profile and shared credentials file when set (else the chain's defaults).
    credentials_profile: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+@-]{1,64}$")
    credentials_file: Path | None = None


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
    # POST /oauth2/device_authorization per client address; wrong user codes typed at /device per client
    # address and per person (8 letters of 20: guessing one needs ~10^10 tries, this keeps it there).
    device_authorizations: int = Field(default=20, ge=1)
    device_code_attempts: int = Field(default=10, ge=1)


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


class ReadinessConfig(Model):
    """GET /readyz: the store and keys always decide it. IdPs fetched over the network are checked in the
    background and reported; with `require_idps` a replica is not ready until each holds its keys or metadata
    (then /readyz waits, at most 2 s, for the check). Off by default: an IdP outage affects every replica
    alike, and taking them all out of the load balancer would end token exchange and the other IdPs too."""

    require_idps: bool = False


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


class DeviceAuthorizationConfig(Model):
    """RFC 8628 for `sts-broker login --device`: how long a user code may wait for approval, and how often
    the CLI may poll (RFC 8628 3.2 `interval`; faster polls get slow_down)."""

    lifetime: Duration = Field(default=timedelta(minutes=10), ge=timedelta(seconds=1), le=timedelta(hours=1))
    interval: Duration = Field(default=timedelta(seconds=5), ge=timedelta(seconds=1), le=timedelta(minutes=1))


class ContainerCredentialsConfig(Model):
    """GET /container-credentials: credentials are handed out from the cache while at least `refresh_before`
    of their life is left, then re-issued. botocore refreshes 15 minutes before expiry (10 at the latest), so
    the default hands out keys with more than that left: an SDK's refresh always gets newer keys."""

    refresh_before: Duration = Field(default=timedelta(minutes=20), ge=timedelta(0))


class PickerConfig(Model):
    """The role picker (GET /roles). `single_role`: with exactly one role granted, `open` goes straight to its
    console (a POST with the session's CSRF token, submitted by the page's script or its button); `list`
    shows the list as for many roles (the person may want credentials, CLI sessions or to sign out)."""

    single_role: Literal["open", "list"] = "list"


class Settings(Model):
    public_url: HttpsUrl
    session: SessionConfig
    store: StoreConfig = StoreConfig()
    keys: list[KeyConfig] = Field(min_length=1)
    key_rotation: KeyRotationConfig = KeyRotationConfig()
    aws: AwsConfig = AwsConfig()
    issuer: IssuerConfig = IssuerConfig()
    idp_configs: Path
    rules: Path
    audit: AuditConfig = AuditConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()
    xml_workers: XmlWorkersConfig = XmlWorkersConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    readiness: ReadinessConfig = ReadinessConfig()
    token_exchange: TokenExchangeConfig = TokenExchangeConfig()
    device_authorization: DeviceAuthorizationConfig = DeviceAuthorizationConfig()
    container_credentials: ContainerCredentialsConfig = ContainerCredentialsConfig()
    picker: PickerConfig = PickerConfig()
    console: ConsoleConfig = ConsoleConfig()  # deep links: destinations and regions (portal_settings.py)
    credentials_page: CredentialsPageConfig = CredentialsPageConfig()
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


def idp_url(url: str) -> str:
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
IdpUrl = Annotated[str, AfterValidator(idp_url)]
