"""JSON over HTTP to the broker (urllib: proxies from the environment, the system's CA store). A 401 on a
bearer call means the CLI session is over; any other refusal becomes one line with the broker's message."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from broker.client.errors import ClientError, SessionEnded

TIMEOUT = 30.0
USER_AGENT = "sts-broker-cli/1"


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Broker:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self._token = token

    def __repr__(self) -> str:
        return f"Broker({self.url!r})"  # never the token

    def send(self, method: str, path: str, *, body: dict[str, Any] | None = None,
             form: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for any status; ClientError when the broker cannot be reached."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        # The URL is https (or http to loopback) by state.check_broker_url: never file: or another scheme.
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _decode(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach the broker at {self.url}: {reason}") from None

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A bearer call that must succeed: SessionEnded on 401, ClientError on any other refusal."""
        status, data = self.send(method, path, body=body)
        if status == 401:
            raise SessionEnded(self.url)
        if status >= 400:
            raise ClientError(refusal(status, data))
        return data


def refusal(status: int, data: dict[str, Any]) -> str:
    """The broker's own words: {error, message, error_id}, or RFC 6749's {error, error_description}."""
    message = data.get("message") or data.get("error_description") or data.get("error") or f"HTTP {status}"
    error_id = data.get("error_id")
    suffix = f" (error id {error_id})" if isinstance(error_id, str) else ""
    return f"the broker refused: {message}{suffix}"
