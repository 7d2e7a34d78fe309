"""Console deep links over real HTTP: the picker's choice or `?destination=` / `?region=`, checked against
`console:`; the strict local AWS's federation endpoint receives the Destination and records it. Every trick
is refused with its reason, the audit event of its error id, no redirect and nothing issued."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.web.app import create_app
from tests.flows.cli_login import bearer, cli_login
from tests.portal.conftest import BROKERED, DEVELOPER, JSON, Portal

# Each a destination an attacker (or a typo) would try; none is a configured name or path.
INVALID = [
    "https://evil.example/", "http://evil.example/s3/home", "HTTPS://EVIL.EXAMPLE", "//evil.example",
    "///evil.example", "//evil.example/s3/home", "\\\\evil.example", "/\\evil.example", "\\/evil.example",
    "/s3/home\\..\\..\\evil", "%2F%2Fevil.example", "/%2F%2Fevil.example", "/%5Cevil.example",
    "%5C%5Cevil.example", "%252F%252Fevil.example", "/s3/home%2F..%2F..%2F", "javascript:alert(1)",
    "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "/s3/home\r\nLocation: https://evil.example", "/s3/home\n", "\t/s3/home", " /s3/home",
    "https://console.aws.amazon.com.evil.example/s3/home", "https://console.aws.amazon.com/s3/home",
    "/s3/home/../../evil", "/s3/./home", "/x@evil.example", "S3", "/" + "a" * 600,
]
NOT_LISTED = ["/billing/home", "/s3/home/", "/s3/home?bucket=x", "/ec2/home#Volumes:", "/iam/home"]
FORM_TYPE = "application/x-www-form-urlencoded"
BAD_REGIONS = ["eu-west-9", "us-gov-west-1", "us-east-1.evil.example", "//evil.example", "US-EAST-1"]


@pytest.fixture
def bob(portal: Portal) -> Iterator[tuple[httpx.Client, str]]:
    with browser.browser() as client:
        assert browser.login(client, portal.url, "dev", "bob").status_code == 303
        yield client, browser.roles(client, portal.url)["csrf_token"]


def refused(portal: Portal, response: httpx.Response, reason: str, status: int = 400) -> str:
    """The broker's refusal: status, JSON reason, the audit event of its error id, no redirect anywhere."""
    assert response.status_code == status, response.text[:300]
    assert "location" not in response.headers
    body = response.json()
    assert body["error"] == reason and body["error_id"], body
    [event] = [e for e in portal.events() if e.get("error_id") == body["error_id"]]
    assert (event["event"], event["reason"], event["status"]) == ("request_failed", reason, status)
    message: str = body["message"]
    return message


def console(client: httpx.Client, portal: Portal, csrf: str, fields: dict[str, str] | None = None, *,
            query: dict[str, str] | None = None) -> httpx.Response:
    action = f"{portal.url}/roles/console" + (f"?{urlencode(query)}" if query else "")
    return client.post(action, data={"role": DEVELOPER, "csrf_token": csrf, **(fields or {})}, headers=JSON)


def landed(portal: Portal, response: httpx.Response) -> str:
    """Follows the broker's redirect to the strict local AWS; the Destination that endpoint recorded."""
    assert response.status_code == 303, response.text[:300]
    target = response.headers["location"]
    assert target.startswith(f"{portal.dev.aws.federation_url}?Action=login&")
    sent = parse_qs(urlsplit(target).query)["Destination"][0]
    page = httpx.get(target, trust_env=False)
    assert page.status_code == 200 and "assumed-role/DemoDeveloper/bob@example.com" in html.unescape(page.text)
    recorded = portal.dev.aws.federation_logins()[-1]
    assert recorded.destination == sent and recorded.issuer == portal.url
    assert "Destination: " in page.text and html.escape(sent) in page.text
    return sent


@pytest.mark.parametrize(("fields", "destination"), [
    ({}, "https://console.aws.amazon.com/"),
    ({"destination": "ec2"}, "https://console.aws.amazon.com/ec2/home"),
    ({"destination": "/s3/home"}, "https://console.aws.amazon.com/s3/home"),
    ({"destination": "s3", "region": "eu-west-1"}, "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"),
    ({"destination": "ec2-instances", "region": "us-east-1"},
     "https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#Instances:"),
])
def test_the_console_lands_at_the_chosen_destination(portal: Portal, bob: tuple[httpx.Client, str],
                                                     fields: dict[str, str], destination: str) -> None:
    """The picker's choice (a name or a listed path, and a region) reaches the federation endpoint."""
    client, csrf = bob
    response = console(client, portal, csrf, fields)
    assert landed(portal, response) == destination
    event = [e for e in portal.events() if e["event"] == "console_issued"][-1]
    assert event["role"] == DEVELOPER and event.get("region") == fields.get("region")


def test_the_destination_can_come_in_the_query(portal: Portal, bob: tuple[httpx.Client, str]) -> None:
    """`/roles/console?destination=ec2&region=eu-west-1` (a bookmark's form action); a form field wins."""
    client, csrf = bob
    query = {"destination": "ec2", "region": "eu-west-1"}
    assert landed(portal, console(client, portal, csrf, query=query)) == \
        "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1"
    assert landed(portal, console(client, portal, csrf, {"destination": "s3", "region": ""}, query=query)) == \
        "https://console.aws.amazon.com/s3/home"


@pytest.mark.parametrize("destination", INVALID)
def test_destinations_off_the_console_are_refused(portal: Portal, bob: tuple[httpx.Client, str],
                                                  destination: str) -> None:
    """As a form field and in the form action's query: refused before anything is issued."""
    client, csrf = bob
    before = portal.issued()
    message = refused(portal, console(client, portal, csrf, {"destination": destination}), "destination_invalid")
    assert "destinations this broker offers" in message
    refused(portal, console(client, portal, csrf, query={"destination": destination}), "destination_invalid")
    assert portal.issued() == before


@pytest.mark.parametrize(("query", "reason", "says"), [
    ({"destination": "//evil.example"}, "destination_invalid", "destinations this broker offers"),
    ({"destination": "javascript:alert(1)"}, "destination_invalid", "destinations this broker offers"),
    ({"destination": "/billing/home"}, "destination_not_allowed", "Choose one of: ec2, ec2-instances, s3."),
    ({"region": "eu-west-9"}, "region_not_allowed", "Choose one of: us-east-1, eu-west-1, us-gov-west-1."),
])
def test_a_bad_deep_link_to_the_picker_is_refused_on_arrival(portal: Portal, bob: tuple[httpx.Client, str],
                                                             query: dict[str, str], reason: str, says: str) -> None:
    """`/roles?destination=...` preselects the picker's choice; a bad one is the broker's error page (message
    and error id, the audit event of that id), not a picker whose button would fail later."""
    client, _ = bob
    page = client.get(f"{portal.url}/roles?{urlencode(query)}", headers={"Accept": "text/html"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    error_id = re.search(r"error id <code>([0-9a-f]+)</code>", page.text)
    assert error_id is not None, page.text[:500]
    [event] = [e for e in portal.events() if e.get("error_id") == error_id.group(1)]
    assert event["reason"] == reason and says in page.text


def test_a_good_deep_link_preselects_the_picker(portal: Portal, bob: tuple[httpx.Client, str]) -> None:
    client, _ = bob
    page = client.get(f"{portal.url}/roles?destination=ec2&region=eu-west-1", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert '<option value="ec2" selected>' in page.text and '<option value="eu-west-1" selected>' in page.text
    assert 'target="_blank" rel="noopener noreferrer"' in page.text


@pytest.mark.parametrize("destination", NOT_LISTED)
def test_destinations_not_listed_are_refused_with_the_list(portal: Portal, bob: tuple[httpx.Client, str],
                                                           destination: str) -> None:
    client, csrf = bob
    before = portal.issued()
    message = refused(portal, console(client, portal, csrf, {"destination": destination}), "destination_not_allowed")
    assert message == "This console destination is not offered here. Choose one of: ec2, ec2-instances, s3."
    assert portal.issued() == before


@pytest.mark.parametrize("region", BAD_REGIONS)
def test_regions_off_the_list_or_partition_are_refused(portal: Portal, bob: tuple[httpx.Client, str],
                                                       region: str) -> None:
    client, csrf = bob
    before = portal.issued()
    answer = console(client, portal, csrf, {"destination": "s3", "region": region})
    message = refused(portal, answer, "region_not_allowed")
    expected = "not in this role's AWS partition (aws)" if region == "us-gov-west-1" else "Choose one of:"
    assert expected in message
    assert portal.issued() == before


def test_a_federation_failure_is_explained_with_its_error_id(portal: Portal) -> None:
    """getSigninToken failing for real: a second broker (same settings, the broker's own credentials for
    PortalBrokered, so STS still answers) whose federation endpoint is a closed port. The person gets a page
    that says what failed and the error id; the audit has the reason; credentials were issued, no console."""
    closed = f"http://{LOOPBACK}:{free_port()}/federation"
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    settings = portal.dev.settings.model_copy(update={
        "public_url": url, "aws": portal.dev.settings.aws.model_copy(update={"federation_url": closed})})
    with asgi_server(create_app(settings, audit=AuditLog(str(portal.dev.audit_path))), port), \
            browser.browser() as client:
        assert browser.login(client, url, "dev", "bob").status_code == 303
        csrf = browser.roles(client, url)["csrf_token"]
        consoles = sum(e["event"] == "console_issued" for e in portal.events())
        page = client.post(f"{url}/roles/console", data={"role": BROKERED, "csrf_token": csrf, "destination": "s3"},
                           headers={"Accept": "text/html"})
    assert page.status_code == 502 and "location" not in page.headers
    assert "AWS sign-in (the console&#39;s federation endpoint) is not answering" in page.text
    error_id = re.search(r"error id <code>([0-9a-f]+)</code>", page.text)
    assert error_id is not None
    [event] = [e for e in portal.events() if e.get("error_id") == error_id.group(1)]
    assert event["reason"] == "federation_unreachable" and event["status"] == 502
    assert sum(e["event"] == "console_issued" for e in portal.events()) == consoles


def test_the_cli_console_takes_the_same_deep_links(portal: Portal) -> None:
    """POST /cli/console: the same allow-list, names and regions as the picker; the same refusals."""
    with browser.browser() as client:
        token = cli_login(client, portal.url, "bob")["access_token"]
    url = f"{portal.url}/cli/console"
    answer = httpx.post(url, headers=bearer(token), json={"role": "portal/DemoDeveloper", "destination": "ec2",
                                                          "region": "eu-west-1"})
    assert answer.status_code == 200, answer.text
    target = answer.json()["url"]
    assert parse_qs(urlsplit(target).query)["Destination"] == [
        "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1"]
    before = portal.issued()
    for body, reason in (({"destination": "%2F%2Fevil.example"}, "destination_invalid"),
                         ({"destination": "/billing/home"}, "destination_not_allowed"),
                         ({"destination": "s3", "region": "us-gov-west-1"}, "region_not_allowed")):
        refused(portal, httpx.post(url, headers=bearer(token), json={"role": "DemoDeveloper", **body}), reason)
    assert portal.issued() == before


def test_a_choice_given_twice_is_refused(portal: Portal, bob: tuple[httpx.Client, str]) -> None:
    """`destination=ec2&destination=//evil.example`: which one a proxy in front checked is unknown."""
    client, csrf = bob
    before = portal.issued()
    twice = client.post(f"{portal.url}/roles/console", headers={**JSON, "Content-Type": FORM_TYPE},
                        content=urlencode([("role", DEVELOPER), ("csrf_token", csrf), ("destination", "ec2"),
                                           ("destination", "//evil.example")]))
    assert "Give destination once" in refused(portal, twice, "field_repeated")
    in_query = client.get(f"{portal.url}/roles?region=eu-west-1&region=us-east-1", headers={"Accept": "text/html"})
    assert in_query.status_code == 400 and "Give region once" in in_query.text
    assert portal.issued() == before
