"""The development SAML IdP: pysaml2 (its own signer, through the xmlsec1 program; not the broker's code)
behind a tiny login form on loopback. Used by the demo's SAML login path and by tests/saml_sp/."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import logging
import re
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.servers import wsgi_server


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# pysaml2's schema loader (xmlschema) resets its own logger level and chats at INFO, from import on.
logging.getLogger("xmlschema").addFilter(_warnings_only)
with warnings.catch_warnings():
    # pysaml2 still names CFB by its old module path; that is its business, not the demo's output.
    warnings.filterwarnings("ignore", message=r"CFB has been moved")
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.server import Server
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
MFA_CONTEXT = "http://schemas.microsoft.com/claims/multipleauthn"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
# Attribute names as a generic IdP sends them (the demo's SAML IdP config maps these).
DEMO_SAML_USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": ["alice@example.com"], "groups": ["platform-admins", "developers"],
              "department": ["platform"], "mfa": True},
    "bob": {"email": ["bob@example.com"], "groups": ["developers"], "department": ["payments"], "mfa": False},
    "carol": {"email": ["carol@example.com"], "groups": ["contractors", "developers"],
              "department": ["external"], "mfa": False},
}
_PASSTHROUGH_MAP = 'MAP = {"identifier": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri", "fro": {}, "to": {}}\n'

def write_key_and_cert(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    """A fresh RSA key and a self-signed certificate (what an IdP publishes in its metadata)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file

_ENCRYPTION_LOCK = threading.Lock()
_SESSION_KEYS = {"aes128": "aes-128", "aes192": "aes-192", "aes256": "aes-256", "tripledes": "des-192"}


@contextmanager
def _encrypting_with(sec: Any, content: str, key_transport: str) -> Iterator[None]:
    """pysaml2 fixes the template's algorithms and xmlsec1's session key type; both replaced for one call."""
    from saml2 import entity, sigver

    session_key = next(v for k, v in _SESSION_KEYS.items() if content.rsplit("#", 1)[1].startswith(k))
    with _ENCRYPTION_LOCK:
        stock = entity.pre_encryption_part
        entity.pre_encryption_part = functools.partial(sigver.pre_encryption_part, msg_enc=content,
                                                       key_enc=key_transport)
        sec.encrypt_assertion = functools.partial(type(sec).encrypt_assertion, sec, key_type=session_key)
        try:
            yield
        finally:
            entity.pre_encryption_part = stock
            del sec.encrypt_assertion


class DevSamlIdp:
    """A pysaml2 IdP. `sp_metadata` is the broker's SP metadata (pysaml2 takes it inline)."""

    def __init__(self, url: str, workdir: Path, sp_metadata: list[str] | None = None,
                 users: Mapping[str, dict[str, Any]] = DEMO_SAML_USERS, name_form: str | None = None,
                 attribute_names: Mapping[str, str] | None = None) -> None:
        """`name_form` + `attribute_names` (identity key -> the SAML Attribute Name sent, with the key as
        FriendlyName): a pysaml2 attribute map for that NameFormat, to send attributes as a vendor does."""
        self.url, self.entity_id, self.users = url, f"{url}/metadata", users
        self.name_form = name_form
        self.sso_url = f"{url}/sso/redirect"
        self.key_file, self.cert_file = write_key_and_cert(workdir, "saml-idp", "dev-saml-idp")
        self._maps = workdir / "attributemaps"
        self._maps.mkdir(exist_ok=True)
        (self._maps / "__init__.py").write_text("")
        to = {key.lower(): name for key, name in (attribute_names or {}).items()}
        vendor = f"MAP = {{'identifier': {name_form!r}, 'fro': {{}}, 'to': {to!r}}}\n"
        text = _PASSTHROUGH_MAP if name_form is None else vendor
        # pysaml2 imports each map by its module name, once per process: one name per map text.
        name = "passthrough" if name_form is None else f"map_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        (self._maps / f"{name}.py").write_text(text)
        self.server = Server(config=self._config(self._maps, sp_metadata or []))

    def trust_sp(self, sp_metadata: list[str]) -> None:
        """Register SPs by their metadata (pysaml2 takes the broker's SP metadata inline)."""
        self.server = Server(config=self._config(self._maps, sp_metadata))

    def _config(self, maps: Path, sp_metadata: list[str]) -> IdPConfig:
        xmlsec = shutil.which("xmlsec1")
        if xmlsec is None:
            raise RuntimeError("xmlsec1 not found: apt-get install xmlsec1 (pysaml2 signs through it)")
        config = IdPConfig()
        config.load({
            "entityid": self.entity_id, "key_file": str(self.key_file), "cert_file": str(self.cert_file),
            "xmlsec_binary": xmlsec, "attribute_map_dir": str(maps), "metadata": {"inline": sp_metadata},
            "service": {"idp": {
                "name": "Development SAML IdP (pysaml2)",
                "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                # Inside service.idp: at the top level pysaml2 ignores them and signs with SHA-1.
                "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
                "sign_assertion": True, "sign_response": False, "want_authn_requests_signed": False,
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                       **({"name_form": self.name_form} if self.name_form else {})}},
            }},
        })
        return config

    @property
    def certificate(self) -> str:
        return self.cert_file.read_text()

    def response_xml(self, user: str, *, in_response_to: str | None, destination: str, sp_entity_id: str,
                     mfa: bool | None = None, encryption: tuple[str, str] | None = None, **overrides: Any) -> str:
        """A signed Response (assertion signed by pysaml2 through xmlsec1) for one of the users. With
        `encrypt_assertion=True`, `encryption` = (content algorithm, key transport) replaces pysaml2's fixed
        choice (3DES, RSA-OAEP), which it offers no setting for."""
        if encryption is not None:
            with _encrypting_with(self.server.sec, *encryption):
                return self.response_xml(user, in_response_to=in_response_to, destination=destination,
                                         sp_entity_id=sp_entity_id, mfa=mfa, **overrides)
        claims = dict(self.users[user])
        use_mfa = claims.pop("mfa", False) if mfa is None else mfa
        claims.pop("mfa", None)
        email = claims["email"][0]
        kwargs: dict[str, Any] = {
            "identity": claims, "in_response_to": in_response_to, "destination": destination,
            "sp_entity_id": sp_entity_id, "name_id": NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            "authn": {"class_ref": MFA_CONTEXT if use_mfa else PASSWORD_CONTEXT},
            "sign_assertion": True, "sign_response": False,
        }
        kwargs.update(overrides)
        return str(self.server.create_authn_response(**kwargs))

    def resign(self, xml: str, mutate: Callable[[Any], None] | None = None, *, key: Path | None = None,
               cert: Path | None = None, sha1: bool = False) -> str:
        """Tamper with a signed response, then sign its assertion again with pysaml2's xmlsec1 backend (this
        IdP's key unless another is given; `cert` replaces the KeyInfo certificate). For attack tests."""
        root = etree.fromstring(xml.encode())
        if mutate is not None:
            mutate(root)
        assertion = root.find(f"{{{SAML_NS}}}Assertion")
        signature = assertion.find(f"{{{DS_NS}}}Signature")
        if sha1:
            signature.find(f".//{{{DS_NS}}}SignatureMethod").set("Algorithm", f"{DS_NS}rsa-sha1")
            signature.find(f".//{{{DS_NS}}}DigestMethod").set("Algorithm", f"{DS_NS}sha1")
        if cert is not None:
            body = "".join(line for line in cert.read_text().splitlines() if not line.startswith("-----"))
            signature.find(f".//{{{DS_NS}}}X509Certificate").text = body
        text = etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
        return str(self.server.sec.crypto.sign_statement(
            text, f"{SAML_NS}:Assertion", str(key or self.key_file), assertion.get("ID")))

    # ---- the WSGI app: GET the SSO URL (AuthnRequest) -> a login form; POST it -> the ACS form -------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/sso/redirect" and method == "GET":
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            return self._page(start_response, 200, _login_form(query.get("SAMLRequest", ""),
                                                               query.get("RelayState", "")))
        if path == "/sso/login" and method == "POST":
            size = min(int(environ.get("CONTENT_LENGTH") or 0), 64 * 1024)
            form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}
            return self._answer(start_response, form)
        if path == "/metadata":
            return self._page(start_response, 200, self.metadata_xml(), "application/samlmetadata+xml")
        return self._page(start_response, 404, "not found")

    def metadata_xml(self) -> str:
        from saml2.metadata import create_metadata_string

        return str(create_metadata_string(None, config=self.server.config, sign=False).decode())

    def _answer(self, start_response: Any, form: dict[str, str]) -> list[bytes]:
        user = form.get("username", "")
        if user not in self.users:
            return self._page(start_response, 401, "unknown user")
        request = self.server.parse_authn_request(form.get("SAMLRequest", ""), BINDING_HTTP_REDIRECT).message
        acs = str(request.assertion_consumer_service_url)
        xml = self.response_xml(user, in_response_to=str(request.id), destination=acs,
                                sp_entity_id=str(request.issuer.text))
        encoded = base64.b64encode(xml.encode()).decode()
        return self._page(start_response, 200, _post_form(acs, encoded, form.get("RelayState", "")))

    @staticmethod
    def _page(start_response: Any, status: int, body: str, media: str = "text/html") -> list[bytes]:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}[status]
        start_response(f"{status} {reason}", [("Content-Type", f"{media}; charset=utf-8")])
        return [body.encode()]

def _login_form(saml_request: str, relay_state: str) -> str:
    return (f'<!doctype html><title>Dev SAML IdP</title><h1>Development SAML IdP (pysaml2)</h1>'
            f'<form method="post" action="/sso/login"><label>User (alice, bob, carol) '
            f'<input name="username" autofocus></label>'
            f'<input type="hidden" name="SAMLRequest" value="{html.escape(saml_request)}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            f'<button>Sign in</button></form>')

def _post_form(acs: str, saml_response: str, relay_state: str) -> str:
    """The HTTP-POST binding: a form the browser submits to the SP's ACS."""
    return (f'<!doctype html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{saml_response}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            f'<noscript><button>Continue</button></noscript></form>')

def saml_idp_config(idp_id: str, url: str, certificate: str) -> dict[str, Any]:
    """The broker's idp_configs entry for the dev IdP (inline entity id + SSO URL + certificate)."""
    return {
        "id": idp_id, "type": "saml", "name": "Development SAML IdP (pysaml2)",
        "entity_id": f"{url}/metadata", "sso_url": f"{url}/sso/redirect", "certificates": [certificate],
        "name_id_format": "emailAddress", "want_assertions_signed": True,  # pysaml2 signs the assertion
        "attributes": {"email": "email", "groups": "groups", "email_trusted": True,
                       "aliases": {"department": "department"}},
        "mfa": {"authn_context": [MFA_CONTEXT]},
    }

@contextmanager
def run_dev_saml_idp(idp: DevSamlIdp, port: int) -> Iterator[str]:
    with wsgi_server(idp, port):
        yield idp.url

def browser_login(client: httpx.Client, broker_url: str, idp_id: str, user: str) -> httpx.Response:
    """What a browser does: GET /login/{idp} -> the IdP's form -> sign in -> POST the ACS form."""
    start = client.get(f"{broker_url}/login/{idp_id}")
    if start.status_code != 303:
        raise AssertionError(f"/login/{idp_id} answered {start.status_code}: {start.text[:200]}")
    form_page = client.get(start.headers["location"])
    fields = dict(re.findall(r'name="(SAMLRequest|RelayState)" value="([^"]*)"', form_page.text))
    answer = client.post(urljoin(start.headers["location"], "/sso/login"),
                         data={"username": user, **{k: html.unescape(v) for k, v in fields.items()}})
    acs = html.unescape(re.search(r'action="([^"]+)"', answer.text).group(1))  # type: ignore[union-attr]
    posted = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', answer.text))
    return client.post(acs, data={k: html.unescape(v) for k, v in posted.items()})
