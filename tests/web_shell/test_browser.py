"""The shell in a real browser (Debian's Chromium through playwright) under the broker's real policy: the
stylesheet and scripts load from /static with nothing refused, Back after signing out shows the sign-in
page (the pages are `no-store`, and pageshow.js reloads a page restored from the back/forward cache),
"Open console" still reaches the AWS sign-in (form-action covers the redirect), the skip link and focus
outlines work, and no page is wider than a phone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from broker.devstack.stack import DevStack
from tests.flows.cli_login import Pkce, authorize_query, loopback_listener

TIMEOUT_MS = 10_000
DEV_IDP = "Development IdP (oidc-provider-mock)"


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def _console(page: Page) -> list[str]:
    seen: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        seen.append(f"{message.type}: {message.text}")

    page.on("console", keep)
    return seen


def _refused(console: list[str]) -> list[str]:
    return [line for line in console if "Content Security Policy" in line or "Refused" in line]


def sign_in(page: Page, stack: DevStack, user: str = "alice") -> None:
    page.goto(f"{stack.broker_url}/")
    page.get_by_role("link", name=DEV_IDP).click()
    page.fill("input[name=sub]", user)
    page.click("button[type=submit]:has-text('Authorize')")
    page.wait_for_url(f"{stack.broker_url}/roles")


def test_back_after_sign_out_shows_the_sign_in_page(shell_stack: DevStack, context: BrowserContext) -> None:
    page = context.new_page()
    console = _console(page)
    sign_in(page, shell_stack)
    assert page.get_by_role("heading", name="Your AWS roles").is_visible()
    assert page.locator("header.site .who").inner_text().startswith("Signed in as alice@example.com")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{shell_stack.broker_url}/")
    page.go_back()
    page.wait_for_load_state()
    # Back lands on /roles again, fetched anew: no session, so the broker sends the browser to sign in.
    page.wait_for_url(f"{shell_stack.broker_url}/")
    assert page.get_by_role("heading", name="Sign in to AWS").is_visible()
    assert page.get_by_role("button", name="Sign out").count() == 0 and "DemoDeveloper" not in page.content()
    assert not _refused(console), console


def test_a_page_restored_from_the_cache_reloads(shell_stack: DevStack, context: BrowserContext) -> None:
    """pageshow.js: the event a back/forward-cache restore fires (persisted) reloads the page; an ordinary
    show does not."""
    page = context.new_page()
    page.goto(f"{shell_stack.broker_url}/")
    page.evaluate("() => { window.marker = 1; }")
    page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: false}))")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.marker") == 1
    with page.expect_navigation():
        page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    assert page.evaluate("() => window.marker") is None


def test_open_console_reaches_the_sign_in_under_the_policy(shell_stack: DevStack, context: BrowserContext) -> None:
    page = context.new_page()
    console = _console(page)
    sign_in(page, shell_stack)
    role = page.locator("li", has=page.get_by_text("DemoDeveloper", exact=True))
    role.get_by_role("button", name="Open console").first.click()
    page.wait_for_url(f"{shell_stack.aws.federation_url}?*")
    assert "Signed in to the AWS console (local)" in page.content()
    assert not _refused(console), console


def test_cli_consent_reaches_the_loopback_under_the_policy(shell_stack: DevStack, context: BrowserContext) -> None:
    """`sts-broker login`'s browser step: sign in from the consent request, Allow, and the broker's redirect
    to the command line's loopback listener is not refused by form-action."""
    page = context.new_page()
    console = _console(page)
    pkce = Pkce()
    with loopback_listener() as loopback:
        page.goto(f"{shell_stack.broker_url}/oauth2/authorize?{authorize_query(loopback.url, pkce)}")
        page.get_by_role("link", name=DEV_IDP).click()
        page.fill("input[name=sub]", "alice")
        page.click("button[type=submit]:has-text('Authorize')")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{loopback.url}?*")
        [answer] = [query for query in loopback.received if "code" in query]  # (Chromium asks for a favicon too)
        assert answer["state"] == pkce.state and answer["code"]
    assert not _refused(console), console


def test_the_stylesheet_applies_and_nothing_is_refused(shell_stack: DevStack, context: BrowserContext) -> None:
    page = context.new_page()
    console = _console(page)
    sign_in(page, shell_stack)
    for path in ("/", "/roles", "/sessions", "/device", "/no/such/page"):
        page.goto(f"{shell_stack.broker_url}{path}")
        header = page.locator("header.site")
        assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(238, 241, 246)", path
        assert page.locator("main#main").count() == 1 and page.locator("footer.site").count() == 1
    assert not _refused(console), console


def test_skip_link_and_focus_outline(shell_stack: DevStack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(f"{shell_stack.broker_url}/")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.bounding_box() is None or skip.bounding_box()["x"] < 0  # type: ignore[index]  # off screen
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0  # shown once focused
    assert skip.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    page.keyboard.press("Tab")  # the next stop after the skip target: the product name
    assert page.evaluate("() => document.activeElement.getAttribute('href')") != "#main"


@pytest.mark.parametrize("path", ["/", "/roles", "/sessions", "/no/such/page"])
def test_narrow_screens_do_not_scroll_sideways(shell_stack: DevStack, chromium: Browser, path: str) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    sign_in(page, shell_stack)
    page.goto(f"{shell_stack.broker_url}{path}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360, path
    context.close()
