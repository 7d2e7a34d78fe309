"""One stack for the observability suite, in its own moto account (717171717171), on a private Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.devstack.redis_server import running_redis
from broker.devstack.stack import DevStack
from tests.support.own_stack import own_stack

ACCOUNT = "717171717171"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


@pytest.fixture(scope="package")
def obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with running_redis() as redis, own_stack(tmp_path_factory.mktemp("obs"), ACCOUNT, redis) as stack:
        yield stack
