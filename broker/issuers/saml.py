"""AssumeRoleWithSAML for one grant: with an assertion the broker mints and signs as its own IdP (registered in
IAM from /saml/idp/metadata), or, for pass-through grants, with the upstream IdP's own SAMLResponse.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.credentials import Credentials
from broker.issuers.passthrough import check_saml_response
from broker.issuers.saml_assertion import AssertionContent, recipient_for, signed_response
from broker.issuers.saml_idp import SamlKey, entity_id

ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
DEFAULT_LIFETIME = timedelta(minutes=5)
MIN_SESSION, MAX_SESSION = 900, 43200
# Characters XML 1.0 cannot carry: an OIDC `sub` may hold them (JSON can), the NameID cannot. Refused rather than
# rewritten, so the NameID (SAML:sub in trust policies) stays the subject itself, one person to one NameID.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class SamlSts(Protocol):
    """sts_client.StsClient."""

    async def assume_role_with_saml(self, grant: RoleGrant, assertion: str) -> Credentials: ...


def assertion_content(identity: Identity, grant: RoleGrant, *, issuer: str,
                      signin_region: str | None) -> AssertionContent:
    if grant.provider_arn is None:
        raise StsRefused(f"grant via saml for {grant.role_arn} without a provider", reason="saml_no_provider")
    if _NOT_XML.search(identity.subject):
        raise StsRefused("the subject holds characters a SAML NameID cannot carry", reason="saml_subject_unusable")
    seconds = min(max(int(grant.duration.total_seconds()), MIN_SESSION), MAX_SESSION)
    return AssertionContent(
        issuer=issuer, name_id=f"{identity.idp}:{identity.subject}", partition=grant.partition,
        recipient=recipient_for(grant.partition, signin_region),
        roles=((grant.role_arn, grant.provider_arn),), session_name=grant.session_name, session_duration=seconds,
        tags=dict(grant.tags), transitive_tags=grant.transitive_tags, source_identity=grant.source_identity,
    )


class SamlIssuer:
    def __init__(self, key: SamlKey | Callable[[], SamlKey | None] | None, sts: SamlSts, *, public_url: str,
                 signin_region: str | None = None, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        # The key in use now (a callable: LiveKeys.saml_key, which follows a rotation), or one fixed key.
        self._key = key if callable(key) else lambda: key
        self._sts = sts
        self._issuer, self._region, self._lifetime = entity_id(public_url), signin_region, lifetime

    def mint(self, identity: Identity, grant: RoleGrant) -> str:
        """The base64 samlp:Response for this grant only (one Role value: the granted role)."""
        content = assertion_content(identity, grant, issuer=self._issuer, signin_region=self._region)
        key = self._key()
        if key is None:
            raise StsRefused("the active signing key is EC; SAML assertions need an RSA key",
                             reason="saml_key_not_rsa", public="The broker has no key to sign SAML assertions with.")
        return signed_response(content, key, now=datetime.now(UTC), lifetime=self._lifetime)

    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials:
        if grant.passthrough:
            return await self._sts.assume_role_with_saml(grant, upstream_response(identity, grant))
        key = self._key()
        if key is not None and key.signer.remote:  # a KMS signature is a network call: off the event loop
            return await self._sts.assume_role_with_saml(grant, await asyncio.to_thread(self.mint, identity, grant))
        return await self._sts.assume_role_with_saml(grant, self.mint(identity, grant))


def upstream_response(identity: Identity, grant: RoleGrant) -> str:
    """The IdP's own SAMLResponse, only when its (verified) Role attribute names this grant's role and provider:
    the rules granted the role, and the assertion must allow it too."""
    if identity.evidence is None or identity.evidence.kind != "saml_response":
        raise StsRefused("pass-through grant without the upstream SAML response", reason="passthrough_unavailable",
                         public="This role needs the identity provider's own assertion, which this sign-in lacks.")
    pairs = {tuple(part.strip(" ") for part in value.split(",")) for value in identity.claims.get(ROLE_ATTRIBUTE, ())}
    if not pairs & {(grant.role_arn, grant.provider_arn), (grant.provider_arn, grant.role_arn)}:
        raise StsRefused(f"upstream Role attribute does not name {grant.role_arn}", reason="passthrough_role_absent",
                         public="The identity provider's assertion does not allow this role.")
    check_saml_response(identity.evidence, grant)  # still valid, and addressed to AWS
    return identity.evidence.value
