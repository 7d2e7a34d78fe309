"""The automated accessibility check: axe-core (npm, pinned in tests/a11y/package.json, installed by
`make test` with `npm ci --prefix tests/a11y`) run in Debian's Chromium over the broker's pages: the
sign-in chooser, an error page, the roles page, the sessions page and the device page. No violation of
serious or critical impact is allowed (axe's own rating; WCAG 2.x A and AA rules and its best practices)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from broker.devstack.stack import DevStack
from tests.web_shell.conftest import chromium, shell_stack
from tests.web_shell.test_browser import sign_in

__all__ = ["chromium", "shell_stack"]

AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
BLOCKING = {"serious", "critical"}


@pytest.fixture
def signed_in(chromium: Browser, shell_stack: DevStack) -> Iterator[BrowserContext]:
    # axe is injected as a script tag: the test's context lets it past the broker's script-src 'self' (the
    # policy itself is tested in tests/web_shell).
    context = chromium.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    sign_in(context.new_page(), shell_stack)
    yield context
    context.close()


def _axe(page: Page) -> list[dict[str, Any]]:
    assert AXE.is_file(), f"{AXE} missing: run npm ci --prefix tests/a11y (make test does)"
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    assert result["testEngine"]["version"] == "4.14.1"
    assert result["passes"], "axe ran no rule"
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


def _describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v['id']} ({v['impact']}): "
                     f"{[(n['html'][:120], n.get('failureSummary', '')[:300]) for n in v['nodes']]}"
                     for v in violations)


@pytest.mark.parametrize("path", ["/roles", "/sessions", "/device", "/no/such/page", "/device?user_code=XXXX-XXXX"])
def test_signed_in_pages(signed_in: BrowserContext, shell_stack: DevStack, path: str) -> None:
    page = signed_in.new_page()
    # Tall enough for every group of the picker's 40 roles: groups off screen are skipped by the browser
    # (content-visibility: auto), and axe cannot judge the colours of content that is not rendered.
    page.set_viewport_size({"width": 1280, "height": 12000})
    page.goto(f"{shell_stack.broker_url}{path}")
    violations = _axe(page)
    assert not violations, _describe(violations)
    page.close()


@pytest.mark.parametrize("path", ["/", "/no/such/page"])
def test_signed_out_pages(chromium: Browser, shell_stack: DevStack, path: str) -> None:
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{shell_stack.broker_url}{path}")
    violations = _axe(page)
    assert not violations, _describe(violations)
    context.close()


def test_the_check_finds_a_violation(chromium: Browser, shell_stack: DevStack) -> None:
    """The check can fail: the chooser with its first link's text removed (an empty link, serious)."""
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{shell_stack.broker_url}/")
    page.evaluate("() => { document.querySelector('a.idp').textContent = ''; }")
    assert "link-name" in {v["id"] for v in _axe(page)}
    context.close()
