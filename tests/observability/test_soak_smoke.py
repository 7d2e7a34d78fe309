"""bench/soak.py in a few seconds (its own process: its own moto, its own two replicas and Redis): the harness
runs every operation of the mix against both replicas, and says PASS only with no error and no lost login."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_passes() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "6", "--rate", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[-1] == "PASS"
    assert any(line.startswith("errors: 0; logins: ") and line.endswith(" 0 lost") for line in lines)
    for route in ("GET /oidc/dev/callback", "POST /oauth2/token", "POST /roles/console", "POST /roles/credentials",
                  "SAML login (to the ACS)"):
        assert any(line.startswith(route) for line in lines), route
    assert sum(line.startswith("RSS ") for line in lines) == 2
