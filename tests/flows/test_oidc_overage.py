"""Entra ID's group overage in an OIDC ID token, through a real login at the hand-made IdP: over 200 groups
Entra leaves `groups` out and names it as a distributed claim (`_claim_names: {groups: src1}`,
`_claim_sources: {src1: {endpoint: <Graph URL>}}`). The login goes on without groups, the endpoint is never
called, and the decision says why: the role picker's JSON, the audit `decision` event and the rules
explanation, as for SAML (tests/saml_sp/test_quirk_overage.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import jwt
import pytest

from broker.connectors.claims import identity_from_claims
from broker.connectors.oidc_config import OidcIdpConfig
from broker.devstack import browser
from broker.devstack.servers import http_server, send_json
from broker.devstack.stack import DevStack
from broker.identity import GROUPS_OVERAGE
from broker.rules.evaluate import evaluate
from broker.rules.explain import as_json, as_text
from broker.rules_source import load_rules
from tests.flows.conftest import FLOW_RULES, audit_events
from tests.flows.test_refusals import DEV, handmade_login
from tests.support.token_issuer import TokenIssuer


@dataclass
class Graph:
    """Stands in for the Graph endpoint the overage names: it answers groups, and counts every call."""

    url: str = ""
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def graph() -> Iterator[Graph]:
    seen = Graph()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.requests.append(self.path)
            send_json(self, {"value": ["platform-admins"]})

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        seen.url = f"{url}/v1.0/users/d3b07384/getMemberObjects"
        yield seen


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with browser.browser() as c:
        c.headers["Accept"] = "application/json"
        yield c


def overage(endpoint: str, claim: str = "groups") -> dict[str, Any]:
    return {"_claim_names": {claim: "src1"}, "_claim_sources": {"src1": {"endpoint": endpoint}}}


def _decision(stack: DevStack, subject: str) -> dict[str, Any]:
    return [e for e in audit_events(stack) if e["event"] == "decision" and e["subject"] == subject][-1]


def test_overage_in_an_id_token_is_explained(stack: DevStack, client: httpx.Client, handmade_idp: TokenIssuer,
                                             graph: Graph) -> None:
    assert handmade_login(stack, client, handmade_idp, sub="overage-1", **overage(graph.url)).status_code == 303
    view = browser.roles(client, stack.broker_url)
    [notice] = view["notices"]
    assert notice["code"] == GROUPS_OVERAGE
    for words in ("group overage link instead of the user's groups", "200 in an ID token",
                  "does not call Microsoft Graph", "rules on groups could not match"):
        assert words in notice["message"], words
    assert [r["role_arn"] for r in view["roles"]] == [DEV]  # the grant that needs no group still holds
    assert _decision(stack, "overage-1")["notices"] == [GROUPS_OVERAGE]
    assert graph.requests == []  # never fetched
    assert graph.url not in stack.audit_path.read_text()
    # The rules explanation of that login's identity (what `rules explain` and the admin API print).
    claims = jwt.decode(handmade_idp.next_id_token, options={"verify_signature": False})
    config = OidcIdpConfig.model_validate({"id": "handmade", "type": "oidc", "name": "Hand-made IdP",
                                           "issuer": handmade_idp.url, "client_id": "client-1"})
    identity = identity_from_claims(config, claims, protocol="oidc", evidence=None, now=datetime.now(UTC))
    assert identity.groups == () and identity.claims[GROUPS_OVERAGE] == ("true",)
    explained = evaluate(load_rules(FLOW_RULES), identity, explain=True)
    assert as_text(explained).startswith("notice (groups_overage): The identity provider sent a group overage")
    assert as_json(explained)["notices"] == view["notices"]


@pytest.mark.parametrize("case", ["groups beside the link", "a claim named like the marker",
                                  "another claim distributed", "a source without endpoint"])
def test_no_notice_without_an_overage(stack: DevStack, client: httpx.Client, handmade_idp: TokenIssuer,
                                      graph: Graph, case: str) -> None:
    """Groups that arrive count (a link beside them is no overage); only the broker sets the marker; only the
    groups claim's absence is an overage; a source must name an endpoint."""
    claims = {"groups beside the link": {**overage(graph.url), "groups": ["developers"]},
              "a claim named like the marker": {GROUPS_OVERAGE: "true"},
              "another claim distributed": overage(graph.url, claim="roles"),
              "a source without endpoint": {"_claim_names": {"groups": "src1"},
                                            "_claim_sources": {"src1": {"JWT": "e30.e30.sig"}}}}[case]
    subject = f"no-overage-{case.replace(' ', '-')}"
    assert handmade_login(stack, client, handmade_idp, sub=subject, **claims).status_code == 303
    assert browser.roles(client, stack.broker_url)["notices"] == []
    assert _decision(stack, subject)["notices"] == [] and graph.requests == []
