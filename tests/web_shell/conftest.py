"""One strict local stack for the shell's tests (its own moto account), with the broker served in this
process plus one route that fails the way a bug would (an exception no handler knows), and Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.devstack.servers import asgi_server
from broker.devstack.stack import DEMO_RULES, DevStack, run_stack
from broker.settings import Settings
from broker.web.app import create_app
from broker.web.csp import app_policy

ACCOUNT = "151515151515"
CHROMIUM = "/usr/bin/chromium"
BOOM = "/test-only/boom"


async def _boom(request: Request) -> Response:
    raise RuntimeError("a bug, with input that could be a secret: hunter2")


def _serve_with_boom(config: Path, settings: Settings, port: int) -> AbstractContextManager[object]:
    app = create_app(settings)
    app.router.routes.append(Route(BOOM, _boom, methods=["GET", "POST"]))
    return asgi_server(app, port)


@pytest.fixture(scope="session")
def shell_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    work = tmp_path_factory.mktemp("web-shell")
    rules = work / "rules.yaml"
    rules.write_text(DEMO_RULES.read_text().replace("123456789012", ACCOUNT)
                     .replace("210987654321", ACCOUNT[::-1]))
    with run_stack(work / "stack", rules=rules, account_id=ACCOUNT, serve_broker=_serve_with_boom,
                   overrides={"rate_limits": {"login_starts": 100000}}) as stack:
        yield stack


def default_policy(stack: DevStack) -> str:
    return app_policy(stack.settings.aws.federation_url, stack.settings.aws.console_url)


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()
