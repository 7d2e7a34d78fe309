"""Entra ID's group overage: over 150 groups it sends no groups claim but groups.link (a Graph URL). The
broker does not call Graph; the login goes on without groups, and the decision says why, in words, in the
role picker's JSON, the audit event and the rules explanation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.cli import main
from broker.devstack.dev_saml_idp import MFA_CONTEXT
from broker.identity import GROUPS_OVERAGE, Identity
from broker.rules.evaluate import evaluate
from broker.rules.explain import as_json, as_text
from broker.rules_source import load_rules
from tests.saml_sp.conftest import audit_events
from tests.saml_sp.quirk_world import REPO, QuirkWorld, quirk_world, role_names, roles_view
from tests.saml_sp.test_quirk_vendors import ADMINS_GUID, AUTHN_METHODS, ENTRA, MS_CLAIMS

__all__ = ["quirk_world"]  # the fixture, for pytest

GROUPS_LINK = "http://schemas.microsoft.com/claims/groups.link"
GRAPH = ("https://graph.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/users/"
         "d3b07384-d9a0-4c9b-8e3f-1a2b3c4d5e6f/getMemberObjects")


def _entra_login(world: QuirkWorld, client: httpx.Client,
                 extra: dict[str, list[str]]) -> tuple[Identity, dict[str, Any]]:
    request_id = world.start(client, "entra")
    xml = world.vendor_signed("entra", request_id, {**ENTRA, **extra}, authn={"class_ref": MFA_CONTEXT})
    assert world.post(client, xml, "entra").status_code == 303
    return world.identity("entra", xml, request_id), roles_view(world, client)


def test_overage_explained_end_to_end(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, view = _entra_login(quirk_world, client, {GROUPS_LINK: [GRAPH]})
    # The identity records the overage (and the link as the IdP sent it); no groups were invented.
    assert identity.groups == () and identity.claims[GROUPS_OVERAGE] == ("true",)
    assert identity.claims[GROUPS_LINK] == (GRAPH,)
    # The role picker: only the role that needs no group, and the reason in words.
    assert role_names(view) == ["Viewer"]
    [notice] = view["notices"]
    assert notice["code"] == "groups_overage"
    for words in ("group overage link instead of the user's groups", "150", "does not call Microsoft Graph",
                  "rules on groups could not match", "Groups assigned to the application"):
        assert words in notice["message"], words
    # The audit event of the decision carries the code (no claim values).
    decision = [e for e in audit_events(quirk_world.stack) if e["event"] == "decision"][-1]
    assert decision["notices"] == ["groups_overage"] and decision["subject"] == "alice@example.com"
    assert GRAPH not in quirk_world.stack.audit_path.read_text()
    # The rules explanation (sts-broker rules explain, the admin API) says the same.
    rules = load_rules(quirk_world.stack.workdir / "rules.yaml")
    explained = evaluate(rules, identity, explain=True)
    assert as_text(explained).startswith("notice (groups_overage): The identity provider sent a group overage")
    assert as_json(explained)["notices"] == view["notices"]


def test_no_notice_when_groups_arrive(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    _, view = _entra_login(quirk_world, client, {f"{MS_CLAIMS}/groups": [ADMINS_GUID]})
    assert view["notices"] == [] and role_names(view) == ["EntraAdmin", "Viewer"]
    assert [e for e in audit_events(quirk_world.stack) if e["event"] == "decision"][-1]["notices"] == []


def test_overage_link_does_not_hide_groups_sent(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """A link beside real groups is not an overage: the groups count, no notice."""
    identity, view = _entra_login(quirk_world, client, {f"{MS_CLAIMS}/groups": [ADMINS_GUID], GROUPS_LINK: [GRAPH],
                                                        AUTHN_METHODS: [MFA_CONTEXT]})
    assert identity.groups == (ADMINS_GUID,) and view["notices"] == []


def test_overage_shown_on_the_role_picker_page(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    _entra_login(quirk_world, client, {GROUPS_LINK: [GRAPH]})
    page = client.get(f"{quirk_world.stack.broker_url}/roles", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "group overage link instead of the user&#39;s groups" in page.text
    assert GRAPH not in page.text


def test_an_attribute_named_like_the_marker_is_not_an_overage(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """Only the broker sets the overage marker: an IdP attribute called groups_overage does not."""
    identity, view = _entra_login(quirk_world, client, {GROUPS_OVERAGE: ["true"]})
    assert GROUPS_OVERAGE not in identity.claims and view["notices"] == []


def test_rules_explain_cli_shows_the_overage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sts-broker rules explain` for an identity recorded with the overage (what an admin pastes in)."""
    who = tmp_path / "overage.json"
    who.write_text(json.dumps({"idp": "entra", "protocol": "saml", "subject": "AAAAbbbb",
                               "email": "alice@contoso.com", "claims": {GROUPS_OVERAGE: "true"}}))
    assert main(["rules", "explain", str(REPO / "examples" / "rules" / "entra-group-ids.yaml"),
                 "--identity", str(who)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("notice (groups_overage): The identity provider sent a group overage link")
    assert "cloud-platform (allow): no match" in out and "grants: none (not authorized)" in out
