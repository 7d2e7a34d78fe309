"""Test helpers of RFC 8628 over real HTTP (the requests themselves: broker/devstack/device_login.py): a poller
thread like the CLI, a signed-in browser, a whole device login."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from broker.devstack import browser
from broker.devstack.device_login import approved_login, poll
from broker.devstack.stack import DevStack


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
