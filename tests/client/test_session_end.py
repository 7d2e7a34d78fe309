"""When the broker session is over (or there is none), every command says so in one line on stderr, how to
log in again, exit code 2, nothing on stdout and no traceback; the broker is not even asked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.client import state
from tests.client.conftest import BROKER, warm

SCRIPT = str(Path(sys.executable).with_name("sts-broker"))
ROLE = "arn:aws:iam::111122223333:role/Dev"
COMMANDS = [["credential-process", "--role", ROLE], ["exec", "--role", ROLE, "--", "true"],
            ["exec", "--role", ROLE, "--container", "--", "true"], ["console", "--role", ROLE, "--print"],
            ["roles"], ["status"], ["configure", "--dry-run"]]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], env=dict(os.environ), capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_ended_session_is_one_line(session: state.SessionInfo, command: list[str]) -> None:
    warm(session, ROLE)  # even cached credentials are not handed out past the session's end
    state.save_session(state.SessionInfo(BROKER, session.session_id, time.time() - 1, session.token_store))
    done = run(*command)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"sts-broker: your broker session has ended; run sts-broker login --broker {BROKER}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_no_session_is_one_line(home: Path, command: list[str]) -> None:
    done = run(*command)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "sts-broker: you are not logged in; run sts-broker login --broker URL\n"


def test_session_file_that_is_not_ours_is_one_line(session: state.SessionInfo) -> None:
    Path(state.dirs().config, "session.json").write_text('{"broker": 1}')
    done = run("credential-process", "--role", ROLE)
    assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1
    assert "is not a session file of sts-broker" in done.stderr


def test_logout_with_an_ended_session_cleans_up(session: state.SessionInfo) -> None:
    path = warm(session, ROLE)
    state.save_session(state.SessionInfo(BROKER, session.session_id, 0.0, session.token_store))
    done = run("logout")
    assert done.returncode == 0 and not os.path.exists(path)
    assert state.load_session() is None and not Path(state.dirs().config, "session.token").exists()


def test_exec_passes_the_exit_code_through(session: state.SessionInfo) -> None:
    warm(session, ROLE)
    done = run("exec", "--role", ROLE, "--", "sh", "-c",
               'test "$AWS_ACCESS_KEY_ID" = ASIACACHED && test -n "$AWS_CREDENTIAL_EXPIRATION" && exit 7')
    assert done.returncode == 7
    assert run("exec", "--role", ROLE, "--", "no-such-command-here").returncode == 127


def test_http_broker_url_other_than_loopback_is_refused(home: Path) -> None:
    done = run("login", "--broker", "http://broker.example.com")
    assert done.returncode == 1 and "use https://" in done.stderr and done.stderr.count("\n") == 1
