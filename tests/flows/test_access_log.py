"""The access log (broker.access): every request, only refused and failed ones (the default), or none;
never a query string."""

from __future__ import annotations

import logging

import httpx
import pytest

from broker.devstack.stack import DevStack
from tests.flows.test_faults import variant


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "broker.access"]


@pytest.mark.parametrize("setting, logged", [
    ("all", ["GET /healthz 200", "GET /login/nowhere 404"]),
    ("errors", ["GET /login/nowhere 404"]),
    ("off", []),
])
def test_access_log_setting(stack: DevStack, caplog: pytest.LogCaptureFixture, setting: str,
                            logged: list[str]) -> None:
    caplog.set_level(logging.INFO, logger="broker.access")
    with variant(stack, access_log=setting) as url:
        caplog.clear()
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/login/nowhere?code=secret-code&state=s").status_code == 404
    lines = _lines(caplog)
    assert [line.rsplit(" ", 2)[0] for line in lines] == logged  # without the time and request id
    assert not any("secret-code" in line or "?" in line for line in lines)
