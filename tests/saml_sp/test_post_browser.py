"""The HTTP-POST AuthnRequest page in a real browser: headless Chromium (Debian's, driven by playwright) under
the broker's real Content-Security-Policy, against pysaml2 over real HTTP (see post_world)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response

from tests.saml_sp.post_world import PostWorld, post_world
from tests.support.chromium import launched

TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostWorld]:
    with post_world(tmp_path_factory.mktemp("post-browser")) as w:
        yield w


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched()


def _console(page: Page) -> list[str]:
    """What the browser says in the console, and every failed response except the favicon it asks for
    (neither the broker nor the dev IdP serves one)."""
    seen: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if not (message.text.startswith("Failed to load resource") and "404" in message.text):
            seen.append(f"{message.type}: {message.text}")

    def failed(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            seen.append(f"error: {response.status} {response.url}")

    page.on("console", keep)
    page.on("response", failed)
    return seen


def _sign_in_at_the_idp(page: Page, user: str) -> None:
    page.wait_for_selector("input[name=username]", timeout=TIMEOUT_MS)
    page.fill("input[name=username]", user)
    page.click("text=Sign in")


def _landed_on_roles(world: PostWorld, page: Page) -> None:
    page.wait_for_url(f"{world.url}/roles", timeout=TIMEOUT_MS)
    assert "Your AWS roles" in page.content() and "DemoDeveloper" in page.content()


def test_the_page_posts_itself_under_the_brokers_policy(world: PostWorld, chromium: Browser) -> None:
    """JavaScript on: the static script submits the form at once, pysaml2 verifies the signed request and
    shows its login form, and the login completes at /roles; nothing was refused by a policy."""
    context = chromium.new_context()
    page = context.new_page()
    console = _console(page)
    page.goto(f"{world.url}/login/postonly")
    page.wait_for_url(world.idp_post.sso_urls["post"], timeout=TIMEOUT_MS)  # posted without a click
    _sign_in_at_the_idp(page, "bob")
    _landed_on_roles(world, page)
    assert not [line for line in console if "Content Security Policy" in line or line.startswith("error")], console
    context.close()


def test_without_javascript_the_button_posts(world: PostWorld, chromium: Browser) -> None:
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    console = _console(page)
    page.goto(f"{world.url}/login/postonly")
    assert page.url == f"{world.url}/login/postonly"  # nothing submits it
    page.click("text=Continue to Post-only IdP")
    _sign_in_at_the_idp(page, "bob")
    page.click("text=Continue")  # the IdP's own auto-posting ACS form, by its button
    _landed_on_roles(world, page)
    assert not [line for line in console if "Content Security Policy" in line or line.startswith("error")], console
    context.close()


def test_the_policy_refuses_a_post_to_another_origin(world: PostWorld, chromium: Browser) -> None:
    """form-action: were the page's form pointed anywhere but the SSO URL's origin (here by the test, through
    the DevTools protocol, with the auto-submit script withheld), Chromium refuses to send it."""
    context = chromium.new_context()
    page = context.new_page()
    console = _console(page)
    page.route("**/static/saml-post.js?v=*", lambda route: route.fulfill(body="", content_type="text/javascript"))
    page.goto(f"{world.url}/login/postonly")
    elsewhere = world.idp_both.sso_urls["post"]  # a real endpoint, on another origin (port)
    page.evaluate("url => { const f = document.getElementById('saml-post'); f.action = url; f.submit(); }",
                  elsewhere)
    page.wait_for_timeout(500)
    assert page.url == f"{world.url}/login/postonly"
    assert any("Content Security Policy" in line and "form-action" in line for line in console), console
    context.close()
