"""The config model of a SAML IdP (`type: saml`, browser logins through the ACS)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from broker.aws_saml import PARTITIONS, PartitionName, aws_audiences, is_aws_recipient
from broker.durations import Duration
from broker.settings import IdpId, IdpUrl, Model, PemCertificate

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


class SamlAwsPassthrough(Model):
    """`aws_passthrough`: this IdP is also registered in IAM (its "AWS" app), and the broker's ACS accepts that
    app's assertions too: a bearer Recipient that is AWS's sign-in endpoint and/or an Audience that is AWS's, so
    that a `token: passthrough` grant with `via: saml` can hand the very same response to AssumeRoleWithSAML.
    Such a response then also signs a person in at the broker: that is the trust this option states. Every other
    check stays (signature, Destination, InResponseTo, replay, times, Issuer). Only AWS's own values for one
    partition can be listed, so the option never makes the ACS accept another SP's assertions."""

    partition: PartitionName = "aws"
    # Default: the partition's sign-in endpoint (https://signin.aws.amazon.com/saml) and audience
    # (urn:amazon:webservices). List a regional endpoint (https://REGION.signin.aws.amazon.com/saml) if the
    # IdP's AWS app uses one.
    accept_recipients: list[str] = Field(default=[], max_length=8)
    accept_audiences: list[str] = Field(default=[], max_length=4)

    @model_validator(mode="after")
    def _aws_values_only(self) -> SamlAwsPassthrough:
        for url in self.accept_recipients:
            if not is_aws_recipient(self.partition, url):
                raise ValueError(f"accept_recipients: {url[:200]!r} is not an AWS sign-in endpoint of "
                                 f"partition {self.partition}")
        for audience in self.accept_audiences:
            if audience not in aws_audiences(self.partition):
                raise ValueError(f"accept_audiences: {audience[:200]!r} is not one of AWS's audiences for "
                                 f"partition {self.partition}: {sorted(aws_audiences(self.partition))}")
        return self

    @property
    def recipients(self) -> frozenset[str]:
        return frozenset(self.accept_recipients or [PARTITIONS[self.partition].recipient])

    @property
    def audiences(self) -> frozenset[str]:
        return frozenset(self.accept_audiences or [PARTITIONS[self.partition].audience])


class SamlIdpConfig(Model):
    """An upstream SAML 2.0 IdP; the broker is its SP (python3-saml, strict)."""

    id: IdpId
    type: Literal["saml"]
    name: str
    # A PNG or SVG file (at most 16 KiB) shown beside the name in the sign-in chooser (connectors/idp_icon.py).
    icon: Path | None = None
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
    # Off by default. `true` is {partition: aws} with AWS's defaults; see SamlAwsPassthrough.
    aws_passthrough: SamlAwsPassthrough | None = None

    @field_validator("aws_passthrough", mode="before")
    @classmethod
    def _passthrough_switch(cls, value: object) -> object:
        if value is True:
            return {}
        return None if value is False else value

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
        if self.aws_passthrough is not None and self.want_assertions_encrypted:
            raise ValueError("aws_passthrough with want_assertions_encrypted: AWS cannot read an assertion "
                             "encrypted to the broker, so it could never be passed through")
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

    def with_files(self, resolve: Callable[[Path], Path]) -> tuple[SamlIdpConfig, list[tuple[str, Path]]]:
        """This config with its files resolved (`resolve`: against the directory of the file naming them),
        and each (key, path) that must exist."""
        update: dict[str, Any] = {}
        if self.metadata_file is not None:
            update["metadata_file"] = resolve(self.metadata_file)
        if self.metadata_signing_certificate is not None:
            update["metadata_signing_certificate"] = resolve(self.metadata_signing_certificate)
        if self.sp_keys is not None:
            update["sp_keys"] = SamlSpKeys(key_file=resolve(self.sp_keys.key_file),
                                           cert_file=resolve(self.sp_keys.cert_file))
        if self.icon is not None:
            update["icon"] = resolve(self.icon)
        keys = update.get("sp_keys")
        files = [("icon", update.get("icon")), ("metadata_file", update.get("metadata_file")),
                 ("metadata_signing_certificate", update.get("metadata_signing_certificate")),
                 ("sp_keys", keys.key_file if keys else None), ("sp_keys", keys.cert_file if keys else None)]
        return self.model_copy(update=update), [(key, path) for key, path in files if path is not None]
