"""The shipped examples and IdP configs are valid: `sts-broker check` accepts them as a deployment would."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from broker.cli import main
from broker.issuers.signing import generate_key_file

ROOT = Path(__file__).resolve().parent.parent


def test_examples_pass_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """The config tree alone, copied elsewhere (as it is mounted at /config): its paths are its own."""
    shutil.copytree(ROOT / "examples" / "config", tmp_path / "config")
    generate_key_file(tmp_path / "config" / "keys" / "k2026a.pem", bits=2048)
    monkeypatch.setenv("BROKER_SESSION_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("BROKER_STORE_URL", "redis://127.0.0.1:6379/0")
    for name in ("OKTA", "ENTRA", "GOOGLE", "KEYCLOAK"):
        monkeypatch.setenv(f"{name}_CLIENT_SECRET", "x")
    assert main(["check", "--config", str(tmp_path / "config" / "broker.yaml")]) == 0, capsys.readouterr().err


def test_the_config_trees_idp_files_are_the_shipped_ones() -> None:
    """examples/config/idp_configs holds copies (a mounted tree cannot follow links out of itself): no drift."""
    copies = sorted(p.relative_to(ROOT / "examples" / "config" / "idp_configs")
                    for p in (ROOT / "examples" / "config" / "idp_configs").rglob("*") if p.is_file())
    assert copies
    for relative in copies:
        shipped = ROOT / "idp_configs" / relative
        assert (ROOT / "examples" / "config" / "idp_configs" / relative).read_bytes() == shipped.read_bytes()


def test_demo_rules_are_valid() -> None:
    from broker.devstack.stack import DEMO_RULES
    from broker.rules_source import load_rules

    assert [r.id for r in load_rules(DEMO_RULES).rules] == ["platform-admins", "fleet", "developers", "no-contractors"]
