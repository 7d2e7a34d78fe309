"""Accepting a Response-only signature made nothing laxer: every signature-wrapping, reference, transform,
algorithm and comment variant of the security suite, posted to an IdP with the default placement (either
signature), is refused as it is with the assertion's own signature required, and the classic Response
wrappings (XSW1, XSW2) built on a Response whose only signature is the Response's are refused too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from tests.saml_sp.conftest import NS, assert_refused, assertion_of, audit_events
from tests.saml_sp.quirk_world import QuirkWorld, quirk_world
from tests.security._saml_support import (
    EVIL_NAME,
    Variant,
    comment_variants,
    set_uri,
    wrapping_variants,
    xml_text,
    xsw1,
    xsw2,
)

__all__ = ["quirk_world"]  # the fixture, for pytest

VARIANTS = wrapping_variants() + comment_variants()


def _logged_in(world: QuirkWorld) -> list[str]:
    return [e["subject"] for e in audit_events(world.stack) if e["event"] == "login_succeeded"]


def _post(world: QuirkWorld, client: httpx.Client, variant: Variant, response_only: bool) -> httpx.Response:
    request_id = world.start(client, "either")
    kw: dict[str, Any] = ({"sign_assertion": False, "sign_response": True} if response_only
                          else {"sign_response": variant.sign_response})
    root = etree.fromstring(world.signed("alice", request_id, idp="either", **kw).encode())
    variant.mutate(root)
    return world.post(client, xml_text(root), "either")


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_refused_with_either_placement(quirk_world: QuirkWorld, client: httpx.Client,
                                               variant: Variant) -> None:
    assert_refused(quirk_world, client, _post(quirk_world, client, variant, False), variant.status, variant.reason)
    assert EVIL_NAME not in _logged_in(quirk_world)


def _strip_assertion_signature_then(mutate: Any) -> Any:
    def both(root: Any) -> None:
        assert assertion_of(root).find("ds:Signature", NS) is None  # a Response-only document
        mutate(root)
    return both


RESPONSE_ONLY = [
    Variant("XSW1 on a Response-only signature", _strip_assertion_signature_then(xsw1), 401, "saml_assertion_count"),
    Variant("XSW2 on a Response-only signature", _strip_assertion_signature_then(xsw2), 401, "saml_assertion_count"),
    Variant("Response signature referencing the assertion", set_uri("#{assertion}", response=True), 401,
            "saml_signature_shape"),
    Variant("Response signature referencing nothing (whole document)", set_uri("", response=True), 401,
            "saml_signature_shape"),
]


@pytest.mark.parametrize("variant", RESPONSE_ONLY, ids=[v.name for v in RESPONSE_ONLY])
def test_response_only_wrapping_refused(quirk_world: QuirkWorld, client: httpx.Client, variant: Variant) -> None:
    assert_refused(quirk_world, client, _post(quirk_world, client, variant, True), variant.status, variant.reason)
    assert EVIL_NAME not in _logged_in(quirk_world)
