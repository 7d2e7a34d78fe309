"""`sts-broker login` over real HTTP: a loopback listener on 127.0.0.1 receives the code (RFC 8252), the
scripted browser signs in through the dev OIDC IdP and consents, the token endpoint turns code + PKCE
verifier into a CLI session, and the bearer API hands out credentials botocore uses against the strict local
AWS. The refusals are in test_cli_refusals.py."""

from __future__ import annotations

import html
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx

from broker.devstack import browser
from broker.devstack.stack import DevStack, aws_client
from tests.flows.cli_login import (
    Pkce,
    authorize_query,
    bearer,
    cli_login,
    consent,
    loopback_listener,
    redeem,
    sign_in_from,
)
from tests.flows.conftest import audit_events

ADMIN = "arn:aws:iam::123456789012:role/DemoAdmin"
DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"


def test_loopback_login_then_roles_credentials_console_and_revoke(stack: DevStack) -> None:
    url = stack.broker_url
    with browser.browser() as client:
        answer = cli_login(client, url, "alice", device_name="alice's laptop")
    assert answer["token_type"] == "Bearer" and 3600 * 7 < answer["expires_in"] <= 3600 * 8
    token, auth = answer["access_token"], bearer(answer["access_token"])

    info = httpx.get(f"{url}/cli/session", headers=auth).json()
    assert info["session_id"] == answer["session_id"] and info["subject"] == "alice"
    assert info["email"] == "alice@example.com" and info["device_name"] == "alice's laptop"

    roles = httpx.get(f"{url}/cli/roles", headers=auth).json()["roles"]
    assert {r["role_arn"] for r in roles} >= {ADMIN, DEV}
    assert next(r for r in roles if r["role_arn"] == ADMIN)["alias"] == "demo/DemoAdmin"

    # By bare role name, with a shorter session than the rule's hour.
    creds = httpx.post(f"{url}/cli/credentials", headers=auth, json={"role": "DemoAdmin",
                                                                      "duration_seconds": 900}).json()
    assert creds["Version"] == 1 and creds["RoleArn"] == ADMIN and creds["AccountId"] == "123456789012"
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/DemoAdmin/alice@example.com"
    left = datetime.fromisoformat(creds["Expiration"]).timestamp() - time.time()
    assert 800 < left <= 900

    console = httpx.post(f"{url}/cli/console", headers=auth, json={"role": "demo/DemoDeveloper",
                                                                    "destination": "/s3/home"})
    target = console.json()["url"]
    assert target.startswith(f"{stack.aws.federation_url}?Action=login&")
    assert parse_qs(urlsplit(target).query)["Destination"] == ["https://console.aws.amazon.com/s3/home"]
    assert "assumed-role/DemoDeveloper" in html.unescape(httpx.get(target).text)

    assert httpx.post(f"{url}/oauth2/revoke", data={"token": token}).status_code == 200
    ended = httpx.get(f"{url}/cli/session", headers=auth)
    assert ended.status_code == 401 and "login" in ended.json()["message"]

    events = [e for e in audit_events(stack) if e.get("session_id") == answer["session_id"]]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "cli_session_started" and "cli_session_revoked" in kinds
    assert [e.get("channel") for e in events if e["event"] == "credentials_issued"] == ["cli", "cli"]
    assert "console_issued" in kinds
    log = stack.audit_path.read_text()
    assert token not in log and creds["SecretAccessKey"] not in log


def test_signing_in_first_comes_back_to_the_consent_page(stack: DevStack) -> None:
    """No browser session: the sign-in page, then the IdP, then the same authorization request's consent
    page, naming the person, the device (escaped: it is untrusted text) and the time."""
    url, pkce = stack.broker_url, Pkce()
    hostile = '<script>alert("x")</script>'
    with browser.browser() as client, loopback_listener() as listener:
        first = client.get(f"{url}/oauth2/authorize?{authorize_query(listener.url, pkce, hostile)}")
        assert first.status_code == 200 and "Sign in" in first.text and "return_to=" in first.text
        page = sign_in_from(client, url, first, "bob")
        assert "bob@example.com" in page.text and time.strftime("%Y-%m-%d", time.gmtime()) in page.text
        assert hostile not in page.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        answer = consent(client, url, page)
        client.get(answer.headers["location"])
        [got] = listener.received
        token = redeem(url, got["code"], listener.url, pkce.verifier).json()
    info = httpx.get(f"{url}/cli/session", headers=bearer(token["access_token"])).json()
    assert info["subject"] == "bob" and info["device_name"] == hostile


def test_deny_sends_access_denied_and_issues_nothing(stack: DevStack) -> None:
    url, pkce = stack.broker_url, Pkce()
    before = len(audit_events(stack))
    with browser.browser() as client, loopback_listener() as listener:
        browser.login(client, url, "dev", "bob")
        page = client.get(f"{url}/oauth2/authorize?{authorize_query(listener.url, pkce)}")
        answer = consent(client, url, page, decision="deny")
        assert answer.status_code == 303
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query == {"error": ["access_denied"], "state": [pkce.state]}
        again = consent(client, url, page)  # the request was answered: used up
        assert again.status_code == 400
    kinds = [e["event"] for e in audit_events(stack)[before:]]
    assert "cli_code_denied" in kinds and "cli_code_issued" not in kinds and "cli_session_started" not in kinds


def test_the_portal_lists_and_revokes_the_persons_cli_sessions(stack: DevStack) -> None:
    url = stack.broker_url
    with browser.browser() as client:
        first = cli_login(client, url, "bob", device_name="build box")
        second = cli_login(client, url, "bob", device_name="laptop")
        listing = client.get(f"{url}/sessions", headers={"Accept": "application/json"}).json()
        mine = {s["session_id"]: s["device_name"] for s in listing["cli_sessions"]}
        assert mine[first["session_id"]] == "build box" and mine[second["session_id"]] == "laptop"
        page = client.get(f"{url}/sessions")
        assert "build box" in page.text and 'action="/sessions/revoke"' in page.text
        assert 'href="/sessions"' in client.get(f"{url}/roles").text
        csrf = browser.roles(client, url)["csrf_token"]
        done = client.post(f"{url}/sessions/revoke", data={"csrf_token": csrf, "kind": "cli",
                                                           "id": first["session_id"]})
        assert done.status_code == 303 and done.headers["location"] == "/sessions"
        listing = client.get(f"{url}/sessions", headers={"Accept": "application/json"}).json()
        assert first["session_id"] not in {s["session_id"] for s in listing["cli_sessions"]}
    assert httpx.get(f"{url}/cli/session", headers=bearer(first["access_token"])).status_code == 401
    assert httpx.get(f"{url}/cli/session", headers=bearer(second["access_token"])).status_code == 200
    [event] = [e for e in audit_events(stack) if e["event"] == "cli_session_revoked"
               and e.get("session_id") == first["session_id"]]
    assert event["by"] == "portal" and event["subject"] == "bob"


def test_openapi_describes_what_the_cli_endpoints_answer(stack: DevStack) -> None:
    url = stack.broker_url
    doc = httpx.get(f"{url}/openapi.json").json()
    for path in ("/oauth2/authorize", "/oauth2/revoke", "/cli/session", "/cli/roles", "/cli/credentials",
                 "/cli/console", "/sessions"):
        assert path in doc["paths"]
    schemas = doc["components"]["schemas"]
    with browser.browser() as client:
        answer = cli_login(client, url, "bob")
    auth = bearer(answer["access_token"])
    assert set(schemas["CliSessionToken"]["required"]) == set(answer)
    assert set(schemas["CliSession"]["required"]) <= set(httpx.get(f"{url}/cli/session", headers=auth).json())
    role = httpx.get(f"{url}/cli/roles", headers=auth).json()["roles"][0]
    assert set(schemas["CliRoles"]["properties"]["roles"]["items"]["required"]) <= set(role)
    creds = httpx.post(f"{url}/cli/credentials", headers=auth, json={"role": role["alias"]}).json()
    assert set(schemas["CredentialProcess"]["required"]) == set(creds)
    refused = httpx.get(f"{url}/cli/roles", headers=bearer("ended")).json()
    assert set(schemas["Error"]["required"]) == set(refused)
