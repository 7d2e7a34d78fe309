"""Shared pieces of the fuzz tests (tests/security/test_fuzz_*.py): bounded hypothesis settings, the
never-a-500 check with its audit event, and the two live targets (a broker with the pysaml2 IdP, a broker
with token IdPs and a stub STS), each served over real loopback HTTP as the other suites do."""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import hypothesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from lxml import etree  # type: ignore[import-untyped]

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import DevSamlIdp, run_dev_saml_idp, saml_idp_config
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, write_config
from broker.devstack.stub_sts import running_stub_sts
from broker.web.app import create_app
from tests.support.saml_login import authn_request_id
from tests.support.token_issuer import TokenIssuer, running_issuer

FUZZ_PROFILE = "fuzz"
REPO = Path(__file__).resolve().parents[2]
# What a stack trace or an internal detail looks like in a body.
LEAKS = ("Traceback (most recent call last)", 'File "/', "site-packages", "lxml.etree", "Error:", "<module>")


def fuzzing() -> bool:
    return os.environ.get("HYPOTHESIS_PROFILE") == FUZZ_PROFILE


def fuzz_settings(examples: int) -> settings:
    """`examples` under `make test` (bounded: the whole fuzz part adds seconds), the fuzz profile's count
    and deadline under `make fuzz`. A per-example deadline even when bounded: a post that takes seconds is
    itself a finding (the ACS freeze was one)."""
    if fuzzing():
        return settings(settings.get_profile(FUZZ_PROFILE))
    return settings(max_examples=examples, deadline=timedelta(seconds=5), print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class AuditTail:
    """The audit events written since the last call (the file only grows; read from where we stopped)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, path.stat().st_size if path.exists() else 0

    def new_events(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines()]


def assert_handled(response: httpx.Response, audit: AuditTail, *, oauth: bool = False) -> None:
    """Never a 500, never a stack trace; a refusal carries an error id whose audit event names its reason."""
    assert response.status_code < 500 or response.status_code in (502, 503, 504), (
        response.status_code, response.text[:300])
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[:500])
    events = audit.new_events()
    if response.status_code < 400:
        _event(f"{response.status_code}")
        return
    body = _refusal_body(response, oauth)
    error = body["error"]
    assert error not in ("internal_error", "server_error"), body
    matching = [e for e in events if e.get("error_id") == body["error_id"]]
    assert len(matching) == 1, (body, events[-3:])
    audited = matching[0]
    assert audited["event"] == "request_failed" and audited["status"] == response.status_code, audited
    assert audited["reason"] and audited["reason"] != "internal_error", audited
    if not oauth and error is not None:
        assert audited["reason"] == error, (audited, body)
    _event(f"{response.status_code} {audited['reason']}")


_HTML_ERROR_ID = re.compile(r"error id <code>([0-9a-f]+)</code>")


def _refusal_body(response: httpx.Response, oauth: bool) -> dict[str, Any]:
    """The refusal's JSON body, or for a browser (HTML error page) its error id (the page names no reason)."""
    if response.headers.get("content-type", "").startswith("text/html"):
        match = _HTML_ERROR_ID.search(response.text)
        assert match and f"Status {response.status_code}" in response.text, response.text[:500]
        return {"error": None, "error_id": match.group(1)}
    body: dict[str, Any] = response.json()
    assert body["error_id"] and (body["error_description"] if oauth else body["message"]), body
    return body


def _event(label: str) -> None:
    """The spread of answers, shown by pytest --hypothesis-show-statistics (outside a test: nothing)."""
    if currently_in_test_context():
        hypothesis.event(label)


# ---- the SAML target ----------------------------------------------------------------------------------


@dataclass
class SamlTarget:
    url: str
    idp: DevSamlIdp
    audit_path: Path
    genuine_open: str = field(repr=False)  # a signed response for `corpopen` (IdP-initiated login on), no InResponseTo

    def acs(self, idp: str) -> str:
        return f"{self.url}/saml/{idp}/acs"

    def signed(self, idp: str, request_id: str | None, user: str = "alice") -> str:
        return self.idp.response_xml(user, in_response_to=request_id, destination=self.acs(idp),
                                     sp_entity_id=f"{self.url}/saml/{idp}/metadata")

    def start(self, client: httpx.Client, idp: str = "corp") -> str:
        """GET /login/{idp}: the AuthnRequest ID the broker sent (read as the IdP reads it)."""
        return authn_request_id(client, self.url, idp)


@contextmanager
def saml_target(work: Path) -> Iterator[SamlTarget]:
    """The broker (real config files, real HTTP) with `corp` (SP-initiated only) and `corpopen` (IdP-initiated
    on), and the pysaml2 IdP. No AWS: a login that passes every check ends at the role picker."""
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_port, idp_port = free_port(), free_port()
    url = f"http://{LOOPBACK}:{broker_port}"
    idp = DevSamlIdp(f"http://{LOOPBACK}:{idp_port}", work / "idp")
    corp = saml_idp_config("corp", idp.url, idp.certificate)
    corpopen = {**saml_idp_config("corpopen", idp.url, idp.certificate), "allow_idp_initiated": True}
    idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(c), url, None).sp_metadata() for c in (corp, corpopen)])
    dead = f"http://{LOOPBACK}:{free_port()}"
    unlimited = {"rate_limits": {"login_starts": 10**6, "acs_posts": 10**6}}  # fuzz the checks, not the limits
    config = write_config(work / "broker", url, dead, LocalAws(dead, dead, "123456789012"), DEMO_RULES,
                          {"corp": corp, "corpopen": corpopen}, unlimited)
    broker_settings = load_settings(config)
    with run_dev_saml_idp(idp, idp_port), asgi_server(create_app(broker_settings), broker_port):
        target = SamlTarget(url, idp, Path(broker_settings.audit.path), "")
        target.genuine_open = target.signed("corpopen", None)
        yield target


# ---- the token exchange target ------------------------------------------------------------------------

TOKEN_RULES = REPO / "tests" / "token_exchange" / "rules.yaml"
ACCOUNT = "111122223333"
MOBILE_AUD, ANDROID = "mobile-server", "mobile-android"


@dataclass
class TokenTarget:
    url: str
    issuer: TokenIssuer
    audit_path: Path

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return self.issuer.claims(**{"sub": f"u{secrets.token_hex(6)}", "aud": MOBILE_AUD, "azp": ANDROID,
                                     **overrides})


@contextmanager
def token_target(work: Path) -> Iterator[TokenTarget]:
    """A broker with one `type: token` IdP (the hand-made issuer, PyJWT-signed tokens) whose STS is the stub
    (answers every call with fresh credentials), so a genuine exchange ends in a 200."""
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    with ExitStack() as stack:
        issuer = stack.enter_context(running_issuer())
        sts_port = free_port()
        stack.enter_context(running_stub_sts(sts_port, delay=0.0))
        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        idps = {"mobile": {"id": "mobile", "type": "token", "name": "Mobile app", "issuer": issuer.url,
                           "client_ids": [MOBILE_AUD], "authorized_parties": [ANDROID], "provides": ["plan"]},
                "oncemobile": {"id": "oncemobile", "type": "token", "issuer": issuer.url,
                               "jwks_uri": f"{issuer.url}/jwks", "client_ids": ["once-server"], "replay": "once"}}
        aws = LocalAws(f"http://{LOOPBACK}:{sts_port}", f"http://{LOOPBACK}:{free_port()}", ACCOUNT)
        overrides = {"rate_limits": {"token_exchange_per_client": 10**6, "token_exchange_per_subject": 10**6},
                     "token_exchange": {"cors_origins": ["https://app.example.com"]}}
        broker_settings = load_settings(write_config(work, url, issuer.url, aws, TOKEN_RULES, idps, overrides))
        stack.enter_context(asgi_server(create_app(broker_settings), port))
        yield TokenTarget(url, issuer, Path(broker_settings.audit.path))


# ---- XML mutations (the ACS and the metadata fuzz) ---------------------------------------------------

NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#", "xsl": "http://www.w3.org/1999/XSL/Transform",
      "xenc": "http://www.w3.org/2001/04/xmlenc#", "xsi": "http://www.w3.org/2001/XMLSchema-instance",
      "md": "urn:oasis:names:tc:SAML:2.0:metadata"}
# XML syntax worth splicing in anywhere: markup openers and closers, DTD and entity syntax, comments, PIs,
# CDATA, character references (valid, invalid, out of range), BOMs, NULs, stray bytes of multi-byte UTF-8.
SNIPPETS = [b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&lt;", b"&#0;", b"&#x110000;", b"&#65;", b"&x;", b'"',
            b"'", b"<!--c-->", b"<?pi x?>", b"<![CDATA[x]]>", b"]]>", b'<!DOCTYPE r [<!ENTITY x "y">]>',
            b'<!ENTITY x SYSTEM "file:///etc/passwd">', b'<!ATTLIST saml:NameID Format CDATA "z">',
            b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"\xc3", b"\xe2\x80", b"\xf4\x90\x80\x80", b"\r\n", b"\t",
            b'<?xml version="1.0" encoding="UTF-16"?>', b'xmlns:saml="urn:x"', b' ID="dup"', b"<saml:Assertion>",
            b"<ds:Signature/>", b"%", b"\\", b"\x1b[0m"]
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be", "latin-1", "cp1252", "utf-8-sig",
             "ascii", "utf-7"]
TAGS = [f"{{{NS['saml']}}}{t}" for t in ("Assertion", "Attribute", "AttributeValue", "NameID", "Subject",
                                          "Conditions", "Audience", "Advice", "EncryptedAssertion", "Issuer")]
TAGS += [f"{{{NS['samlp']}}}{t}" for t in ("Response", "Extensions", "Status", "StatusCode")]
TAGS += [f"{{{NS['ds']}}}{t}" for t in ("Signature", "Reference", "Transform", "Object", "KeyInfo", "XPath")]
TAGS += [f"{{{NS['md']}}}{t}" for t in ("EntityDescriptor", "IDPSSODescriptor", "SingleSignOnService",
                                        "KeyDescriptor", "EntitiesDescriptor")]
TAGS += [f"{{{NS['ds']}}}X509Certificate", f"{{{NS['ds']}}}X509Data"]
TAGS += [f"{{{NS['xsl']}}}stylesheet", f"{{{NS['xenc']}}}EncryptedData", "plain", "{urn:x}other"]
ATTRS = ["ID", "InResponseTo", "Destination", "Recipient", "NotOnOrAfter", "NotBefore", "IssueInstant",
         "Algorithm", "URI", "Format", "Name", "NameFormat", "Version", "Method", "Value",
         f"{{{NS['xsi']}}}type", f"{{{NS['xsi']}}}nil", "{http://www.w3.org/XML/1998/namespace}space", "Id",
         "Location", "Binding", "entityID", "use", "WantAuthnRequestsSigned", "protocolSupportEnumeration"]
XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).map(
    lambda s: "".join(c for c in s if c in "\t\n\r" or (ord(c) >= 0x20 and c not in "\ufffe\uffff")))
VALUES = st.one_of(XML_TEXT, st.sampled_from(["", "#", "#id-evil", "2.0", "2099-01-01T00:00:00Z",
                                              "1970-01-01T00:00:00Z", "not-a-date", "xs:string", "true",
                                              "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                                              "http://www.w3.org/TR/1999/REC-xslt-19991116",
                                              "http://www.w3.org/TR/1999/REC-xpath-19991116",
                                              "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "signing",
                                              "javascript:alert(1)", "file:///etc/passwd", "https://", "MIIB"]))


# ---- mutations: each takes the document bytes and returns new bytes ----------------------------------

Mutation = Callable[[bytes], bytes]


def _flip(edits: list[tuple[float, int]]) -> Mutation:
    def apply(xml: bytes) -> bytes:
        out = bytearray(xml)
        for where, mask in edits if out else []:
            out[int(where * (len(out) - 1))] ^= mask
        return bytes(out)
    return apply


def _splice(where: float, snippet: bytes, cut: int) -> Mutation:
    def apply(xml: bytes) -> bytes:
        at = int(where * len(xml))
        return xml[:at] + snippet + xml[at + cut:]
    return apply


def _truncate(keep: float) -> Mutation:
    return lambda xml: xml[: int(keep * len(xml))]


def _reencode(encoding: str, declare: str | None) -> Mutation:
    def apply(xml: bytes) -> bytes:
        text = xml.decode("utf-8", "replace")
        if text.startswith("<?xml") and "?>" in text:
            text = text[text.index("?>") + 2:]
        if declare is not None:
            text = f'<?xml version="1.0" encoding="{declare}"?>' + text
        return text.encode(encoding, "replace")
    return apply


def _tree_edit(op: str, pick: float, tag: str, attr: str, value: str) -> Mutation:
    def apply(xml: bytes) -> bytes:
        try:
            root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            return xml
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        el = elements[int(pick * (len(elements) - 1))]
        parent = el.getparent()
        if op == "child":
            etree.SubElement(el, tag).text = value
        elif op == "attr":
            el.set(attr, value)
        elif op == "text":
            el.text = value
        elif op == "tail" and parent is not None:
            el.tail = value
        elif op == "remove" and parent is not None:
            parent.remove(el)
        elif op == "duplicate" and parent is not None:
            el.addnext(copy.deepcopy(el))
        elif op == "wrap" and parent is not None:
            wrapper = etree.Element(tag)
            el.addprevious(wrapper)
            wrapper.append(el)
        elif op == "hoist" and parent is not None:
            root.append(copy.deepcopy(el))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return apply


UNIT = st.floats(0, 1, allow_nan=False)
TREE_EDITS = st.builds(_tree_edit, st.sampled_from(["child", "attr", "text", "tail", "remove", "duplicate", "wrap",
                                                    "hoist"]), UNIT, st.sampled_from(TAGS), st.sampled_from(ATTRS),
                       VALUES)
MUTATIONS: st.SearchStrategy[Mutation] = st.one_of(
    st.lists(st.tuples(UNIT, st.integers(1, 255)), min_size=1, max_size=6).map(_flip),
    st.builds(_splice, UNIT, st.one_of(st.sampled_from(SNIPPETS), st.binary(max_size=24)), st.integers(0, 16)),
    st.builds(_truncate, UNIT),
    st.builds(_reencode, st.sampled_from(ENCODINGS), st.one_of(st.none(), st.sampled_from([*ENCODINGS, "bogus"]))),
    TREE_EDITS,
)


def mutated(genuine: bytes) -> st.SearchStrategy[bytes]:
    def chain(mutations: list[Mutation]) -> bytes:
        xml = genuine
        for mutation in mutations:
            xml = mutation(xml)
        return xml
    # Half the chains are tree edits only (well-formed, signed content changed), half anything.
    edits = st.one_of(st.lists(TREE_EDITS, min_size=1, max_size=3), st.lists(MUTATIONS, min_size=1, max_size=3))
    return edits.map(chain)
