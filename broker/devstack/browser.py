"""A scripted browser for the demo self-test and the flow tests: real HTTP, real redirects, real cookies."""

from __future__ import annotations

from typing import Any

import httpx

from broker import urls


def browser() -> httpx.Client:
    return httpx.Client(timeout=20.0, follow_redirects=False)


def start_login(client: httpx.Client, broker_url: str, idp: str) -> str:
    """GET /login/{idp}; returns the IdP authorization URL the broker redirected to."""
    response = client.get(broker_url + urls.for_idp(urls.LOGIN, idp))
    if response.status_code != 303:
        raise AssertionError(f"/login/{idp} answered {response.status_code}: {response.text[:200]}")
    return response.headers["location"]


def authorize_at_idp(client: httpx.Client, authorize_url: str, user: str) -> str:
    """Log in at oidc-provider-mock as `user`; returns the callback URL it redirects the browser to."""
    response = client.post(authorize_url, data={"sub": user})
    if response.status_code not in (302, 303):
        raise AssertionError(f"IdP authorize answered {response.status_code}: {response.text[:200]}")
    return response.headers["location"]


def login(client: httpx.Client, broker_url: str, idp: str, user: str) -> httpx.Response:
    callback = authorize_at_idp(client, start_login(client, broker_url, idp), user)
    return client.get(callback)


def roles(client: httpx.Client, broker_url: str) -> dict[str, Any]:
    response = client.get(f"{broker_url}/roles", headers={"Accept": "application/json"})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def post_role(client: httpx.Client, broker_url: str, action: str, role: str, csrf: str,
              **extra: str) -> httpx.Response:
    form = {"role": role, "csrf_token": csrf, **extra}
    return client.post(f"{broker_url}/roles/{action}", data=form, headers={"Accept": "application/json"})
