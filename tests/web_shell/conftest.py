"""One strict local stack for the shell's tests (its own moto account), with the broker served in this
process plus one route that fails the way a bug would (an exception no handler knows), and Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.devstack.servers import asgi_server
from broker.devstack.stack import DEMO_RULES, DevStack, run_stack
from broker.settings import Settings
from broker.web.app import create_app
from broker.web.csp import app_policy
from tests.support.chromium import launched

ACCOUNT = "151515151515"
BOOM = "/test-only/boom"
ICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10"/></svg>'


async def _boom(request: Request) -> Response:
    raise RuntimeError("a bug, with input that could be a secret: hunter2")


def _serve_with_boom(config: Path, settings: Settings, port: int) -> AbstractContextManager[object]:
    app = create_app(settings)
    app.router.routes.append(Route(BOOM, _boom, methods=["GET", "POST"]))
    return asgi_server(app, port)


_SHARED: dict[str, DevStack] = {}


@pytest.fixture
def shell_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> DevStack:
    """One stack for tests/web_shell and tests/a11y (which imports this fixture): a module-level cache, closed
    when the session ends. (A session fixture imported into another package would be a second definition,
    and a second stack in the same moto account.)"""
    if "stack" not in _SHARED:
        exits = ExitStack()
        request.config.add_cleanup(exits.close)
        work = tmp_path_factory.mktemp("web-shell")
        rules = work / "rules.yaml"
        rules.write_text(DEMO_RULES.read_text().replace("123456789012", ACCOUNT)
                         .replace("210987654321", ACCOUNT[::-1]))
        (work / "iconic.svg").write_text(ICON_SVG)
        # An IdP with an icon (its login is never started: the issuer is never contacted).
        iconic = {"id": "iconic", "type": "oidc", "name": "Iconic IdP", "issuer": "https://iconic.example.com",
                  "client_id": "iconic", "icon": str(work / "iconic.svg")}
        _SHARED["stack"] = exits.enter_context(run_stack(
            work / "stack", rules=rules, account_id=ACCOUNT, serve_broker=_serve_with_boom,
            extra_idps={"iconic": iconic}, overrides={"rate_limits": {"login_starts": 100000},
                                              # same tab: the console test follows it in the page
                                              "console": {"new_tab": False}}))
    return _SHARED["stack"]


def default_policy(stack: DevStack) -> str:
    return app_policy(stack.settings.aws.federation_url, stack.settings.aws.console_url)


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]


# Per module, as tests/saml_sp's: playwright's sync API allows one instance at a time in a process, so no
# browser may outlive the module that started it.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched()
