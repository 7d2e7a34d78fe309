"""Fuzzing the SAML ACS with mutations of a genuine pysaml2-signed response (byte flips, splices of XML
syntax, element and attribute edits, truncations, re-encodings, base64 noise, form-level noise) and with
generated XML. Over real HTTP: never a 500, never a stack trace, an audit event for every refusal. Through
the connector (no HTTP, no replay store, so every example is judged on its own): a mutation is refused
with a BrokerError or yields exactly the identity the IdP signed, never another one."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TypeAlias

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import saml_idp_config
from broker.errors import BrokerError
from broker.identity import Identity
from tests.security._fuzz_support import (
    ATTRS,
    NS,
    TAGS,
    UNIT,
    VALUES,
    XML_TEXT,
    AuditTail,
    SamlTarget,
    assert_handled,
    fuzz_settings,
    mutated,
    saml_target,
)

FORM = "application/x-www-form-urlencoded"

# Generated documents: small trees of SAML-ish elements, as the root or as a Response's children.
Node: TypeAlias = tuple[str, dict[str, str], "str | None", list["Node"]]  # tag, attributes, text, children
ELEMENTS: st.SearchStrategy[Node] = st.recursive(
    st.builds(lambda tag, text: (tag, {}, text, []), st.sampled_from(TAGS), VALUES),
    lambda children: st.builds(lambda tag, attrs, kids: (tag, attrs, None, kids), st.sampled_from(TAGS),
                               st.dictionaries(st.sampled_from(ATTRS), VALUES, max_size=3),
                               st.lists(children, max_size=4)),
    max_leaves=20,
)


def _build(node: Node) -> Any:
    tag, attrs, text, kids = node
    el = etree.Element(tag)
    for name, value in attrs.items():
        el.set(name, value)
    el.text = text
    for kid in kids:
        el.append(_build(kid))
    return el


def _generated(nodes: list[Node], shape: str) -> bytes:
    """A bare generated element, or a samlp:Response around generated children (with an Assertion that
    holds them, so the structure check passes and the library meets the generated content)."""
    if shape == "bare" and nodes:
        return bytes(etree.tostring(_build(nodes[0]), xml_declaration=True, encoding="UTF-8"))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = etree.Element(f"{{{NS['samlp']}}}Response", ID="id-gen", Version="2.0", IssueInstant=now)
    parent = response
    if shape == "assertion":
        parent = etree.SubElement(response, f"{{{NS['saml']}}}Assertion", ID="id-gen-a", Version="2.0",
                                  IssueInstant=now)
    for node in nodes:
        parent.append(_build(node))
    return bytes(etree.tostring(response, xml_declaration=True, encoding="UTF-8"))


GENERATED = st.builds(_generated, st.lists(ELEMENTS, max_size=4), st.sampled_from(["assertion", "response", "bare"]))


def _b64_noise(text: str, where: float, noise: str, cut: int) -> str:
    at = int(where * len(text))
    return text[:at] + noise + text[at + cut:]


B64_NOISE = st.tuples(UNIT, st.one_of(st.sampled_from(["=", "==", "\n", " ", "-", "_", "%2B", "+", "/", "\x00",
                                                           "\u00e9", "*"]), st.text(max_size=8)),
                      st.integers(0, 8))


# ---- the targets --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlTarget]:
    with saml_target(tmp_path_factory.mktemp("fuzz-acs")) as t:
        yield t


@pytest.fixture(scope="module")
def web(target: SamlTarget) -> Iterator[tuple[httpx.Client, AuditTail]]:
    with httpx.Client(timeout=30, headers={"Accept": "application/json"}) as client:
        yield client, AuditTail(target.audit_path)


# What a browser sends (the ACS is a browser's form post: refusals are HTML pages), and what scripts send.
ACCEPT = st.sampled_from(["application/json", "text/html,application/xhtml+xml,*/*;q=0.8", "*/*"])


def _post(web: tuple[httpx.Client, AuditTail], url: str, fields: list[tuple[str, str]],
          content_type: str = FORM, accept: str = "application/json") -> None:
    client, audit = web
    client.cookies.clear()
    body = str(httpx.QueryParams(tuple(fields))) if content_type.startswith(FORM) else "&".join(v for _, v in fields)
    response = client.post(url, content=body.encode(), headers={"Content-Type": content_type, "Accept": accept})
    assert_handled(response, audit)


def test_acs_fuzz_target_accepts_the_genuine_response(target: SamlTarget, web: Any) -> None:
    """The fuzz starts from a response the broker accepts (else every mutation would be refused for the
    same dull reason): it logs in once, then is refused as a replay (runs first: the fuzz below then meets
    a used assertion, and every check before the replay mark)."""
    client, audit = web
    data = {"SAMLResponse": base64.b64encode(target.genuine_open.encode()).decode()}
    assert client.post(target.acs("corpopen"), data=data).status_code == 303
    client.cookies.clear()
    again = client.post(target.acs("corpopen"), data=data)
    assert again.status_code == 401 and again.json()["error"] == "saml_replay"
    audit.new_events()


@fuzz_settings(80)
@given(xml=st.data(), accept=ACCEPT)
def test_acs_mutated_responses(target: SamlTarget, web: Any, xml: st.DataObject, accept: str) -> None:
    raw = xml.draw(mutated(target.genuine_open.encode()))
    _post(web, target.acs("corpopen"), [("SAMLResponse", base64.b64encode(raw).decode())], accept=accept)


PLACEHOLDER = "ONELOGIN_" + "0" * 40


@pytest.fixture(scope="module")
def solicited(target: SamlTarget) -> bytes:
    """A genuine response to `corp` (SP-initiated only) for a placeholder AuthnRequest ID, replaced per post."""
    return target.signed("corp", PLACEHOLDER).encode()


@fuzz_settings(30)
@given(xml=st.data())
def test_acs_mutated_solicited_responses(target: SamlTarget, web: Any, solicited: bytes, xml: st.DataObject) -> None:
    """Each post answers an AuthnRequest the broker really sent (GET /login/corp, its cookie), so the
    mutations meet the request binding and what follows it. (The signed SubjectConfirmationData carries the
    placeholder ID, so none of these can log in: the path up to and through verification is what runs.)"""
    client, audit = web
    client.cookies.clear()
    request_id = target.start(client, "corp")
    raw = xml.draw(mutated(solicited)).replace(PLACEHOLDER.encode(), request_id.encode())
    response = client.post(target.acs("corp"), data={"SAMLResponse": base64.b64encode(raw).decode()})
    assert_handled(response, audit)


@fuzz_settings(40)
@given(raw=GENERATED, idp=st.sampled_from(["corp", "corpopen"]), accept=ACCEPT)
def test_acs_generated_documents(target: SamlTarget, web: Any, raw: bytes, idp: str, accept: str) -> None:
    _post(web, target.acs(idp), [("SAMLResponse", base64.b64encode(raw).decode())], accept=accept)


@fuzz_settings(40)
@given(noise=st.lists(B64_NOISE, min_size=1, max_size=3), relay=st.one_of(st.none(), VALUES),
       extra=st.lists(st.tuples(st.sampled_from(["SAMLResponse", "RelayState", "SigAlg", "Signature", "x"]),
                                XML_TEXT), max_size=3),
       content_type=st.sampled_from([FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1", "text/plain",
                                     "multipart/form-data; boundary=x", "application/json", FORM.upper(), ""]))
def test_acs_form_noise(target: SamlTarget, web: Any, noise: list[tuple[float, str, int]], relay: str | None,
                        extra: list[tuple[str, str]], content_type: str) -> None:
    encoded = base64.b64encode(target.genuine_open.encode()).decode()
    for where, text, cut in noise:
        encoded = _b64_noise(encoded, where, text, cut)
    fields = [("SAMLResponse", encoded), *([("RelayState", relay)] if relay is not None else []), *extra]
    _post(web, target.acs("corpopen"), fields, content_type)


# ---- the connector: refused, or exactly the signed identity ------------------------------------------


@pytest.fixture(scope="module")
def connector(target: SamlTarget) -> SamlConnector:
    config = {**saml_idp_config("corpopen", target.idp.url, target.idp.certificate), "allow_idp_initiated": True}
    return SamlConnector(SamlIdpConfig.model_validate(config), target.url, None)


def _identity_of(identity: Identity) -> tuple[Any, ...]:
    return (identity.idp, identity.issuer, identity.subject, identity.email, identity.email_verified,
            identity.groups, identity.mfa, dict(identity.claims))


async def _verify(connector: SamlConnector, raw: bytes) -> Identity:
    incoming = connector.receive(base64.b64encode(raw).decode())
    return (await connector.finish(incoming, None)).identity


@pytest.fixture(scope="module")
def signed(target: SamlTarget, connector: SamlConnector) -> tuple[Any, ...]:
    return _identity_of(asyncio.run(_verify(connector, target.genuine_open.encode())))


@fuzz_settings(120)
@given(xml=st.data())
def test_connector_refuses_or_reads_the_signed_identity(target: SamlTarget, connector: SamlConnector,
                                                        signed: tuple[Any, ...], xml: st.DataObject) -> None:
    raw = xml.draw(mutated(target.genuine_open.encode()))
    try:
        identity = asyncio.run(_verify(connector, raw))
    except BrokerError:
        return
    assert _identity_of(identity) == signed
