from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from broker.cli import main
from broker.config import load_idps, load_settings
from broker.connectors.oidc_config import OidcIdpConfig
from broker.errors import ConfigError
from broker.issuers.signing import generate_key_file

STRONG = secrets.token_urlsafe(48)


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def good_tree(tmp: Path, **overrides: object) -> Path:
    generate_key_file(tmp / "keys" / "k1.pem", bits=2048)
    write(tmp / "idp_configs" / "okta.yaml", {
        "id": "okta", "type": "oidc", "name": "Okta", "issuer": "https://example.okta.com",
        "client_id": "0oa1", "client_secret": "${OKTA_SECRET}", "scopes": ["openid", "email", "groups"],
    })
    write(tmp / "rules.yaml", {"version": 1, "rules": [{"id": "r", "grant": [
        {"role": "arn:aws:iam::111122223333:role/R"}]}]})
    data = {
        "public_url": "https://broker.example.com", "session": {"secret": "${SESSION_SECRET}"},
        "keys": [{"kid": "k1", "file": "keys/k1.pem", "active": True}],
        "idp_configs": "idp_configs", "rules": "rules.yaml", **overrides,
    }
    return write(tmp / "broker.yaml", data)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET", STRONG)
    monkeypatch.setenv("OKTA_SECRET", "okta-client-secret-value")


def test_good_config_loads_with_env_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(good_tree(tmp_path))
    assert settings.session.secret.get_secret_value() == STRONG
    assert settings.rules == tmp_path / "rules.yaml"
    idps = load_idps(settings.idp_configs)
    okta = idps["okta"]
    assert isinstance(okta, OidcIdpConfig)
    secret = okta.client_secret
    assert secret is not None and secret.get_secret_value() == "okta-client-secret-value"
    assert "okta-client-secret-value" not in repr(idps) and STRONG not in repr(settings)


def test_every_problem_is_listed_with_file_and_field(tmp_path: Path) -> None:
    file = good_tree(tmp_path, public_url="http://broker.example.com", surprise=1,
                     aws={"region": "moon", "sts_endpoint_url": "ftp://x"})
    with pytest.raises(ConfigError) as err:
        load_settings(file)
    text = "\n".join(err.value.problems)
    lines = file.read_text().splitlines()
    for key, fragment in (("public_url", "public_url: must use https"),
                          ("surprise", "surprise: Extra inputs are not permitted"),
                          ("  region", "aws.region:"), ("  sts_endpoint_url", "aws.sts_endpoint_url:")):
        line = next(i for i, text_line in enumerate(lines, 1) if text_line.startswith(key))
        assert f"{file}:{line}: {fragment}" in text


@pytest.mark.parametrize("secret", ["changeme", "x" * 40, "short-but-random-Zq9"])
def test_weak_session_secret_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("SESSION_SECRET", secret)
    with pytest.raises(ConfigError, match=r"broker\.yaml:\d+: session\.secret: secret is too"):
        load_settings(good_tree(tmp_path))


def test_missing_env_reference_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_SECRET")
    with pytest.raises(ConfigError, match=r"session\.secret: environment variable SESSION_SECRET is not set"):
        load_settings(good_tree(tmp_path))


def test_idp_problems_across_files_reported_together(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"id": "a", "type": "oidc", "name": "A", "issuer": "http://evil.example.com",
                                "client_id": "c"})
    write(tmp_path / "b.yaml", {"id": "B!", "type": "oidc", "name": "B", "issuer": "https://b.example.com",
                                "client_id": "c", "scopes": ["email"], "algorithms": ["none"]})
    with pytest.raises(ConfigError) as err:
        load_idps(tmp_path)
    text = "\n".join(err.value.problems)
    assert f"{tmp_path / 'a.yaml'}:3: issuer:" in text
    assert f"{tmp_path / 'b.yaml'}:4: id:" in text and f"{tmp_path / 'b.yaml'}:2: algorithms.0:" in text


def test_check_command_prints_problems_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = good_tree(tmp_path)
    assert main(["check", "--config", str(file)]) == 0
    write(tmp_path / "rules.yaml", {"version": 2, "rules": [{"id": "r"}]})
    assert main(["check", "--config", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'rules.yaml'}:3: version:" in err and f"{tmp_path / 'rules.yaml'}:2: rules[r]:" in err


def test_serve_refuses_to_start_on_weak_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SESSION_SECRET", "changeme")
    assert main(["serve", "--config", str(good_tree(tmp_path)), "--port", "1"]) == 2
    assert "session.secret: secret is too short" in capsys.readouterr().err
