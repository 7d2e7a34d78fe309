"""Every STS path through the devstack, against the strict local AWS (which verifies the SigV4 signature with
the secret it issued and judges each trust policy): the credentials work (GetCallerIdentity with botocore, the
federation endpoint for the console), and each bad combination is refused at issue time with a clear message,
an audit event and nothing issued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from broker.devstack import browser
from broker.devstack.stack import DevStack, aws_client
from tests.paths.conftest import ACCOUNT, HUB, SPOKE_A, SPOKE_B, audit_events, broker_key_id, role

DEVELOPER, SANDBOX = role(SPOKE_A, "Developer"), role(SPOKE_B, "Sandbox")
AUDITOR, FEDERATED = role(ACCOUNT, "brokered/Auditor"), role(ACCOUNT, "FederatedConsole")


@pytest.fixture
def alice(paths_stack: DevStack) -> Iterator[tuple[httpx.Client, str]]:
    yield from _signed_in(paths_stack, "alice")


@pytest.fixture
def bob(paths_stack: DevStack) -> Iterator[tuple[httpx.Client, str]]:
    yield from _signed_in(paths_stack, "bob")


def _signed_in(stack: DevStack, user: str) -> Iterator[tuple[httpx.Client, str]]:
    with browser.browser() as client:
        assert browser.login(client, stack.broker_url, "dev", user).status_code == 303
        yield client, str(browser.roles(client, stack.broker_url)["csrf_token"])


def credentials(stack: DevStack, session: tuple[httpx.Client, str], arn: str) -> dict[str, Any]:
    response = browser.post_role(session[0], stack.broker_url, "credentials", arn, session[1], format="json")
    assert response.status_code == 200, response.text[:300]
    answer: dict[str, Any] = json.loads(response.text)
    return answer


def caller(stack: DevStack, creds: dict[str, Any]) -> dict[str, Any]:
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    identity: dict[str, Any] = sts.get_caller_identity()
    return identity


def console_page(stack: DevStack, session: tuple[httpx.Client, str], arn: str) -> str:
    response = browser.post_role(session[0], stack.broker_url, "console", arn, session[1])
    assert response.status_code == 303, response.text[:300]
    page = session[0].get(response.headers["location"])
    assert page.status_code == 200, page.text[:300]
    return unescape(page.text)


def events(stack: DevStack, event: str, role_arn: str) -> list[dict[str, Any]]:
    return [e for e in audit_events(stack) if e["event"] == event and e.get("role") == role_arn]


def test_a_chain_reaches_the_spoke_account_through_the_hub_session(paths_stack: DevStack,
                                                                   alice: tuple[httpx.Client, str]) -> None:
    creds = credentials(paths_stack, alice, DEVELOPER)
    assert caller(paths_stack, creds)["Arn"] == f"arn:aws:sts::{SPOKE_A}:assumed-role/Developer/alice@example.com"
    # Both hops in the audit log, joined by the hub session's access key (CloudTrail's accessKeyId of the
    # AssumeRole call in the spoke account).
    [target] = events(paths_stack, "credentials_issued", DEVELOPER)
    hub = [e for e in events(paths_stack, "hub_session_issued", HUB) if e["target_role"] == DEVELOPER][-1]
    assert target["caller_access_key_id"] == hub["access_key_id"] != target["access_key_id"] == creds["AccessKeyId"]
    assert target["hub_role"] == HUB and target["source_identity"] == hub["source_identity"] == "alice@example.com"
    assert target["assumed_role_arn"].endswith(":assumed-role/Developer/alice@example.com")
    assert target["session_name"] == "alice@example.com" and hub["via"] == "web_identity"
    # The next chain reuses the hub session from the credential cache: one STS call, not two.
    credentials(paths_stack, alice, SANDBOX)
    again = [e for e in events(paths_stack, "hub_session_issued", HUB) if e["target_role"] == SANDBOX][-1]
    assert again["cached"] is True and again["access_key_id"] == hub["access_key_id"]


def test_a_chain_from_a_saml_hub(paths_stack: DevStack, alice: tuple[httpx.Client, str]) -> None:
    """The hub session by AssumeRoleWithSAML (an assertion the broker signs), then AssumeRole signed by it; the
    SourceIdentity the assertion set carries into the spoke."""
    target = role(SPOKE_A, "FromSaml")
    creds = credentials(paths_stack, alice, target)
    assert caller(paths_stack, creds)["Arn"] == f"arn:aws:sts::{SPOKE_A}:assumed-role/FromSaml/alice@example.com"
    [event] = events(paths_stack, "credentials_issued", target)
    hub = [e for e in events(paths_stack, "hub_session_issued", role(ACCOUNT, "SamlHub"))][-1]
    assert hub["via"] == "saml" and event["caller_access_key_id"] == hub["access_key_id"]
    assert event["source_identity"] == "alice@example.com"


def test_a_chain_with_an_external_id_and_its_console(paths_stack: DevStack, alice: tuple[httpx.Client, str]) -> None:
    creds = credentials(paths_stack, alice, SANDBOX)
    assert caller(paths_stack, creds)["Account"] == SPOKE_B
    expiry = datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00"))
    assert expiry - datetime.now(UTC) <= timedelta(minutes=30)  # the grant's 30m, not the hub's hour
    # The strict federation endpoint refuses a SessionDuration above 3600 for chained credentials.
    assert "Signed in to the AWS console (local) as" in console_page(paths_stack, alice, DEVELOPER)


def test_assume_role_with_the_brokers_own_credentials(paths_stack: DevStack, alice: tuple[httpx.Client, str]) -> None:
    creds = credentials(paths_stack, alice, AUDITOR)
    assert caller(paths_stack, creds)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Auditor/alice@example.com"
    expiry = datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00"))
    assert expiry - datetime.now(UTC) > timedelta(hours=1, minutes=50)  # not a chain: the grant's 2h
    [event] = events(paths_stack, "credentials_issued", AUDITOR)
    assert event["caller_access_key_id"] == broker_key_id(paths_stack) and event["via"] == "assume_role"
    assert event["source_identity"] == "alice@example.com" and "hub_role" not in event
    assert "Auditor" in console_page(paths_stack, alice, AUDITOR)


def test_a_federation_token_for_the_console(paths_stack: DevStack, alice: tuple[httpx.Client, str]) -> None:
    creds = credentials(paths_stack, alice, FEDERATED)
    assert "cannot call IAM" in creds["Note"]
    identity = caller(paths_stack, creds)
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:federated-user/alice"
    iam = aws_client(paths_stack.aws, "iam", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    with pytest.raises(ClientError, match="AccessDenied"):
        iam.list_roles()
    [event] = events(paths_stack, "credentials_issued", FEDERATED)
    assert event["assumed_role_arn"] == identity["Arn"] and event["caller_access_key_id"] == broker_key_id(paths_stack)
    # The federation endpoint refuses federation-token credentials with a SessionDuration: the broker sends none.
    assert "federated-user/alice" in console_page(paths_stack, alice, FEDERATED)


def refused(stack: DevStack, session: tuple[httpx.Client, str], arn: str, status: int, reason: str) -> str:
    before = len(events(stack, "credentials_issued", arn))
    response = browser.post_role(session[0], stack.broker_url, "credentials", arn, session[1], format="json")
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["error"] == reason
    [event] = [e for e in audit_events(stack) if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status
    assert len(events(stack, "credentials_issued", arn)) == before  # nothing issued
    return str(body["message"])


def test_a_chain_from_a_hub_the_person_is_not_granted(paths_stack: DevStack, bob: tuple[httpx.Client, str]) -> None:
    audit = role(SPOKE_A, "AdminAudit")
    listed = {r["role_arn"]: r for r in browser.roles(bob[0], paths_stack.broker_url)["roles"]}
    assert role(ACCOUNT, "AdminHub") not in listed  # the chain is listed, saying its hub is not granted
    assert (listed[audit]["via"], listed[audit]["from"], listed[audit]["hub_granted"]) == (
        "assume_role", role(ACCOUNT, "AdminHub"), False)
    page = bob[0].get(f"{paths_stack.broker_url}/roles", headers={"Accept": "text/html"}).text
    assert "through AdminHub (not granted to you)" in page
    hubs_before = len([e for e in audit_events(paths_stack) if e["event"] == "hub_session_issued"])
    message = refused(paths_stack, bob, audit, 403, "chain_source_not_granted")
    assert message == "This role is reached through the hub role AdminHub, which you are not granted."
    assert len([e for e in audit_events(paths_stack) if e["event"] == "hub_session_issued"]) == hubs_before


@pytest.mark.parametrize(("name", "why"), [
    ("brokered/WrongExternalId", "a wrong ExternalId"),
    ("NoTagSession", "tags sent, no sts:TagSession in the trust policy"),
], ids=["wrong-external-id", "own-credentials-no-tag-session"])
def test_aws_refusals_with_the_brokers_own_credentials(paths_stack: DevStack, alice: tuple[httpx.Client, str],
                                                       name: str, why: str) -> None:
    message = refused(paths_stack, alice, role(ACCOUNT, name), 403, "sts_access_denied")
    assert message == "AWS refused this role: its trust policy does not allow this sign-in.", why
    [failure] = [e for e in audit_events(paths_stack) if e["event"] == "request_failed"][-1:]
    assert failure["detail"].startswith("STS AccessDenied: ") and "sts:AssumeRole" in failure["detail"]


def test_a_chain_whose_target_does_not_allow_the_carried_tags(paths_stack: DevStack,
                                                               alice: tuple[httpx.Client, str]) -> None:
    message = refused(paths_stack, alice, role(SPOKE_A, "ChainNoTag"), 403, "sts_access_denied")
    assert "trust policy does not allow" in message
