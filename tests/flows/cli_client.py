"""Running the real `sts-broker` client (the console script, its own process) against the devstack, with its
own home, AWS config file and browser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.flows.conftest import audit_events

SCRIPT = str(Path(sys.executable).with_name("sts-broker"))
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "arn:aws:iam::123456789012:role/DemoAdmin"
DEV = "arn:aws:iam::123456789012:role/DemoDeveloper"


class Cli:
    def __init__(self, tmp: Path, broker_url: str, user: str = "alice") -> None:
        self.home, self.aws_config, self.browser_log = tmp / "sts-home", tmp / "aws" / "config", tmp / "browser.log"
        self.broker_url = broker_url
        self.env = {
            **os.environ, "STS_BROKER_HOME": str(self.home), "AWS_CONFIG_FILE": str(self.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws" / "credentials"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT), "BROWSER": f"{sys.executable} -m tests.flows.cli_browser %s",
            "STS_TEST_BROWSER_USER": user, "STS_TEST_BROWSER_LOG": str(self.browser_log)}
        for name in ("STS_BROKER_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
            self.env.pop(name, None)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCRIPT, *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=90, check=False, cwd=ROOT)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([SCRIPT, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT)

    def login(self) -> str:
        """A loopback login through the scripted browser; returns the session id."""
        done = self.run("login", "--broker", self.broker_url)
        assert done.returncode == 0, done.stderr
        return self.session_id()

    def session_id(self) -> str:
        import json

        return str(json.loads((self.home / "session.json").read_text())["session_id"])

    def token(self) -> str:
        return (self.home / "session.token").read_text()


def issued(events: list[dict[str, Any]], session_id: str) -> int:
    """How many times the broker called STS for this CLI session."""
    return sum(1 for e in events if e["event"] == "credentials_issued" and e.get("session_id") == session_id)


__all__ = ["ADMIN", "DEV", "Cli", "audit_events", "issued"]
