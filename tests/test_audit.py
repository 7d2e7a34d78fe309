from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit import AuditLog, timestamp


def test_events_are_json_lines(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path / "audit.log"))
    log.event("login_started", idp="okta", client="10.0.0.1", mfa=False, roles=["a"], missing=None)
    log.close()
    [record] = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert record["event"] == "login_started" and record["roles"] == ["a"] and "missing" not in record


@pytest.mark.parametrize("name", ["session_token", "client_secret", "code", "id_token", "password",
                                  "credentials", "saml_assertion", "code_verifier"])
def test_secret_looking_fields_are_refused(tmp_path: Path, name: str) -> None:
    log = AuditLog(str(tmp_path / "audit.log"))
    with pytest.raises(ValueError, match="looks like a secret"):
        log.event("x", **{name: "value"})
    assert (tmp_path / "audit.log").read_text() == ""


@pytest.mark.parametrize("now", [0.0, 1.0005, 1764620000.999, 1764620000.9999996, 1764620000.9999994,
                                 1764620000.1234, 1772323199.9995, 1772323200.0])
def test_timestamp_is_isoformat_to_the_millisecond(now: float) -> None:
    # Formatted once per second for speed; must read exactly as datetime writes it, edges of a second too.
    assert timestamp(now) == datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


def test_timestamps_of_many_moments_match_datetime() -> None:
    moments = [1764620000 + n * 0.000_37 for n in range(20_000)]  # crosses seconds and rounding edges
    assert [timestamp(m) for m in moments] == [
        datetime.fromtimestamp(m, UTC).isoformat(timespec="milliseconds") for m in moments]
