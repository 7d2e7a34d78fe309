"""`aws.sts_max_attempts` bounds the tries of both STS transports (the event-loop client and boto3's standard
retry mode), within 1-5; a refusal is never retried by either."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError

from broker.devstack import browser
from broker.devstack.stack import DevStack
from broker.settings import AwsConfig
from tests.faults.conftest import DEV, assert_refused, issued_count, signed_in
from tests.faults.faulty_sts import FaultySts, error, running_faulty_sts
from tests.support.own_stack import variant

THROTTLED = error(400, "Throttling", "Rate exceeded")


@pytest.mark.parametrize("attempts", [0, 6])
def test_attempts_out_of_bounds_are_refused(attempts: int) -> None:
    with pytest.raises(ValidationError, match="sts_max_attempts"):
        AwsConfig(sts_max_attempts=attempts)


@pytest.fixture(scope="module")
def boto3_replica(stack: DevStack) -> Iterator[tuple[FaultySts, str]]:
    assert stack.settings.aws.sts_endpoint_url is not None
    exchange = stack.settings.token_exchange.model_copy(update={"sts_transport": "boto3"})
    with running_faulty_sts(stack.settings.aws.sts_endpoint_url) as sts, variant(
            stack, replica=True, token_exchange=exchange,
            aws={"sts_endpoint_url": sts.url, "sts_max_attempts": 2,
                 "read_timeout": timedelta(seconds=2)}) as url:
        yield sts, url


@pytest.fixture(scope="module")
def bob(stack: DevStack) -> Iterator[tuple[httpx.Client, str]]:
    with browser.browser() as client:
        yield client, signed_in(client, stack.broker_url)


def test_boto3_retries_throttling_as_configured(stack: DevStack, boto3_replica: tuple[FaultySts, str],
                                                bob: tuple[httpx.Client, str]) -> None:
    sts, url = boto3_replica
    client, csrf = bob
    sts.play(THROTTLED)
    assert browser.post_role(client, url, "credentials", DEV, csrf).status_code == 200
    assert len(sts.arrivals) == 2
    sts.play(then=THROTTLED)
    issued = issued_count(stack)
    assert_refused(stack, browser.post_role(client, url, "credentials", DEV, csrf), 503, "sts_throttling")
    assert len(sts.arrivals) == 2 and issued_count(stack) == issued


def test_boto3_never_retries_a_refusal(stack: DevStack, boto3_replica: tuple[FaultySts, str],
                                       bob: tuple[httpx.Client, str]) -> None:
    sts, url = boto3_replica
    client, csrf = bob
    sts.play(error(403, "AccessDenied", "Not authorized"))
    assert_refused(stack, browser.post_role(client, url, "credentials", DEV, csrf), 403, "sts_access_denied")
    assert len(sts.arrivals) == 1
