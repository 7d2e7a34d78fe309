"""The broker as a SAML 2.0 SP (python3-saml, strict), for one upstream IdP.

python3-saml verifies signatures, the schema and most conditions, but it is stateless and lax where an
application must be strict (see the stack notes): it matches Destination by prefix and Recipient by
substring, accepts a missing Audience, Destination or Recipient, does not bound IssueInstant, knows no
configured clock skew, and accepts any InResponseTo when not given one. So every response goes through:

1. the XML guard (saml_xml: no DTD, bounded size and depth, no comments or PIs);
2. structure: exactly one Assertion (or one EncryptedAssertion), a direct child of the Response;
3. the shape of every signature (saml_signature_shape), before xmlsec sees any (again after decryption);
   python3-saml's `is_valid` (strict, rejectDeprecatedAlgorithm, wantAssertionsSigned when the IdP's config
   asks for it; otherwise at least one signature, and every signature present must verify), against request
   data built from the configured public_url, never from Host or X-Forwarded-* headers;
4. the broker's own exact checks on the assertion the verified signature covers (saml_checks);
5. claims read only from that assertion.
Single use (request IDs, assertion IDs) is the service's job, in the shared state store. The XML work runs
in bounded worker threads (xml_workers), never on the event loop: `read` and `finish` are the async entry
points; `receive` and `verify` are the same work, synchronous.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from broker import urls
from broker.audit import AuditLog
from broker.connectors.saml_checks import SAML, check_assertion, read_identity
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_descriptor import IdpDescriptor, SsoBinding
from broker.connectors.saml_metadata import MetadataSource
from broker.connectors.saml_signature_shape import check_signature_shapes
from broker.connectors.saml_xml import guard_tree, guarded_parse
from broker.connectors.xml_workers import XmlWorkers
from broker.errors import BadRequest, TokenInvalid
from broker.identity import Evidence, Identity
from broker.return_paths import is_return_path
from broker.seams.python3_saml import ParsedResponse, cached_validation

SAMLP = C.NS_SAMLP
_CODES = {v: k.lower() for k, v in vars(OneLogin_Saml2_ValidationError).items()
          if k.isupper() and isinstance(v, int)}


@dataclass(frozen=True, slots=True)
class SamlLogin:
    """A verified response: who, plus what the service needs to make it single use."""

    identity: Identity
    assertion_id: str
    in_response_to: str | None
    replay_ttl: float  # seconds the assertion ID must stay remembered (until NotOnOrAfter + skew)


@dataclass(frozen=True, slots=True)
class SamlStart:
    """Where an SP-initiated login goes. HTTP-Redirect: `url` is the whole IdP URL to send the browser to.
    HTTP-POST: `url` is the form's action, always the descriptor's SSO URL (never anything from the request),
    and `fields` are the form's SAMLRequest (base64 of the XML, not deflated) and RelayState."""

    request_id: str
    binding: SsoBinding
    url: str
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)


def post_start(settings: OneLogin_Saml2_Settings, idp: IdpDescriptor, relay_state: str) -> SamlStart:
    """The HTTP-POST binding: python3-saml's AuthnRequest (Destination = the SSO URL, ProtocolBinding of the
    ACS = HTTP-POST) and, when the IdP wants signed requests, python3-saml's enveloped XML signature
    (RSA-SHA256, SHA-256 digest, exclusive c14n). The library has no POST login helper, only `login()`,
    which builds a Redirect URL, so this is its AuthnRequest and `add_sign`, as its `login()` would use."""
    request = OneLogin_Saml2_Authn_Request(settings)
    xml = request.get_xml()
    if settings.get_security_data().get("authnRequestsSigned"):
        xml = OneLogin_Saml2_Utils.add_sign(xml, settings.get_sp_key(), settings.get_sp_cert(),
                                            sign_algorithm=C.RSA_SHA256, digest_algorithm=C.SHA256)
    raw = xml if isinstance(xml, bytes) else str(xml).encode()
    fields = {"SAMLRequest": base64.b64encode(raw).decode("ascii"), "RelayState": relay_state}
    return SamlStart(str(request.get_id()), "post", idp.sso_url, fields)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A SAMLResponse past the XML guard and the structure check, not yet verified."""

    text: str = field(repr=False)
    raw: bytes = field(repr=False)
    root: Any = field(repr=False)
    in_response_to: str | None


def request_data(url: str, saml_response: str | None = None) -> dict[str, Any]:
    """The request as python3-saml sees it, built from a configured URL (never from request headers)."""
    parts = urlsplit(url)
    data: dict[str, Any] = {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.netloc,
                            "script_name": parts.path, "get_data": {}, "post_data": {}}
    if saml_response is not None:
        data["post_data"] = {"SAMLResponse": saml_response}
    return data


def in_response_to_of(root: Any) -> str | None:
    value = root.get("InResponseTo")
    return str(value) if value is not None else None


class SamlConnector:
    def __init__(self, config: SamlIdpConfig, public_url: str, http: httpx.AsyncClient | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), workers: XmlWorkers | None = None,
                 audit: AuditLog | None = None) -> None:
        self.config, self.clock = config, clock
        self.workers = workers or XmlWorkers()
        self.acs_url = public_url + urls.for_idp(urls.SAML_ACS, config.id)
        self.metadata_url = public_url + urls.for_idp(urls.SAML_METADATA, config.id)
        self.sp_entity_id = config.sp_entity_id or self.metadata_url
        self.metadata = MetadataSource(config, http, audit)  # audit: its refreshes, kept or refused
        self._sp_cert = config.sp_keys.cert_file.read_text() if config.sp_keys else ""
        self._sp_key = config.sp_keys.key_file.read_text() if config.sp_keys else ""
        self._settings: tuple[IdpDescriptor, OneLogin_Saml2_Settings] | None = None

    def __repr__(self) -> str:
        return f"SamlConnector(id={self.config.id!r})"

    # ---- python3-saml settings, one object per IdP descriptor (rebuilt when the metadata changes) ----

    def settings_dict(self, idp: IdpDescriptor | None) -> dict[str, Any]:
        sp: dict[str, Any] = {
            "entityId": self.sp_entity_id, "NameIDFormat": self.config.name_id_format_urn,
            "assertionConsumerService": {"url": self.acs_url, "binding": C.BINDING_HTTP_POST},
            "x509cert": self._sp_cert, "privateKey": self._sp_key,
        }
        security = {
            "authnRequestsSigned": bool(idp and idp.want_authn_requests_signed),
            "wantAssertionsSigned": self.config.want_assertions_signed, "wantMessagesSigned": False,
            "rejectDeprecatedAlgorithm": True,
            "wantAssertionsEncrypted": self.config.want_assertions_encrypted, "wantNameId": True,
            "wantAttributeStatement": False, "allowRepeatAttributeName": False,
            "signatureAlgorithm": C.RSA_SHA256, "digestAlgorithm": C.SHA256, "requestedAuthnContext": False,
            "signMetadata": False, "wantNameIdEncrypted": False,
        }
        data: dict[str, Any] = {"strict": True, "debug": False, "sp": sp, "security": security}
        if idp is not None:
            data["idp"] = {"entityId": idp.entity_id, "x509cert": idp.certificates[0],
                           "singleSignOnService": {"url": idp.sso_url, "binding": idp.sso_binding_urn}}
            if len(idp.certificates) > 1:
                data["idp"]["x509certMulti"] = {"signing": list(idp.certificates)}
        return data

    async def settings(self) -> tuple[IdpDescriptor, OneLogin_Saml2_Settings]:
        idp = await self.metadata.get()
        if self._settings is None or self._settings[0] != idp:
            self._settings = (idp, OneLogin_Saml2_Settings(self.settings_dict(idp), custom_base_path=None))
        return self._settings

    def sp_metadata(self) -> str:
        """This SP's metadata (what an IdP admin imports): entity id, ACS, NameID format, keys."""
        settings = OneLogin_Saml2_Settings(self.settings_dict(self.metadata.loaded), sp_validation_only=True)
        xml = settings.get_sp_metadata()
        return xml.decode() if isinstance(xml, bytes) else str(xml)

    # ---- SP-initiated login -------------------------------------------------------------------------

    async def start(self, relay_state: str) -> SamlStart:
        """The AuthnRequest in the IdP's SSO binding (signed when the IdP wants it), and its ID."""
        idp, settings = await self.settings()
        if idp.sso_binding == "post":
            return await self.workers.run(post_start, settings, idp, relay_state)  # XML signing: off the loop
        auth = OneLogin_Saml2_Auth(request_data(self.acs_url), settings)
        url = auth.login(return_to=relay_state)
        return SamlStart(str(auth.get_last_request_id()), "redirect", str(url))

    # ---- the ACS --------------------------------------------------------------------------------------

    def decode(self, saml_response: str) -> bytes:
        if len(saml_response) > self.config.max_response_bytes * 4 // 3 + 4:
            raise BadRequest("SAMLResponse over the size cap", reason="saml_too_large")
        try:
            return base64.b64decode(saml_response.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise BadRequest("SAMLResponse is not base64", reason="saml_not_base64") from None

    def receive(self, saml_response: str) -> Incoming:
        """Decode, guard and parse once; InResponseTo as the (not yet verified) response claims it, used
        only to look up and bind the request."""
        raw = self.decode(saml_response)
        root = guarded_parse(raw, max_bytes=self.config.max_response_bytes)
        _structure(root)
        _encryption(root)
        return Incoming(saml_response, raw, root, in_response_to_of(root))

    async def read(self, saml_response: str) -> Incoming:
        """`receive`, in a worker thread."""
        return await self.workers.run(self.receive, saml_response)

    async def finish(self, incoming: Incoming, request_id: str | None) -> SamlLogin:
        """`verify`, in a worker thread."""
        idp, settings = await self.settings()
        return await self.workers.run(self.verify, settings, idp, incoming, request_id)

    def verify(self, settings: OneLogin_Saml2_Settings, idp: IdpDescriptor, incoming: Incoming,
               request_id: str | None) -> SamlLogin:
        in_response_to = incoming.in_response_to
        if in_response_to is None and not self.config.allow_idp_initiated:
            raise TokenInvalid("unsolicited response (no InResponseTo) and IdP-initiated login is off",
                               reason="saml_unsolicited")
        if in_response_to is not None and request_id is None:
            raise TokenInvalid("InResponseTo without a request this broker sent", reason="saml_unknown_request")
        response = self._library_verify(settings, incoming, request_id)
        document = response.decrypted_document if response.encrypted else response.document
        now = self.clock()
        facts = check_assertion(document, config=self.config, idp=idp, acs_url=self.acs_url,
                                sp_entity_id=self.sp_entity_id, request_id=request_id, now=now)
        identity = read_identity(facts, self.config, evidence=Evidence("saml_response", incoming.text))
        skew = self.config.clock_skew
        ttl = (facts.not_on_or_after + skew - now).total_seconds()
        return SamlLogin(identity, facts.assertion_id, in_response_to, max(ttl, 1.0))

    def _library_verify(self, settings: OneLogin_Saml2_Settings, incoming: Incoming,
                        request_id: str | None) -> OneLogin_Saml2_Response:
        check_signature_shapes(incoming.root)  # before xmlsec sees anything, decryption included
        try:
            response = ParsedResponse(settings, incoming.raw, incoming.root)
        except Exception as exc:  # bad encryption, bad XML: the library raises all kinds
            raise TokenInvalid(f"python3-saml could not read the response: {type(exc).__name__}",
                               reason="saml_unreadable") from None
        if response.encrypted:  # what was inside the encryption passes the same guards before any check
            guard_tree(response.decrypted_document)
            _structure(response.decrypted_document)
            check_signature_shapes(response.decrypted_document)
        with cached_validation():
            try:
                response.is_valid(request_data(self.acs_url, incoming.text), request_id, raise_exceptions=True)
            except OneLogin_Saml2_ValidationError as exc:
                reason = "saml_" + _CODES.get(exc.code, "invalid")
                raise TokenInvalid(f"python3-saml: {str(exc)[:300]}", reason=reason) from None
            except Exception as exc:
                raise TokenInvalid(f"python3-saml: {type(exc).__name__}: {str(exc)[:200]}",
                                   reason="saml_invalid") from None
        return response


XENC, XENC11 = C.NS_XENC, "http://www.w3.org/2009/xmlenc11#"  # python3-saml names no XML Encryption 1.1 URI
# Content encryption: AES only (no 3DES). Key transport: RSA-OAEP only; RSA PKCS#1 v1.5 (rsa-1_5) is open to
# Bleichenbacher-style decryption oracles ("How to Break XML Encryption", CCS 2011).
DATA_ENCRYPTION = frozenset({C.AES128_CBC, C.AES192_CBC, C.AES256_CBC,
                             f"{XENC11}aes128-gcm", f"{XENC11}aes192-gcm", f"{XENC11}aes256-gcm"})
KEY_TRANSPORT = frozenset({C.RSA_OAEP_MGF1P, f"{XENC11}rsa-oaep"})


def _encryption(root: Any) -> None:
    """An encrypted assertion names strong algorithms, checked before anything is decrypted."""
    for encrypted in root.iter(f"{{{SAML}}}EncryptedAssertion"):
        data = encrypted.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod")
        if data is None:
            raise TokenInvalid("encrypted assertion without an EncryptionMethod", reason="saml_weak_encryption")
        for method in encrypted.iter(f"{{{XENC}}}EncryptionMethod"):
            key = method.getparent().tag == f"{{{XENC}}}EncryptedKey"
            if method.get("Algorithm") not in (KEY_TRANSPORT if key else DATA_ENCRYPTION):
                what = "key transport" if key else "content encryption"
                raise TokenInvalid(f"{what} {str(method.get('Algorithm'))[:80]!r} is not allowed",
                                   reason="saml_weak_encryption")


def _structure(root: Any) -> None:
    """Exactly one assertion, plain or encrypted, and it is a direct child of the Response (anything
    wrapped inside Extensions, ds:Object, Advice or another assertion counts, and is refused)."""
    if root.tag != f"{{{SAMLP}}}Response":
        raise TokenInvalid(f"root element {str(root.tag)[:80]} is not samlp:Response", reason="saml_not_response")
    found = [el for el in root.iter(f"{{{SAML}}}Assertion", f"{{{SAML}}}EncryptedAssertion")]
    if len(found) != 1:
        raise TokenInvalid(f"{len(found)} assertions in the response (exactly one is accepted)",
                           reason="saml_assertion_count")
    if found[0].getparent() is not root:
        raise TokenInvalid("the assertion is not a direct child of the Response", reason="saml_assertion_wrapped")


def relay_path(relay_state: str) -> str:
    """RelayState carries only a relative return path from a fixed allow-list (broker/return_paths.py):
    absolute URLs, `//host`, backslashes, userinfo, percent-encodings and `javascript:` never match."""
    if not is_return_path(relay_state):
        raise BadRequest(f"RelayState {relay_state[:100]!r} is not an allowed return path",
                         reason="saml_relay_state", public="The login's return address is not allowed.")
    return relay_state
