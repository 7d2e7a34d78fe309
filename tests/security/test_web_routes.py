"""Paths: no redirect is ever built from Host, unknown paths get the broker's own answer, and no IdP id can
be shadowed by a fixed route."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from starlette.routing import Match, Route

from broker.cli import main
from broker.settings import RESERVED_IDP_IDS
from broker.web.app import ROUTES
from tests.security._web_support import JSON, Stack, web_stack
from tests.test_config import STRONG, good_tree

__all__ = ["web_stack"]

SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("path", ["/roles/", "/healthz/", "/login/dev/", "/.well-known/jwks.json/", "//evil.example/",
                                  "/nope", "/%2e%2e/etc/passwd", "//evil.example/%2e%2e", "/\\evil.example"])
def test_unknown_paths_get_the_brokers_404_and_no_redirect(web_stack: Stack, path: str) -> None:
    target = httpx.URL(web_stack.url).copy_with(raw_path=path.encode())  # sent as written, not merged
    with httpx.Client(follow_redirects=False) as http:
        before = len(web_stack.events())
        page = http.get(target, headers=SPOOFED)
        api = http.get(target, headers={**SPOOFED, **JSON})
    assert page.status_code == 404 and "location" not in page.headers
    if path.startswith("/.well-known"):  # machine documents: refusals there are JSON for every client
        assert page.json()["error"] == "route_not_found"
    else:
        assert page.headers["content-type"].startswith("text/html") and "error id" in page.text
    assert "evil.example" not in page.text
    assert api.status_code == 404 and api.json()["error"] == "route_not_found"
    events = web_stack.events()[before:]
    assert [e["reason"] for e in events] == ["route_not_found"] * 2


def test_wrong_method_is_the_brokers_405_with_allow(web_stack: Stack) -> None:
    response = httpx.delete(f"{web_stack.url}/roles", headers={**SPOOFED, **JSON})
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_redirects_the_broker_builds_are_relative_or_from_configuration(web_stack: Stack) -> None:
    """Every redirect a client without a session can reach: `/` (when signed in), `/roles` without a
    session, the login start (OIDC and SAML): none carries the spoofed host."""
    with httpx.Client(base_url=web_stack.url, follow_redirects=False) as http:
        roles = http.get("/roles", headers=SPOOFED)
        assert roles.status_code == 303 and roles.headers["location"] == "/"
        for idp in ("dev", "devsaml", "handmade"):
            start = http.get(f"/login/{idp}", headers=SPOOFED)
            assert start.status_code == 303
            assert "evil.example" not in start.headers["location"]
            assert "evil.example" not in str(start.headers.get_list("set-cookie"))
        for path in ("/.well-known/openid-configuration", "/saml/idp/metadata", "/saml/devsaml/metadata"):
            document = http.get(path, headers=SPOOFED)
            assert document.status_code == 200 and "evil.example" not in document.text
            assert web_stack.url in document.text


# ---- IdP ids that a fixed route would shadow -------------------------------------------------------------


def _shadowed_ids() -> set[str]:
    """For every route with an `{idp}` segment, the ids under which a fixed route matches first: a fixed
    path that the parametrised route also matches gives the segment in the `idp` position."""
    found: set[str] = set()
    for index, route in enumerate(ROUTES):
        if not isinstance(route, Route) or "{idp}" not in route.path:
            continue
        for fixed in ROUTES[:index]:
            if not isinstance(fixed, Route) or "{" in fixed.path:
                continue
            match, child = route.matches({"type": "http", "path": fixed.path, "method": "GET"})
            if match is not Match.NONE:
                found.add(child["path_params"]["idp"])
    return found


def test_every_id_a_fixed_route_shadows_is_reserved() -> None:
    assert _shadowed_ids() == {"idp"}
    assert _shadowed_ids() <= RESERVED_IDP_IDS


@pytest.mark.parametrize("kind", ["oidc", "saml", "token"])
def test_check_refuses_a_reserved_idp_id(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SESSION_SECRET", STRONG)
    monkeypatch.setenv("OKTA_SECRET", "okta-client-secret-value")
    file = good_tree(tmp_path)
    idps: dict[str, dict[str, object]] = {
        "oidc": {"type": "oidc", "name": "I", "issuer": "https://idp.example", "client_id": "c"},
        "saml": {"type": "saml", "name": "I", "metadata_url": "https://idp.example/metadata"},
        "token": {"type": "token", "issuer": "https://idp.example", "client_ids": ["c"]}}
    idp = idps[kind]
    (tmp_path / "idp_configs" / "reserved.yaml").write_text(yaml.safe_dump({"id": "idp", **idp}))
    assert main(["check", "--config", str(file)]) == 1
    err = capsys.readouterr().err
    assert "reserved.yaml" in err and "'idp' is reserved" in err and "reserved ids: idp" in err
