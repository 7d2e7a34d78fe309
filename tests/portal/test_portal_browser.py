"""The portal in a real browser (Debian's chromium, driven by playwright) over real HTTP: sign in through the
development OIDC IdP, open the console at a deep link in a new tab (landing on the strict local AWS's
federation page, which records the Destination it received), bad deep links refused with the broker's error
page, and the credentials page read back through its copy buttons and checked against the local AWS.
The credentials page's screenshot (docs/img/credentials.png, in the README) is made here."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from broker.devstack.stack import aws_client
from tests.portal.conftest import ACCOUNT, DEVELOPER, Portal
from tests.support.chromium import launched

TIMEOUT_MS = 15_000
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "credentials.png"
ZONE = "America/New_York"
BOB_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/DemoDeveloper/bob@example.com"
# Deep links typed or clicked into the address bar; each is the broker's error page, nothing issued.
BAD_LINKS = [
    ({"destination": "//evil.example"}, "destinations this broker offers"),
    ({"destination": "\\\\evil.example"}, "destinations this broker offers"),
    ({"destination": "/%5Cevil.example"}, "destinations this broker offers"),
    ({"destination": "%252F%252Fevil.example"}, "destinations this broker offers"),
    ({"destination": "javascript:alert(document.domain)"}, "destinations this broker offers"),
    ({"destination": "data:text/html,<script>alert(1)</script>"}, "destinations this broker offers"),
    ({"destination": "/s3/home\r\nLocation: https://evil.example/"}, "destinations this broker offers"),
    ({"destination": "https://evil.example/s3/home"}, "destinations this broker offers"),
    ({"destination": "/billing/home"}, "not offered here. Choose one of: ec2, ec2-instances, s3."),
    ({"region": "us-gov-west-1", "destination": "s3"}, None),  # listed, but only a role's console decides
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched()


@pytest.fixture
def context(chromium: Browser, portal: Portal) -> Iterator[BrowserContext]:
    context = chromium.new_context(timezone_id=ZONE, locale="en-US", viewport={"width": 1000, "height": 900},
                                   permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    # The dev IdP's page links a stylesheet on a CDN: no network here, so it is refused at once, not awaited.
    context.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    yield context
    context.close()


def watch(page: Page) -> list[str]:
    """Policy violations and script errors the page reports (the favicon's 404 aside)."""
    seen: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error" and "favicon" not in message.text and "404" not in message.text:
            seen.append(message.text)

    page.on("console", keep)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


def sign_in(page: Page, portal: Portal) -> None:
    page.goto(portal.url)
    page.click("a[href='/login/dev']")
    page.fill("input[name=sub]", "bob")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(f"{portal.url}/roles")


def form_of(page: Page, action: str, role: str) -> str:
    """The picker's row form of `role`: its default action opens the console, a formaction gets credentials."""
    return f"form.picker-use[action='{action}']:has(input[name=role][value='{role}'])"


def test_the_console_opens_at_the_deep_link_in_a_new_tab(portal: Portal, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, portal)
    errors = watch(page)  # the broker's pages only (the dev IdP's links a CDN this machine cannot reach)
    page.goto(f"{portal.url}/roles?destination=ec2&region=eu-west-1")
    form = form_of(page, "/roles/console", DEVELOPER)
    assert page.input_value(f"{form} select[name=destination]") == "ec2"
    assert page.input_value(f"{form} select[name=region]") == "eu-west-1"
    page.select_option(f"{form} select[name=destination]", "ec2-instances")  # the person changes their mind
    with context.expect_page() as opened:
        page.click(f"{form} button.open")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.startswith(f"{portal.dev.aws.federation_url}?Action=login&")
    expected = "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#Instances:"
    assert f"Signed in to the AWS console (local) as {BOB_ARN}" in html.unescape(tab.content())
    assert f"Destination: {expected}" in tab.inner_text("body")
    assert tab.evaluate("window.opener") is None  # rel=noopener: the console cannot reach back
    recorded = portal.dev.aws.federation_logins()[-1]
    assert (recorded.arn, recorded.destination, recorded.issuer) == (BOB_ARN, expected, portal.url)
    assert page.url.startswith(f"{portal.url}/roles")  # the picker stays open in its own tab
    assert not errors, errors


def test_bad_deep_links_get_the_error_page(portal: Portal, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, portal)
    for query, says in BAD_LINKS:
        before = (portal.issued(), len(portal.dev.aws.federation_logins()))
        page.goto(f"{portal.url}/roles?{urlencode(query)}")
        if says is None:  # a listed region passes the picker; the console of an aws role then refuses it
            form = form_of(page, "/roles/console", DEVELOPER)
            with context.expect_page() as opened:
                page.click(f"{form} button.open")
            shown = opened.value
            shown.wait_for_load_state()
            says = "not in this role's AWS partition (aws)"
        else:
            shown = page
        text = shown.inner_text("body")
        assert says in text, (query, text)
        error_id = re.search(r"error id ([0-9a-f]{12})", text)
        assert error_id is not None, text
        [event] = [e for e in portal.events() if e.get("error_id") == error_id.group(1)]
        assert event["event"] == "request_failed" and event["status"] == 400
        assert (portal.issued(), len(portal.dev.aws.federation_logins())) == before
        if shown is not page:
            shown.close()


def test_a_forged_destination_in_the_picker_form_is_refused(portal: Portal, context: BrowserContext) -> None:
    """The select edited in the page (as anyone can): the posted value is checked, not trusted."""
    page = context.new_page()
    sign_in(page, portal)
    form = form_of(page, "/roles/console", DEVELOPER)
    page.eval_on_selector(f"{form} select[name=destination]",
                          "s => { s.options[1].value = '//evil.example/ec2/home'; s.selectedIndex = 1; }")
    before = portal.issued()
    with context.expect_page() as opened:
        page.click(f"{form} button.open")
    shown = opened.value
    shown.wait_for_load_state()
    assert "destinations this broker offers" in shown.inner_text("body") and "evil" not in shown.url
    assert portal.issued() == before


def test_the_credentials_page_reads_back_through_its_copy_buttons(portal: Portal, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, portal)
    errors = watch(page)  # the broker's pages only (the dev IdP's links a CDN this machine cannot reach)
    form = form_of(page, "/roles/console", DEVELOPER)
    page.click(f"{form} button[formaction='/roles/credentials']")  # no format: a browser gets the page
    page.wait_for_url(f"{portal.url}/roles/credentials")
    assert page.title() == "Credentials for DemoDeveloper · sts-broker"
    assert page.inner_text("#creds-account-name") == "portal" and page.inner_text("#creds-account-id") == ACCOUNT
    page.wait_for_function("document.getElementById('creds-countdown').textContent !== ''")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)  # before any copy: as a person first sees it

    copied: dict[str, str] = {}
    for key in ("bash", "fish", "powershell", "cmd", "ini", "credential-process"):
        page.click(f"button[data-copy='creds-{key}']")
        page.wait_for_function("k => document.querySelector(`button[data-copy='creds-${k}']`).textContent "
                               "=== 'Copied'", arg=key)
        copied[key] = page.evaluate("navigator.clipboard.readText()")
        assert copied[key] == page.eval_on_selector(f"#creds-{key}", "e => e.textContent")
    values = dict(re.findall(r"^export (AWS_[A-Z_]+)=(\S+)$", copied["bash"], re.M))
    values = {k: v.strip("'") for k, v in values.items()}
    sts = aws_client(portal.dev.aws, "sts", aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
                     aws_session_token=values["AWS_SESSION_TOKEN"])
    assert sts.get_caller_identity()["Arn"] == BOB_ARN  # what STS issued, read back from the clipboard
    for key in ("fish", "powershell", "cmd", "ini"):
        assert values["AWS_SESSION_TOKEN"] in copied[key] and values["AWS_SECRET_ACCESS_KEY"] in copied[key]
    assert "[portal-DemoDeveloper]" in copied["ini"]
    assert f"--role {DEVELOPER} --broker {portal.url}" in copied["credential-process"]

    iso = page.get_attribute("#creds-expires", "datetime")
    assert iso is not None and iso == values["AWS_CREDENTIAL_EXPIRATION"]
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo(ZONE))
    shown = page.inner_text("#creds-expires").replace("\u202f", " ")
    assert local.strftime("%-I:%M:%S %p") in shown and iso not in shown  # the reader's time zone, not UTC
    assert re.fullmatch(r"\(expires in 1 h 5\d min \d+ s\)", page.inner_text("#creds-countdown"))  # 2 h grant
    assert page.inner_text("#creds-status").startswith("Copied ~/.aws/config with credential_process")
    assert not errors, errors
    page.click("text=Back to your roles >> nth=0")
    page.wait_for_url(f"{portal.url}/roles")
