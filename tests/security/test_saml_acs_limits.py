"""What bounds the ACS: one attempt per AuthnRequest ID, a per-client rate limit, a cap on XML work waiting
for a worker, and the XML guard's view of DTDs in IdP metadata. Through the real HTTP ACS."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import parse_metadata
from broker.connectors.saml_xml import _parser, guarded_parse
from broker.connectors.xml_workers import XmlWorkers
from broker.devstack import browser
from broker.errors import ServerBusy, XmlRejected
from broker.web.context import context_of_app
from tests.saml_sp.conftest import NS, SamlWorld, assert_refused, assertion_of, audit_events, client, saml_world
from tests.security._saml_support import Broker, encoded, other_broker, xml_text, xslt_recursion

__all__ = ["client", "saml_world"]


def _logged_in(world: SamlWorld) -> list[str]:
    return [e["subject"] for e in audit_events(world.stack) if e["event"] == "login_succeeded"]


# ---- one AuthnRequest ID, one attempt ------------------------------------------------------------------

def _tampered(world: SamlWorld, request_id: str) -> str:
    root = etree.fromstring(world.signed("bob", request_id).encode())
    assertion_of(root).find("saml:Subject/saml:NameID", NS).text = "alice@example.com"
    return xml_text(root)


def _freeze(world: SamlWorld, request_id: str) -> str:
    root = etree.fromstring(world.signed("bob", request_id).encode())
    xslt_recursion(20)(root)
    return xml_text(root)


@pytest.mark.parametrize(("first", "status", "reason"), [
    (_tampered, 401, "saml_invalid_signature"), (_freeze, 401, "saml_signature_shape")])
def test_failed_post_uses_the_request_id_up(saml_world: SamlWorld, client: httpx.Client, first: Any, status: int,
                                            reason: str) -> None:
    """A refused post consumes its AuthnRequest ID: the genuine answer to the same request is refused next."""
    request_id = saml_world.start(client)
    assert_refused(saml_world, client, saml_world.post(client, first(saml_world, request_id)), status, reason)
    genuine = saml_world.signed("bob", request_id)
    assert_refused(saml_world, client, saml_world.post(client, genuine), 400, "saml_request_unknown")


def test_nobody_else_can_use_up_a_request_id(saml_world: SamlWorld, client: httpx.Client) -> None:
    """The browser binding is checked first: posts naming a victim's request ID from another browser are
    refused without touching it, and the victim still signs in."""
    with browser.browser() as victim:
        request_id = saml_world.start(victim)
        for xml in (_tampered(saml_world, request_id), saml_world.signed("bob", request_id)):
            assert_refused(saml_world, client, saml_world.post(client, xml), 400, "saml_request_not_bound")
        assert saml_world.post(victim, saml_world.signed("bob", request_id)).status_code == 303


# ---- the ACS rate limit -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def limited(saml_world: SamlWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A second broker on the same pysaml2 IdP with an ACS limit of 3 posts per client in a 2 s window."""
    with other_broker(saml_world, tmp_path_factory.mktemp("acs-limit"), {},
                      {"rate_limits": {"acs_posts": 3, "window": "2s"}}) as broker:
        yield broker


def _signed_for(world: SamlWorld, broker: Broker, request_id: str) -> dict[str, str]:
    return {"SAMLResponse": base64.b64encode(broker.signed(world, request_id).encode()).decode()}


def test_acs_rate_limit(saml_world: SamlWorld, limited: Broker) -> None:
    """Past the limit: 429 with Retry-After, audited, before the form is read, so the refused post costs no
    parse and no signature check and does not use the request up: the same genuine post, once the window
    has passed, signs in."""
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        request_id = limited.start(client)
        genuine = _signed_for(saml_world, limited, request_id)
        time.sleep(2.1)  # a fresh window: the three posts below are counted in it
        for _ in range(3):
            assert client.post(limited.acs(), data={"SAMLResponse": "bm90IHhtbA=="}).status_code == 400
        refused = client.post(limited.acs(), data=genuine)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        body = refused.json()
        assert body["error"] == "rate_limited" and body["message"]
        [event] = [e for e in limited.events() if e.get("error_id") == body["error_id"]]
        assert event["reason"] == "rate_limited" and event["path"] == "/saml/corp/acs"
        assert client.cookies.get("sts_broker_session") is None
        assert not [e for e in limited.events() if e["event"] == "login_succeeded"]
        time.sleep(2.1)
        assert client.post(limited.acs(), data=genuine).status_code == 303


# ---- the cap on XML work ------------------------------------------------------------------------------

def test_full_xml_queue_is_a_fast_503(saml_world: SamlWorld, limited: Broker) -> None:
    """With every worker slot taken, a post is refused at once (503, audited) and its request stays usable."""
    workers: XmlWorkers = context_of_app(limited.app).service.xml_workers
    with browser.browser() as client:
        client.headers["Accept"] = "application/json"
        time.sleep(2.1)  # a fresh rate-limit window
        request_id = limited.start(client)
        genuine = _signed_for(saml_world, limited, request_id)
        workers.pending += workers.max_pending  # as if max_pending hostile posts were running or waiting
        try:
            started = time.monotonic()
            busy = client.post(limited.acs(), data=genuine)
            assert time.monotonic() - started < 1.0
        finally:
            workers.pending -= workers.max_pending
        assert busy.status_code == 503 and busy.json()["error"] == "xml_busy"
        [event] = [e for e in limited.events() if e.get("error_id") == busy.json()["error_id"]]
        assert event["reason"] == "xml_busy" and event["status"] == 503
        assert client.post(limited.acs(), data=genuine).status_code == 303


def test_xml_workers_bound_concurrency() -> None:
    """Two slots, two pending at most: the third concurrent job is refused, the loop never blocks."""
    import threading

    gate = threading.Event()

    async def scenario() -> tuple[list[str], float]:
        workers = XmlWorkers(threads=1, max_pending=2)
        jobs = [asyncio.create_task(workers.run(gate.wait, 5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        try:
            await workers.run(gate.wait, 5)
            outcome = ["ran"]
        except ServerBusy as exc:
            outcome = [exc.reason]
        refused_in = time.monotonic() - started
        gate.set()
        await asyncio.gather(*jobs)
        assert workers.pending == 0
        return outcome, refused_in

    outcome, refused_in = asyncio.run(scenario())
    assert outcome == ["xml_busy"] and refused_in < 0.1


# ---- DTDs as the parser sees them, in metadata too -----------------------------------------------------

def test_metadata_with_dtd_in_utf16_refused(saml_world: SamlWorld) -> None:
    metadata = saml_world.idp.metadata_xml()
    config = SamlIdpConfig.model_validate({"id": "meta", "type": "saml", "name": "m",
                                           "metadata_file": "unused.xml"})
    plain = encoded(metadata, "UTF-16", "utf-16-le", b"\xff\xfe")
    assert parse_metadata(plain, config).entity_id == saml_world.idp.entity_id
    for doctype in ("<!DOCTYPE x>", '<!DOCTYPE x [<!ENTITY e "v">]>'):
        with pytest.raises(ValueError, match="DTD"):
            parse_metadata(encoded(metadata, "UTF-16", "utf-16-le", b"\xff\xfe", doctype), config)


def test_local_dtd_file_is_never_read(tmp_path: Path) -> None:
    """libxml2 reads a DOCTYPE's SYSTEM file even with DTD loading off; the guard's parser answers every
    external load with nothing, so its ATTLIST default never reaches the tree, and the document is refused."""
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ATTLIST r injected CDATA "from-the-file">')
    xml = encoded('<r a="1"/>', "UTF-16", "utf-16-le", b"\xff\xfe", f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}">')
    bare = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False)
    assert etree.fromstring(xml, bare).get("injected") == "from-the-file"  # the guard's options, no resolver
    assert etree.fromstring(xml, _parser()).get("injected") is None
    with pytest.raises(XmlRejected) as refused:
        guarded_parse(xml, max_bytes=10_000)
    assert refused.value.reason == "saml_xml_dtd"
