"""The development SAML IdP: pysaml2 (its own signer, through the xmlsec1 program; not the broker's code)
behind a tiny login form on loopback. Used by the demo's SAML login path and by tests/saml_sp/."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import logging
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
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
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
    from saml2.assertion import Policy
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


XENC = "http://www.w3.org/2001/04/xmlenc#"


@dataclass(frozen=True)
class AwsApp:
    """The IdP's "AWS" app (the IdP registered in IAM as a SAML provider) with its Single sign-on URL, where the
    browser posts the response (its Destination), set to the broker's ACS: the bearer Recipient and the Audiences
    stay AWS's (Okta: a "Recipient URL" apart from the "Single sign-on URL"; an assertion with several Audiences).
    `encrypt_to`: the assertion encrypted (AES-256, RSA-OAEP) to this SP certificate (PEM), which AWS cannot read.
    `destination`: false leaves the Destination out (the Response is unsigned, as SAML then allows)."""

    recipient: str = "https://signin.aws.amazon.com/saml"
    audiences: tuple[str, ...] = ("urn:amazon:webservices",)
    encrypt_to: str | None = None
    destination: bool = True


class _AudiencePolicy(Policy):  # type: ignore[misc]
    """pysaml2 puts the SP's entity id alone in the Audience; an app naming other Audiences overrides the policy's
    public `conditions` (pysaml2 takes a policy per response through `release_policy`)."""

    def __init__(self, restrictions: dict[str, Any], mds: Any, audiences: tuple[str, ...]) -> None:
        super().__init__(restrictions, mds)
        self.audiences = audiences

    def conditions(self, sp_entity_id: str) -> Any:
        conditions = super().conditions(sp_entity_id)
        conditions.audience_restriction = [saml.AudienceRestriction(
            audience=[saml.Audience(text=audience) for audience in self.audiences])]
        return conditions


Binding = Literal["redirect", "post"]
BINDINGS: dict[Binding, str] = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST}


class DevSamlIdp:
    """A pysaml2 IdP. `sp_metadata` is the broker's SP metadata (pysaml2 takes it inline). `bindings`: the
    SSO bindings it accepts and publishes in its metadata (HTTP-Redirect at /sso/redirect, HTTP-POST at
    /sso/post). With `want_authn_requests_signed`, its metadata says so and pysaml2 refuses an AuthnRequest
    whose signature it cannot verify against the SP's metadata."""

    name = "Development SAML IdP (pysaml2)"

    def __init__(self, url: str, workdir: Path, sp_metadata: list[str] | None = None,
                 users: Mapping[str, dict[str, Any]] = DEMO_SAML_USERS,
                 bindings: tuple[Binding, ...] = ("redirect", "post"), want_authn_requests_signed: bool = False,
                 name_form: str | None = None, attribute_names: Mapping[str, str] | None = None) -> None:
        """`name_form` + `attribute_names` (identity key -> the SAML Attribute Name sent, with the key as
        FriendlyName): a pysaml2 attribute map for that NameFormat, to send attributes as a vendor does."""
        self.url, self.entity_id, self.users = url, f"{url}/metadata", users
        self.bindings, self.want_authn_requests_signed = bindings, want_authn_requests_signed
        self.name_form = name_form
        self.sso_urls: dict[Binding, str] = {"redirect": f"{url}/sso/redirect", "post": f"{url}/sso/post"}
        self.sso_url = self.sso_urls[bindings[0]]  # the preferred one (HTTP-Redirect when offered)
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
        # SP entity id -> the IdP's AWS app answering that SP's AuthnRequests (tests set these).
        self.aws_apps: dict[str, AwsApp] = {}

    def trust_sp(self, sp_metadata: list[str]) -> None:
        """Register SPs by their metadata (pysaml2 takes the broker's SP metadata inline)."""
        self.server = Server(config=self._config(self._maps, sp_metadata))

    @property
    def _policy(self) -> dict[str, Any]:
        return {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                            **({"name_form": self.name_form} if self.name_form else {})}}

    def _config(self, maps: Path, sp_metadata: list[str]) -> IdPConfig:
        xmlsec = shutil.which("xmlsec1")
        if xmlsec is None:
            raise RuntimeError("xmlsec1 not found: apt-get install xmlsec1 (pysaml2 signs through it)")
        config = IdPConfig()
        config.load({
            "entityid": self.entity_id, "key_file": str(self.key_file), "cert_file": str(self.cert_file),
            "xmlsec_binary": xmlsec, "attribute_map_dir": str(maps), "metadata": {"inline": sp_metadata},
            "service": {"idp": {
                "name": self.name,
                "endpoints": {"single_sign_on_service": [(self.sso_urls[b], BINDINGS[b]) for b in self.bindings]},
                # Inside service.idp: at the top level pysaml2 ignores them and signs with SHA-1.
                "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
                "sign_assertion": True, "sign_response": False,
                "want_authn_requests_signed": self.want_authn_requests_signed,
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "policy": self._policy,
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

    def aws_app_response(self, app: AwsApp, user: str, *, in_response_to: str | None, destination: str,
                         sp_entity_id: str) -> str:
        """The AWS app's response, posted to `destination`: pysaml2's own `farg` (the bearer confirmation's
        Recipient, apart from the Destination) and a release policy naming the app's Audiences."""
        farg = Server.update_farg(in_response_to, app.recipient)
        policy = _AudiencePolicy(self._policy, self.server.metadata, app.audiences)
        encrypt: dict[str, Any] = {} if app.encrypt_to is None else {
            "encrypt_assertion": True, "encrypt_cert_assertion": app.encrypt_to,
            "encrypt_assertion_self_contained": False, "encryption": (f"{XENC}aes256-cbc", f"{XENC}rsa-oaep-mgf1p")}
        xml = self.response_xml(user, in_response_to=in_response_to, destination=destination,
                                sp_entity_id=sp_entity_id, farg=farg, release_policy=policy, **encrypt)
        if app.destination:
            return xml
        root = etree.fromstring(xml.encode())
        del root.attrib["Destination"]  # the Response is unsigned (pysaml2 signs the assertion): nothing breaks
        return str(etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode())

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

    # ---- the WSGI app: the AuthnRequest (GET /sso/redirect, or POST /sso/post) -> a login form; POST the
    # form -> the ACS form ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/sso/redirect" and method == "GET" and "redirect" in self.bindings:
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            return self._page(start_response, 200, _login_form(query.get("SAMLRequest", ""),
                                                               query.get("RelayState", ""), "redirect"))
        if path == "/sso/post" and method == "POST" and "post" in self.bindings:
            return self._post_binding(start_response, _read_form(environ))
        if path == "/sso/login" and method == "POST":
            return self._answer(start_response, _read_form(environ))
        if path == "/metadata":
            return self._page(start_response, 200, self.metadata_xml(), "application/samlmetadata+xml")
        return self._page(start_response, 404, "not found")

    def metadata_xml(self) -> str:
        from saml2.metadata import create_metadata_string

        return str(create_metadata_string(None, config=self.server.config, sign=False).decode())

    def parse_request(self, saml_request: str, binding: Binding) -> Any:
        """pysaml2's own parse of an AuthnRequest in that binding: the signature checked when this IdP wants
        signed requests (IncorrectlySigned otherwise), Destination against its endpoints."""
        parsed = self.server.parse_authn_request(saml_request, BINDINGS[binding])
        if parsed is None:  # pysaml2 could not make a request of it
            raise ValueError("pysaml2 refused the AuthnRequest")
        return parsed.message

    def _post_binding(self, start_response: Any, form: dict[str, str]) -> list[bytes]:
        """The HTTP-POST binding: pysaml2 reads (and, when wanted, verifies) the request on arrival."""
        try:
            self.parse_request(form.get("SAMLRequest", ""), "post")
        except Exception as exc:  # pysaml2 raises all kinds; the IdP answers 403 with the kind
            return self._page(start_response, 403, f"AuthnRequest refused: {html.escape(type(exc).__name__)}")
        return self._page(start_response, 200, _login_form(form.get("SAMLRequest", ""),
                                                           form.get("RelayState", ""), "post"))

    def _answer(self, start_response: Any, form: dict[str, str]) -> list[bytes]:
        user = form.get("username", "")
        if user not in self.users:
            return self._page(start_response, 401, "unknown user")
        binding: Binding = "post" if form.get("binding") == "post" else "redirect"
        try:
            request = self.parse_request(form.get("SAMLRequest", ""), binding)
        except Exception as exc:
            return self._page(start_response, 403, f"AuthnRequest refused: {html.escape(type(exc).__name__)}")
        acs, sp_entity_id = str(request.assertion_consumer_service_url), str(request.issuer.text)
        app = self.aws_apps.get(sp_entity_id)
        if app is None:
            xml = self.response_xml(user, in_response_to=str(request.id), destination=acs, sp_entity_id=sp_entity_id)
        else:
            xml = self.aws_app_response(app, user, in_response_to=str(request.id), destination=acs,
                                        sp_entity_id=sp_entity_id)
        encoded = base64.b64encode(xml.encode()).decode()
        return self._page(start_response, 200, _post_form(acs, encoded, form.get("RelayState", "")))

    @staticmethod
    def _page(start_response: Any, status: int, body: str, media: str = "text/html") -> list[bytes]:
        reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}[status]
        start_response(f"{status} {reason}", [("Content-Type", f"{media}; charset=utf-8")])
        return [body.encode()]

def _read_form(environ: dict[str, Any]) -> dict[str, str]:
    size = min(int(environ.get("CONTENT_LENGTH") or 0), 64 * 1024)
    return {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}


def _login_form(saml_request: str, relay_state: str, binding: Binding) -> str:
    return (f'<!doctype html><title>Dev SAML IdP</title><h1>Development SAML IdP (pysaml2)</h1>'
            f'<form method="post" action="/sso/login"><label>User (alice, bob, carol) '
            f'<input name="username" autofocus></label>'
            f'<input type="hidden" name="SAMLRequest" value="{html.escape(saml_request)}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            f'<input type="hidden" name="binding" value="{binding}">'
            f'<button>Sign in</button></form>')

def _post_form(acs: str, saml_response: str, relay_state: str) -> str:
    """The HTTP-POST binding: a form the browser submits to the SP's ACS (on load, or by its button)."""
    return (f'<!doctype html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{saml_response}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            f'<button>Continue</button></form>')  # no <noscript>: with scripting off a browser still parses it as text

def saml_idp_config(idp_id: str, url: str, certificate: str) -> dict[str, Any]:
    """The broker's idp_configs entry for the dev IdP (inline entity id + SSO URL + certificate)."""
    return {
        "id": idp_id, "type": "saml", "name": DevSamlIdp.name,
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

@dataclass
class HtmlForm:
    action: str
    method: str
    fields: dict[str, str]


class _FormReader(HTMLParser):
    """The forms of a page as a browser reads them: action, method and every named input (values unescaped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(HtmlForm(named.get("action", ""), named.get("method", "get").lower(), {}))
        elif tag == "input" and self.forms and "name" in named:
            self.forms[-1].fields[named["name"]] = named.get("value", "")


def read_forms(page: str) -> list[HtmlForm]:
    reader = _FormReader()
    reader.feed(page)
    reader.close()
    return reader.forms


def submit(client: httpx.Client, page: httpx.Response, **extra: str) -> httpx.Response:
    """Submit the page's only form as a browser does: its action resolved against the page's URL, POST."""
    [form] = read_forms(page.text)
    if form.method != "post":
        raise AssertionError(f"expected a POST form on {page.url}, found {form.method}")
    return client.post(urljoin(str(page.url), form.action), data={**form.fields, **extra})


def idp_login_page(client: httpx.Client, broker_url: str, idp_id: str) -> httpx.Response:
    """GET /login/{idp} and follow the AuthnRequest to the IdP: the Redirect binding's 303, or the HTTP-POST
    binding's page (its form posted as the broker's script or its button would). Returns the IdP's page."""
    start = client.get(f"{broker_url}/login/{idp_id}")
    if start.status_code == 303:
        return client.get(start.headers["location"])
    if start.status_code == 200 and "text/html" in start.headers.get("content-type", ""):
        return submit(client, start)
    raise AssertionError(f"/login/{idp_id} answered {start.status_code}: {start.text[:200]}")


def browser_login(client: httpx.Client, broker_url: str, idp_id: str, user: str) -> httpx.Response:
    """What a browser does: GET /login/{idp} -> (the POST page ->) the IdP's form -> sign in -> POST the ACS
    form."""
    form_page = idp_login_page(client, broker_url, idp_id)
    if form_page.status_code != 200:
        raise AssertionError(f"the IdP answered {form_page.status_code}: {form_page.text[:200]}")
    answer = submit(client, form_page, username=user)
    if answer.status_code != 200:
        raise AssertionError(f"the IdP answered {answer.status_code}: {answer.text[:200]}")
    return submit(client, answer)
