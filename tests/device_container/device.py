"""Test helpers of RFC 8628 over real HTTP (the requests themselves: broker/devstack/device_login.py): a poller
thread like the CLI, a signed-in browser, a whole device login."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.device_login import approved_login, poll
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import AUDIENCE, DevStack, aws_client, trust_policy
from broker.web.app import create_app


@dataclass
class Poller:
    """Polls like the CLI: every `interval` seconds, until an answer other than authorization_pending, or
    `limit` polls (bounded)."""

    url: str
    device_code: str
    interval: float
    limit: int = 30
    answers: list[httpx.Response] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Poller:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        for _ in range(self.limit):
            answer = poll(self.url, self.device_code)
            self.answers.append(answer)
            if answer.status_code == 200 or answer.json().get("error") != "authorization_pending":
                return
            time.sleep(self.interval)

    def result(self, timeout: float = 40.0) -> httpx.Response:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the poller did not finish"
        return self.answers[-1]


@contextmanager
def signed_in(url: str, user: str) -> Iterator[httpx.Client]:
    with browser.browser() as client:
        landed = browser.login(client, url, "dev", user)
        assert landed.status_code == 303, landed.text[:300]
        yield client


def device_login(stack: DevStack, user: str, device_name: str = "ci-runner") -> dict[str, Any]:
    """A whole `sts-broker login --device` for `user`: the token response (access_token, session_id ...)."""
    with signed_in(stack.broker_url, user) as client:
        return approved_login(stack.broker_url, client, device_name)


def trust_another_url(stack: DevStack, public_url: str) -> None:
    """Another broker's public URL (a variant, replicas) as one more OIDC provider DemoDeveloper trusts: what
    it mints (iss = its URL, signed with the stack's key) reaches STS."""
    iam = aws_client(stack.aws, "iam")
    arn = iam.create_open_id_connect_provider(Url=public_url, ClientIDList=[AUDIENCE],
                                              ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    current = iam.get_role(RoleName="DemoDeveloper")["Role"]["AssumeRolePolicyDocument"]
    current = json.loads(current) if isinstance(current, str) else current
    extra = json.loads(trust_policy(arn, arn.split(":oidc-provider/", 1)[1]))["Statement"]
    iam.update_assume_role_policy(RoleName="DemoDeveloper", PolicyDocument=json.dumps(
        {**current, "Statement": [*current["Statement"], *extra]}))


@contextmanager
def variant(stack: DevStack, **updates: Any) -> Iterator[str]:
    """The stack's broker with other settings, served by a second broker (its own memory store) on its port."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    settings = stack.settings.model_copy(update={"public_url": url, **updates})
    with asgi_server(create_app(settings, audit=AuditLog(str(stack.audit_path))), port):
        yield url
