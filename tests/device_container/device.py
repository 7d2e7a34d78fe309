"""The CLI's side of RFC 8628 (ask for a code pair, poll) and the browser's (type the code, approve or deny),
over real HTTP against a running broker."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from broker.devstack import browser
from broker.devstack.stack import DevStack

CLIENT_ID = "sts-broker-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def request_code(url: str, device_name: str | None = None, client_id: str = CLIENT_ID) -> httpx.Response:
    form = {"client_id": client_id, **({"device_name": device_name} if device_name is not None else {})}
    return httpx.post(f"{url}/oauth2/device_authorization", data=form, timeout=10)


def new_code(url: str, device_name: str | None = None) -> dict[str, Any]:
    response = request_code(url, device_name)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(url: str, device_code: str, client_id: str = CLIENT_ID) -> httpx.Response:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id}
    return httpx.post(f"{url}/oauth2/token", data=form, timeout=10)


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


def confirmation(client: httpx.Client, url: str, user_code: str) -> httpx.Response:
    return client.get(f"{url}/device", params={"user_code": user_code})


def decide(client: httpx.Client, url: str, user_code: str, action: str = "approve",
           csrf: str | None = None) -> httpx.Response:
    """What the confirmation page's buttons post (the CSRF token read from the page unless given)."""
    if csrf is None:
        page = confirmation(client, url, user_code)
        found = CSRF.search(page.text)
        assert page.status_code == 200 and found, page.text[:300]
        csrf = found.group(1)
    return client.post(f"{url}/device", data={"user_code": user_code, "action": action, "csrf_token": csrf})


@contextmanager
def signed_in(url: str, user: str) -> Iterator[httpx.Client]:
    with browser.browser() as client:
        landed = browser.login(client, url, "dev", user)
        assert landed.status_code == 303, landed.text[:300]
        yield client


def device_login(stack: DevStack, user: str, device_name: str = "ci-runner") -> dict[str, Any]:
    """A whole `sts-broker login --device` for `user`: the token response (access_token, session_id ...)."""
    code = new_code(stack.broker_url, device_name)
    with signed_in(stack.broker_url, user) as client:
        assert decide(client, stack.broker_url, code["user_code"]).status_code == 200
    answer = poll(stack.broker_url, code["device_code"])
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
