"""STS misbehaving for real (a scripted HTTP STS in front of the strict local AWS): slow, throttled, failing,
refusing with each AWS error code, answering garbage. Each: a clear status within the deadline, nothing issued,
and the broker serves the next request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.stack import DevStack
from tests.faults.conftest import ACCOUNT, DEV, assert_refused, issued_count, signed_in
from tests.faults.faulty_sts import CLOSE, FaultySts, Step, error, garbage, running_faulty_sts, stall
from tests.support.own_stack import moved, scrape, variant

READ_TIMEOUT, ATTEMPTS, BACKOFF = 1.0, 3, 0.2
API = "AssumeRoleWithWebIdentity"


@pytest.fixture(scope="module")
def faulty(stack: DevStack) -> Iterator[tuple[FaultySts, str]]:
    assert stack.settings.aws.sts_endpoint_url is not None
    with running_faulty_sts(stack.settings.aws.sts_endpoint_url) as sts, variant(stack, replica=True, aws={
            "sts_endpoint_url": sts.url, "read_timeout": timedelta(seconds=READ_TIMEOUT),
            "sts_max_attempts": ATTEMPTS, "sts_retry_backoff": timedelta(seconds=BACKOFF)}) as url:
        yield sts, url


@pytest.fixture(scope="module")
def bob(stack: DevStack) -> Iterator[tuple[httpx.Client, str]]:
    """Signed in at the stack's broker; the faulty replica serves the same session (one Redis, one secret)."""
    with browser.browser() as client:
        yield client, signed_in(client, stack.broker_url)


def _credentials(faulty: tuple[FaultySts, str], bob: tuple[httpx.Client, str]) -> httpx.Response:
    client, csrf = bob
    return browser.post_role(client, faulty[1], "credentials", DEV, csrf)


def _recovers(faulty: tuple[FaultySts, str], bob: tuple[httpx.Client, str]) -> None:
    """The next request, with STS well again, gets credentials from the strict local AWS."""
    faulty[0].play()
    response = _credentials(faulty, bob)
    assert response.status_code == 200 and response.json()["AccessKeyId"]


def test_a_slow_sts_is_a_504_within_the_read_timeout(stack: DevStack, faulty: tuple[FaultySts, str],
                                                     bob: tuple[httpx.Client, str]) -> None:
    sts, url = faulty
    sts.play(stall(READ_TIMEOUT * 4))
    before, issued = scrape(url), issued_count(stack)
    started = time.monotonic()
    response = _credentials(faulty, bob)
    assert time.monotonic() - started < READ_TIMEOUT * 3  # not retried: a retried timeout outlasts the deadline
    assert_refused(stack, response, 504, "sts_timeout")
    assert len(sts.arrivals) == 1 and issued_count(stack) == issued
    assert moved(before, scrape(url), "sts_broker_sts_calls_total", api=API, outcome="sts_timeout") == 1
    _recovers(faulty, bob)


def test_throttling_is_retried_with_jitter_then_succeeds(stack: DevStack, faulty: tuple[FaultySts, str],
                                                         bob: tuple[httpx.Client, str]) -> None:
    sts, _ = faulty
    sts.play(error(400, "Throttling", "Rate exceeded"), error(503, "ServiceUnavailable"))
    issued = issued_count(stack)
    response = _credentials(faulty, bob)
    assert response.status_code == 200 and response.json()["SessionToken"]
    assert len(sts.arrivals) == ATTEMPTS and issued_count(stack) == issued + 1
    gaps = [later - earlier for earlier, later in zip(sts.arrivals, sts.arrivals[1:], strict=False)]
    # Full jitter: up to BACKOFF before the 2nd attempt, up to twice that before the 3rd (plus the round trip).
    assert gaps[0] < BACKOFF + 0.5 and gaps[1] < 2 * BACKOFF + 0.5


def test_throttling_that_persists_is_a_503_after_bounded_attempts(stack: DevStack, faulty: tuple[FaultySts, str],
                                                                 bob: tuple[httpx.Client, str]) -> None:
    sts, _ = faulty
    throttled = error(400, "Throttling", "Rate exceeded")
    sts.play(then=throttled)
    issued = issued_count(stack)
    started = time.monotonic()
    body = assert_refused(stack, _credentials(faulty, bob), 503, "sts_throttling")
    assert time.monotonic() - started < (1 + 2) * BACKOFF + 2
    assert len(sts.arrivals) == ATTEMPTS and issued_count(stack) == issued
    assert "try again" in body["message"].lower() or "unavailable" in body["message"].lower()
    _recovers(faulty, bob)


@pytest.mark.parametrize(("status", "code", "reason", "public"), [
    (403, "AccessDenied", "sts_access_denied", "trust policy"),
    (400, "ExpiredTokenException", "sts_expired_token", "identity token"),
    (400, "InvalidIdentityToken", "sts_invalid_identity_token", "identity token"),
    (400, "IDPRejectedClaim", "sts_idp_rejected_claim", "identity token"),
    (400, "MalformedPolicyDocument", "sts_malformed_policy_document", "session policy"),
    (400, "PackedPolicyTooLarge", "sts_packed_policy_too_large", "too large"),
    (403, "RegionDisabledException", "sts_region_disabled", "region"),
    (400, "ValidationError", "sts_validation_error", "invalid"),
    (400, "SomethingNew", "sts_something_new", "AWS refused"),
])
def test_each_aws_refusal_is_a_403_that_says_who_refused(stack: DevStack, faulty: tuple[FaultySts, str],
                                                        bob: tuple[httpx.Client, str], status: int, code: str,
                                                        reason: str, public: str) -> None:
    sts, _ = faulty
    sts.play(error(status, code))
    issued = issued_count(stack)
    body = assert_refused(stack, _credentials(faulty, bob), 403, reason)
    assert public in body["message"] and "faulty STS" not in body["message"]  # STS's own words: audit only
    assert len(sts.arrivals) == 1 and issued_count(stack) == issued  # a refusal is never retried
    _recovers(faulty, bob)


@pytest.mark.parametrize(("steps", "status", "reason"), [
    ([error(400, "IDPCommunicationError")] * ATTEMPTS, 503, "sts_idp_communication_error"),
    ([error(500, "InternalFailure")] * ATTEMPTS, 503, "sts_internal_failure"),
    ([garbage(502, b"<html>Bad Gateway</html>")] * ATTEMPTS, 503, "sts_server_error"),
    ([garbage(200, b"\x00\xffnot xml at all")], 503, "sts_bad_answer"),
    ([garbage(200, b"<AssumeRoleWithWebIdentityResponse/>")], 503, "sts_bad_answer"),
    ([garbage(200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>')], 503, "sts_bad_answer"),
    ([CLOSE] * ATTEMPTS, 503, "sts_unreachable"),
])
def test_a_failing_sts_is_a_clear_503(stack: DevStack, faulty: tuple[FaultySts, str],
                                      bob: tuple[httpx.Client, str], steps: list[Step], status: int,
                                      reason: str) -> None:
    sts, _ = faulty
    sts.play(*steps)
    issued = issued_count(stack)
    assert_refused(stack, _credentials(faulty, bob), status, reason)
    assert issued_count(stack) == issued
    _recovers(faulty, bob)


def test_a_refused_signed_call_in_a_role_chain(stack: DevStack, faulty: tuple[FaultySts, str]) -> None:
    """The chain's hub session cached first; then STS refuses the AssumeRole signed with it (ExpiredToken):
    403 naming the signing credentials, nothing issued; and the chain works again once STS does."""
    sts, url = faulty
    spoke = f"arn:aws:iam::{ACCOUNT[::-1]}:role/DemoAudit"
    with browser.browser() as client:
        csrf = signed_in(client, stack.broker_url, "alice")
        sts.play()
        assert browser.post_role(client, url, "credentials", spoke, csrf).status_code == 200
        assert len(sts.arrivals) == 2  # the hub session (web identity), then AssumeRole signed by it
        sts.play(error(403, "ExpiredToken", "The security token included in the request is expired"))
        issued = issued_count(stack)
        body = assert_refused(stack, browser.post_role(client, url, "credentials", spoke, csrf), 403,
                              "sts_expired_token")
        assert "signs this role's request with have expired" in body["message"]
        assert len(sts.arrivals) == 1 and issued_count(stack) == issued  # the hub from the cache: one call
        sts.play()
        assert browser.post_role(client, url, "credentials", spoke, csrf).status_code == 200


def test_the_strict_local_aws_refusing_for_real(stack: DevStack) -> None:
    """No stub: the local AWS judges the role's trust policy and refuses (AccessDenied)."""
    untrusted = DEV.replace("DemoDeveloper", "Untrusted")
    with browser.browser() as client:
        assert browser.login(client, stack.broker_url, "dev", "alice").status_code == 303
        csrf = browser.roles(client, stack.broker_url)["csrf_token"]
        issued = issued_count(stack)
        response = browser.post_role(client, stack.broker_url, "credentials", untrusted, csrf)
        assert_refused(stack, response, 403, "sts_access_denied")
        assert issued_count(stack) == issued
        assert browser.post_role(client, stack.broker_url, "credentials", DEV, csrf).status_code == 200
