"""The two sides of RFC 8628 over real HTTP, for the demo self-test and the flow tests: the CLI's (ask for a
code pair, poll) and the browser's (type the code, approve or deny on the confirmation page)."""

from __future__ import annotations

import re
from typing import Any

import httpx

CLIENT_ID = "sts-broker-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def request_code(url: str, device_name: str | None = None, client_id: str = CLIENT_ID) -> httpx.Response:
    form = {"client_id": client_id, **({"device_name": device_name} if device_name is not None else {})}
    return httpx.post(f"{url}/oauth2/device_authorization", data=form, timeout=10)


def new_code(url: str, device_name: str | None = None) -> dict[str, Any]:
    response = request_code(url, device_name)
    if response.status_code != 200:
        raise AssertionError(f"device authorization answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def poll(url: str, device_code: str, client_id: str = CLIENT_ID) -> httpx.Response:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id}
    return httpx.post(f"{url}/oauth2/token", data=form, timeout=10)


def confirmation(client: httpx.Client, url: str, user_code: str) -> httpx.Response:
    return client.get(f"{url}/device", params={"user_code": user_code})


def decide(client: httpx.Client, url: str, user_code: str, action: str = "approve",
           csrf: str | None = None) -> httpx.Response:
    """What the confirmation page's buttons post (the CSRF token read from the page unless given)."""
    if csrf is None:
        page = confirmation(client, url, user_code)
        found = CSRF.search(page.text)
        if page.status_code != 200 or found is None:
            raise AssertionError(f"confirmation page answered {page.status_code}: {page.text[:300]}")
        csrf = found.group(1)
    return client.post(f"{url}/device", data={"user_code": user_code, "action": action, "csrf_token": csrf})


def approved_login(url: str, signed_in: httpx.Client, device_name: str) -> dict[str, Any]:
    """A whole device login approved in `signed_in` (a browser with a session): the token answer."""
    code = new_code(url, device_name)
    done = decide(signed_in, url, code["user_code"])
    if done.status_code != 200:
        raise AssertionError(f"approval answered {done.status_code}: {done.text[:300]}")
    answer = poll(url, code["device_code"])
    if answer.status_code != 200:
        raise AssertionError(f"the device code grant answered {answer.status_code}: {answer.text[:300]}")
    body: dict[str, Any] = answer.json()
    return body


def container_step(url: str, signed_in: httpx.Client, role: str) -> dict[str, str]:
    """The demo self-test's device login and container credentials: a CLI session approved in `signed_in`, a
    container token for `role`, and what GET /container-credentials answers with it (botocore's shape)."""
    login = approved_login(url, signed_in, "demo self-test")
    made = httpx.post(f"{url}/cli/container-tokens", json={"role": role}, timeout=10,
                      headers={"Authorization": f"Bearer {login['access_token']}"})
    if made.status_code != 200:
        raise AssertionError(f"container token answered {made.status_code}: {made.text[:300]}")
    fetched = httpx.get(made.json()["full_uri"], headers={"Authorization": made.json()["token"]}, timeout=10)
    if fetched.status_code != 200:
        raise AssertionError(f"container credentials answered {fetched.status_code}: {fetched.text[:300]}")
    creds: dict[str, str] = fetched.json()
    return creds
