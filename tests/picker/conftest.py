"""One demo stack for the picker's tests: the demo's rules (alice 40 roles in 12 accounts, bob one, carol
none) moved to this suite's own moto account, Redis as the state store (every replica sees a person's
favourites), and `picker.single_role: open`."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login as saml_browser_login
from broker.devstack.redis_server import running_redis
from broker.devstack.stack import DEMO_RULES, DevStack, run_stack

ACCOUNT = "262626262626"
SPOKE = ACCOUNT[::-1]
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/DemoAdmin"
DEVELOPER = f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper"
PAYMENTS_ADMIN = "arn:aws:iam::310000000001:role/Admin"
WEB_DEV_READONLY = "arn:aws:iam::310000000010:role/ReadOnly"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    os.environ.setdefault("BROKER_SESSION_SECRET", secrets.token_urlsafe(48))
    workdir = tmp_path_factory.mktemp("picker")
    rules = workdir / "picker-rules.yaml"
    rules.write_text(DEMO_RULES.read_text().replace("123456789012", ACCOUNT).replace("210987654321", SPOKE))
    with running_redis() as redis, run_stack(workdir / "stack", rules=rules, account_id=ACCOUNT, demo_fleet=True,
                                             overrides={"store": {"url": redis.url},
                                                        "picker": {"single_role": "open"},
                                                        # same tab: these tests follow the console in the page
                                                        # (the new tab is tests/portal's)
                                                        "console": {"new_tab": False},
                                                        "rate_limits": {"login_starts": 100000}}) as dev:
        yield dev


def audit_events(stack: DevStack, event: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in stack.audit_path.read_text().splitlines()]
    return [e for e in found if event is None or e["event"] == event]


@contextmanager
def signed_in(stack: DevStack, user: str, idp: str = "dev") -> Iterator[httpx.Client]:
    """A scripted browser signed in as `user` through the dev OIDC IdP, or a dev SAML IdP."""
    with browser.browser() as client:
        landed = (browser.login(client, stack.broker_url, "dev", user) if idp == "dev"
                  else saml_browser_login(client, stack.broker_url, idp, user))
        assert landed.status_code == 303 and landed.headers["location"] == "/roles", landed.text[:300]
        yield client
