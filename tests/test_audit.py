from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.audit import AuditLog


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
