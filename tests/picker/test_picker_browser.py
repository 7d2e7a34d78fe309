"""The role picker in a real browser: headless Chromium (Debian's, driven by playwright) under the broker's
real Content-Security-Policy, signing in through the dev OIDC IdP and the dev SAML IdP of the demo stack
(alice: 40 roles in 12 accounts). Also makes docs/img/picker.png for the README."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from broker.devstack.stack import DevStack
from tests.picker.conftest import DEVELOPER, audit_events
from tests.support.chromium import launched

TIMEOUT_MS = 10_000
SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "picker.png"
INCIDENT = "payments-prod/IncidentResponder"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched()


@pytest.fixture
def csp_reports() -> list[str]:
    return []


def _context(chromium: Browser, reports: list[str], *, javascript: bool = True) -> BrowserContext:
    context = chromium.new_context(java_script_enabled=javascript, viewport={"width": 1100, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    # The OIDC mock's page links a stylesheet on a CDN: served empty here (no network, no error to report).
    context.route("https://cdn.jsdelivr.net/**", lambda route: route.fulfill(body="", content_type="text/css"))

    def keep(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or (message.type == "error" and "favicon" not in message.text):
            reports.append(message.text)

    context.on("console", keep)
    return context


def _oidc_sign_in(page: Page, stack: DevStack, user: str) -> None:
    page.goto(f"{stack.broker_url}/login/dev")
    page.click(f"button[name=sub][value={user}]")


def _saml_sign_in(page: Page, stack: DevStack, user: str, *, javascript: bool) -> None:
    page.goto(f"{stack.broker_url}/login/devsaml")
    page.fill("input[name=username]", user)
    page.click("text=Sign in")
    if not javascript:
        page.click("text=Continue")  # the IdP's auto-posting ACS form, by its button


def _visible_roles(page: Page) -> list[str]:
    found = page.eval_on_selector_all(".picker-role:not([hidden]) .picker-use input[name=role]",
                                      "els => els.map(e => e.value)")
    return [str(arn) for arn in found]


def test_filter_as_you_type_keyboard_and_enter_opens_the_role(stack: DevStack, chromium: Browser,
                                                              csp_reports: list[str]) -> None:
    context = _context(chromium, csp_reports)
    page = context.new_page()
    _oidc_sign_in(page, stack, "alice")
    page.wait_for_url(f"{stack.broker_url}/roles")
    assert len(_visible_roles(page)) == 40 and page.text_content("#picker-count") == "40 roles."
    page.focus("#picker-q")
    page.keyboard.type("payments admin")
    # Filtered on the next animation frame after the last key: well within a second, with no request.
    # (a locator, not wait_for_function: a string predicate is eval, which the broker's CSP forbids)
    expect(page.locator("#picker-count")).to_have_text(re.compile(r"^2 of"), timeout=1000)
    assert sorted(_visible_roles(page)) == ["arn:aws:iam::310000000001:role/Admin",
                                            "arn:aws:iam::310000000002:role/Admin"]
    assert page.text_content("#picker-count") == "2 of 40 roles match."
    assert page.url == f"{stack.broker_url}/roles"  # filtered in the page, not by a request
    assert page.is_hidden("section:has(h2:text('data-lake'))")
    page.keyboard.press("ArrowDown")  # from the filter to the first match's Open console button
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Open console: payments-prod/Admin"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Open console: payments-staging/Admin"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.id") == "picker-q"
    page.keyboard.press("Enter")  # opens the first match
    page.wait_for_url(f"{stack.aws.federation_url}**")
    assert "Admin" in page.content()
    assert audit_events(stack, "console_issued")[-1]["role"] == "arn:aws:iam::310000000001:role/Admin"
    assert not csp_reports, csp_reports
    context.close()


def test_star_a_favourite_see_it_first_after_signing_in_again(stack: DevStack, chromium: Browser,
                                                              csp_reports: list[str]) -> None:
    context = _context(chromium, csp_reports)
    page = context.new_page()
    _oidc_sign_in(page, stack, "alice")
    page.wait_for_url(f"{stack.broker_url}/roles")
    page.click(f"button[aria-label='Add {INCIDENT} to favourites']")
    page.wait_for_selector(".picker-favourites")
    page.click("button[aria-label='Open console: data-lake/Admin']")  # used: it becomes the most recent
    page.wait_for_url(f"{stack.aws.federation_url}**")
    page.goto(f"{stack.broker_url}/roles")
    page.click("text=Sign out")
    page.wait_for_url(f"{stack.broker_url}/")
    _oidc_sign_in(page, stack, "alice")
    page.wait_for_url(f"{stack.broker_url}/roles")
    headings = page.eval_on_selector_all(".picker-group h2", "els => els.map(e => e.textContent.trim())")
    assert headings[:2] == ["Favourites", "Recently used"]
    assert page.text_content(".picker-recent .picker-role .muted") == "data-lake/Admin · 310000000003"
    first = page.text_content(".picker-role .picker-what")
    assert first is not None and INCIDENT in first
    assert page.get_attribute(f"button[aria-label='Remove {INCIDENT} from favourites']", "aria-pressed") == "true"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    page.click(f"button[aria-label='Remove {INCIDENT} from favourites']")  # leave alice as she was
    page.wait_for_selector(".picker-favourites", state="detached")
    assert not csp_reports, csp_reports
    context.close()


def test_saml_sign_in_and_the_picker_without_javascript(stack: DevStack, chromium: Browser,
                                                        csp_reports: list[str]) -> None:
    context = _context(chromium, csp_reports, javascript=False)
    page = context.new_page()
    _saml_sign_in(page, stack, "alice", javascript=False)
    page.wait_for_url(f"{stack.broker_url}/roles")
    page.fill("#picker-q", "data-lake")
    page.click("button:text('Filter')")
    page.wait_for_url(f"{stack.broker_url}/roles?q=data-lake")
    assert len(_visible_roles(page)) == 5 and page.text_content("#picker-count") == "5 of 40 roles match."
    page.click("button[aria-label='Add data-lake/Analyst to favourites']")
    page.wait_for_url(f"{stack.broker_url}/roles?q=data-lake")  # back at the same filter
    assert page.text_content(".picker-favourites .role-name") == "Analyst"
    page.click("button[aria-label='Remove data-lake/Analyst from favourites']")
    page.wait_for_selector(".picker-favourites", state="detached")
    page.select_option("select[aria-label='Session length for data-lake/Analyst']", "1800")
    page.click("button[aria-label='Open console: data-lake/Analyst']")
    page.wait_for_url(f"{stack.aws.federation_url}**")
    assert not csp_reports, csp_reports
    context.close()


def test_one_role_goes_straight_to_its_console_and_back_shows_the_list(stack: DevStack, chromium: Browser,
                                                                       csp_reports: list[str]) -> None:
    context = _context(chromium, csp_reports)
    page = context.new_page()
    _saml_sign_in(page, stack, "bob", javascript=True)
    page.wait_for_url(f"{stack.aws.federation_url}**")
    assert audit_events(stack, "console_issued")[-1]["role"] == DEVELOPER
    page.go_back()
    page.wait_for_url(f"{stack.broker_url}/roles?list=1")
    assert _visible_roles(page) == [DEVELOPER, DEVELOPER]  # under "Recently used", and under its account
    assert page.text_content(".picker-recent h2") == "Recently used"
    assert not csp_reports, csp_reports
    context.close()


def test_no_role_says_why(stack: DevStack, chromium: Browser, csp_reports: list[str]) -> None:
    context = _context(chromium, csp_reports)
    page = context.new_page()
    _oidc_sign_in(page, stack, "carol")
    page.wait_for_url(f"{stack.broker_url}/roles")
    text = page.text_content(".picker-empty") or ""
    assert "You have no AWS roles here yet" in text and "does not allow your account" in text
    assert not re.search(r"contractor|no-contractors", text)
    context.close()
