"""The faults suite's stack, in its own moto account (727272727272), on a private Redis; helpers to check that a
fault ends in a clear refusal, audited, with nothing issued."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.redis_server import running_redis
from broker.devstack.stack import DevStack
from tests.support.own_stack import audit_events, own_stack

ACCOUNT = "727272727272"
DEV = f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper"
ISSUED = {"credentials_issued", "console_issued"}  # what a person receives (a hub session never is)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with running_redis() as redis, own_stack(tmp_path_factory.mktemp("faults"), ACCOUNT, redis) as stack:
        yield stack


def issued_count(stack: DevStack) -> int:
    return sum(e["event"] in ISSUED for e in audit_events(stack))


def signed_in(client: httpx.Client, url: str, user: str = "bob") -> str:
    """A browser signed in at `url` through the dev OIDC IdP; its CSRF token."""
    assert browser.login(client, url, "dev", user).status_code == 303
    csrf: str = browser.roles(client, url)["csrf_token"]
    return csrf


def assert_refused(stack: DevStack, response: httpx.Response, status: int, reason: str) -> dict[str, str]:
    """The refusal's status and reason, a public message, an error id and request id, and its audit event."""
    assert response.status_code == status, response.text[:300]
    body: dict[str, str] = response.json()
    assert body["error"] == reason and body["message"] and body["error_id"]
    assert body["request_id"] == response.headers["x-request-id"]
    [event] = [e for e in audit_events(stack) if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == reason and event["status"] == status
    assert event["request_id"] == body["request_id"]
    return body
