"""Metadata as federations publish it, for the aggregate and signed-metadata tests: aggregates around real
pysaml2 IdP metadata with decoy entities, signed by xmlsec1 through pysaml2's own signer (not our code),
served from a loopback HTTP server whose document a test can swap."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from saml2.sigver import CryptoBackendXmlSec1, pre_signature_part
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from broker.devstack.servers import http_server

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XPATH_TRANSFORM = "http://www.w3.org/TR/1999/REC-xpath-19991116"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def cert_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))


def idp_entity(entity_id: str, certificates: list[str], *, sso: str = "https://idp.example.org/sso",
               uses: list[str | None] | None = None, valid_until: str | None = None) -> str:
    """An IdP EntityDescriptor; `uses` gives each certificate's KeyDescriptor use (None: no attribute)."""
    keys = "".join(
        f'<md:KeyDescriptor{"" if use is None else f" use={chr(34)}{use}{chr(34)}"}><ds:KeyInfo><ds:X509Data>'
        f"<ds:X509Certificate>{cert_body(cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for cert, use in zip(certificates, uses or ["signing"] * len(certificates), strict=True))
    until = f' validUntil="{valid_until}"' if valid_until else ""
    return (f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}"{until}>'
            f'<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}'
            f'<md:SingleSignOnService Binding="{REDIRECT}" Location="{sso}"/></md:IDPSSODescriptor>'
            "</md:EntityDescriptor>")


def sp_entity(entity_id: str) -> str:
    return (f'<md:EntityDescriptor xmlns:md="{MD}" entityID="{entity_id}"><md:SPSSODescriptor '
            'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService '
            f'Binding="{POST}" Location="https://sp.example.org/acs" index="0"/></md:SPSSODescriptor>'
            "</md:EntityDescriptor>")


def _body(xml: str) -> str:
    """An entity without its XML declaration, to place inside an aggregate."""
    data: bytes = etree.tostring(etree.fromstring(xml.encode()))
    return data.decode()


def aggregate(*parts: str | list[str], root_id: str = "_federation20261203", valid_until: str | None = None,
              name: str = "https://federation.example.org") -> str:
    """An EntitiesDescriptor; a list among the parts becomes a nested EntitiesDescriptor (as eduGAIN and
    InCommon nest their groups)."""
    def inner(items: tuple[str | list[str], ...]) -> str:
        return "".join(f'<md:EntitiesDescriptor Name="{name}/group">{inner(tuple(p))}</md:EntitiesDescriptor>'
                       if isinstance(p, list) else _body(p) for p in items)
    until = f' validUntil="{valid_until}"' if valid_until else ""
    return (f'<md:EntitiesDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" ID="{root_id}" Name="{name}"{until}>'
            f"{inner(parts)}</md:EntitiesDescriptor>")


def sign(xml: str, key: Path, cert: Path, *, reference_uri: str | None = None,
         template: Callable[[Any], None] | None = None) -> str:
    """Sign the document's root with xmlsec1 (pysaml2's CryptoBackendXmlSec1): a Signature template as
    pysaml2 writes it (enveloped + exclusive c14n, RSA-SHA256), placed first in the root as the metadata
    schema wants. `reference_uri` replaces "#ID"; `template` edits the template before xmlsec1 signs."""
    root = etree.fromstring(xml.encode())
    root_id = root.get("ID")
    if root_id is None:
        root_id = "_signed-metadata"
        root.set("ID", root_id)
    signature = etree.fromstring(str(pre_signature_part(root_id, cert_body(cert.read_text()),
                                                        digest_alg=DIGEST_SHA256, sign_alg=SIG_RSA_SHA256)).encode())
    if reference_uri is not None:
        signature.find(f".//{{{DS}}}Reference").set("URI", reference_uri)
    if template is not None:
        template(signature)
    root.insert(0, signature)
    text = etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
    node = etree.QName(root).localname
    signer = CryptoBackendXmlSec1(shutil.which("xmlsec1") or "xmlsec1")
    return str(signer.sign_statement(text, f"{MD}:{node}", str(key), root_id))


def entities_left_unsigned(signature: Any) -> None:
    """An XPath filter transform that leaves every EntityDescriptor out of the digest: xmlsec then verifies
    a document whose entities anyone replaced (the allow-list refuses any XPath transform)."""
    transforms = signature.find(f".//{{{DS}}}Transforms")
    step = etree.Element(f"{{{DS}}}Transform", Algorithm=XPATH_TRANSFORM)
    etree.SubElement(step, f"{{{DS}}}XPath", nsmap={"md": MD}).text = "not(ancestor-or-self::md:EntityDescriptor)"
    transforms.insert(0, step)


def replace_entity(xml: str, entity_id: str, replacement: str) -> str:
    root = etree.fromstring(xml.encode())
    old = next(e for e in root.iter(f"{{{MD}}}EntityDescriptor") if e.get("entityID") == entity_id)
    old.getparent().replace(old, etree.fromstring(replacement.encode()))
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data.decode()


def wrap_signed(signed: str, attacker_entity: str) -> str:
    """Signature wrapping: the signed document moved, untouched, inside an unsigned aggregate whose first
    entity is the attacker's."""
    original = etree.fromstring(signed.encode())
    wrapper = etree.fromstring(aggregate(attacker_entity, root_id="_wrapper").encode())
    wrapper.append(deepcopy(original))
    data: bytes = etree.tostring(wrapper, xml_declaration=True, encoding="UTF-8")
    return data.decode()


def add_outside_signed(signed: str, attacker_entity: str) -> str:
    """A second entity, with the attacker's certificate, added to a signed aggregate after it was signed."""
    root = etree.fromstring(signed.encode())
    root.append(etree.fromstring(attacker_entity.encode()))
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data.decode()


class Served:
    """The document the loopback server answers with, and how often it was asked."""

    def __init__(self) -> None:
        self.body = b""
        self.requests = 0


@contextmanager
def serve_metadata() -> Iterator[tuple[str, Served]]:
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as base:
        yield f"{base}/federation-metadata.xml", served
