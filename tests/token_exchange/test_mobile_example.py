"""examples/mobile runs as documented: the app signs in at the local provider, exchanges its ID token,
and lists its own S3 prefix in the strict local AWS. A subprocess: the example starts a whole stack of its
own, and moto's state is per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from broker.config import load_idps
from broker.connectors.token_config import TokenIdpConfig
from broker.rules_source import load_rules

ROOT = Path(__file__).resolve().parents[2]


def test_mobile_example_runs() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "mobile" / "run_local.py")],
                          capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "role arn:aws:iam::123456789012:role/MobileS3" in done.stdout
    assert "s3://user-data/users/alice/notes.txt" in done.stdout and "users/bob" not in done.stdout


def test_shipped_token_idp_configs_and_rules_load() -> None:
    idps = load_idps(ROOT / "idp_configs", need_env=False)
    google, keycloak = idps["google-mobile"], idps["keycloak-mobile"]
    assert isinstance(google, TokenIdpConfig) and isinstance(keycloak, TokenIdpConfig)
    assert google.issuers == ["https://accounts.google.com", "accounts.google.com"]
    assert load_rules(ROOT / "examples" / "mobile" / "rules.yaml").rules
