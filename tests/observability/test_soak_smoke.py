"""bench/soak.py for a few seconds (its own process: its own moto, two `sts-broker serve` replicas, Redis): the
harness drives every scenario through both replicas and exits 0 only with no error and no lost login."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_passes() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "8", "--rate", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    text = run.stdout
    counts = re.search(r"logins started (\d+), landed (\d+), lost 0; errors 0", text)
    assert counts and int(counts.group(1)) == int(counts.group(2)) > 0, text[-2000:]
    assert "/oauth2/token" in text and text.count(" RSS: ") == 2
