"""The device grant's polling (RFC 8628 3.5): wait `interval` between polls, five seconds more after each
slow_down, keep going on authorization_pending, stop on anything else."""

from __future__ import annotations

from typing import Any

import pytest

from broker.client import login
from broker.client.errors import ClientError


class Answers:
    """A broker that answers the device authorization, then the given token answers in turn."""

    def __init__(self, *token_answers: tuple[int, dict[str, Any]]) -> None:
        self.url = "https://broker.example.com"
        self.token_answers = list(token_answers)
        self.forms: list[dict[str, str]] = []

    def send(self, method: str, path: str, *, form: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        self.forms.append(form or {})
        if path == "/oauth2/device_authorization":
            return 200, {"device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": self.url + "/device",
                         "verification_uri_complete": self.url + "/device?user_code=BCDF-GHJK",
                         "expires_in": 600, "interval": 2}
        return self.token_answers.pop(0)


def test_polls_at_the_interval_and_slows_down_when_told() -> None:
    broker = Answers((400, {"error": "authorization_pending"}), (400, {"error": "slow_down"}),
                     (400, {"error": "authorization_pending"}), (200, {"access_token": "t"}))
    waits: list[float] = []
    assert login.device(broker, sleep=waits.append) == {"access_token": "t"}  # type: ignore[arg-type]
    assert waits == [2, 2, 7, 7]  # the interval grows for every poll after the slow_down
    assert broker.forms[1] == {"grant_type": login.DEVICE_GRANT, "device_code": "dc", "client_id": "sts-broker-cli"}


@pytest.mark.parametrize("error", ["access_denied", "expired_token", "invalid_grant"])
def test_stops_on_a_refusal(error: str) -> None:
    broker = Answers((400, {"error": "authorization_pending"}), (400, {"error": error}))
    with pytest.raises(ClientError, match=f"login failed: the broker refused: {error}"):
        login.device(broker, sleep=lambda _: None)  # type: ignore[arg-type]
