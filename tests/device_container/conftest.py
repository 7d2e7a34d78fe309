"""One dev stack (strict local AWS, the dev OIDC IdP, the broker over uvicorn) for the device flow and the
container-credential tests, with its own account so it can run beside the other flow tests' stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devstack.stack import DevStack, run_stack

ACCOUNT = "456789012345"
RULES = Path(__file__).with_name("rules.yaml")
REFRESH_BEFORE = 897  # of a 900 s credential: re-issued 3 s after it was issued


@pytest.fixture(scope="session")
def dc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with run_stack(tmp_path_factory.mktemp("device-container"), rules=RULES, account_id=ACCOUNT, overrides={
        "rate_limits": {"login_starts": 100000, "device_code_attempts": 1000},
        "device_authorization": {"interval": "1s"},
        "container_credentials": {"refresh_before": REFRESH_BEFORE},
    }) as stack:
        yield stack
