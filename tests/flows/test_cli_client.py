"""The `sts-broker` client end to end, as an engineer runs it: the console script in its own process, the
person's browser scripted through the dev OIDC IdP, the broker's CLI endpoints, and real AWS tools reading
the credentials: botocore's own ProcessProvider and the AWS CLI, against the strict local AWS."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import botocore.session
import httpx
import pytest

from broker.client import cache, state
from broker.devstack.stack import DevStack
from tests.flows.cli_client import ADMIN, DEV, Cli, audit_events, issued

ALICE_ADMIN = "arn:aws:sts::123456789012:assumed-role/DemoAdmin/alice@example.com"


@pytest.fixture
def cli(stack: DevStack, tmp_path: Path) -> Cli:
    return Cli(tmp_path, stack.broker_url)


def test_login_through_the_browser_then_status_and_roles(cli: Cli, stack: DevStack) -> None:
    done = cli.run("login", "--broker", stack.broker_url)
    assert done.returncode == 0 and f"Logged in to {stack.broker_url}" in done.stderr, done.stderr
    log = cli.browser_log.read_text()
    assert log.startswith(f"{stack.broker_url}/oauth2/authorize?") and "You can close this tab" in log
    assert os.stat(cli.home / "session.token").st_mode & 0o777 == 0o600
    status = cli.run("status")
    assert status.returncode == 0 and "subject:      alice" in status.stdout
    assert f"session id:   {cli.session_id()}" in status.stdout
    roles = cli.run("roles")
    assert roles.returncode == 0 and ADMIN in roles.stdout and DEV in roles.stdout
    started = [e for e in audit_events(stack) if e["event"] == "cli_session_started"
               and e.get("session_id") == cli.session_id()]
    assert len(started) == 1


@pytest.mark.parametrize("forged", ["forged", "\u00fcnicode-\u2603", ""])
def test_forged_state_on_the_loopback_redirect_is_refused(cli: Cli, stack: DevStack, forged: str) -> None:
    done = cli.run("login", "--broker", stack.broker_url, STS_TEST_BROWSER_STATE=forged)
    assert done.returncode == 1 and done.stderr.endswith(
        "sts-broker: the browser came back with the wrong state: refused (run sts-broker login again)\n")
    assert not (cli.home / "session.json").exists()


def test_consent_denied_in_the_browser_is_one_line(cli: Cli, stack: DevStack) -> None:
    done = cli.run("login", "--broker", stack.broker_url, STS_TEST_BROWSER_DECISION="deny")
    assert done.returncode == 1 and done.stderr.endswith("sts-broker: sign-in not completed: access_denied\n")
    assert not (cli.home / "session.json").exists()


def test_a_role_not_granted_is_refused_in_one_line(cli: Cli, stack: DevStack) -> None:
    sid = cli.login()
    done = cli.run("credential-process", "--role", "arn:aws:iam::123456789012:role/NotGranted")
    assert (done.returncode, done.stdout) == (1, "") and done.stderr.count("\n") == 1
    assert done.stderr.startswith("sts-broker: the broker refused: ") and "error id" in done.stderr
    assert issued(audit_events(stack), sid) == 0


def test_configure_then_botocore_process_provider_and_the_aws_cli(cli: Cli, stack: DevStack,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cli.aws_config.parent.mkdir()
    cli.aws_config.write_text("[profile mine]\nregion = eu-west-1\n")
    cli.login()
    dry = cli.run("configure", "--region", "us-east-1", "--dry-run")
    assert dry.returncode == 0 and "+[profile demo-DemoAdmin]\n" in dry.stdout
    assert cli.aws_config.read_text() == "[profile mine]\nregion = eu-west-1\n"
    assert cli.run("configure", "--region", "us-east-1").returncode == 0
    text = cli.aws_config.read_text()
    assert text.startswith("[profile mine]\nregion = eu-west-1\n\n[profile demo-DemoAdmin]\n")
    assert f"credential_process = sts-broker credential-process --role {ADMIN}\n" in text

    for name, value in cli.env.items():  # botocore in this process runs the credential_process as AWS would
        monkeypatch.setenv(name, value)
    session = botocore.session.Session(profile="demo-DemoAdmin")
    credentials = session.get_credentials()
    assert credentials is not None and credentials.method == "custom-process"
    sts = session.create_client("sts", endpoint_url=stack.aws.endpoint_url)
    assert sts.get_caller_identity()["Arn"] == ALICE_ADMIN

    aws = subprocess.run(["aws", "sts", "get-caller-identity", "--profile", "demo-DemoAdmin", "--endpoint-url",
                          stack.aws.endpoint_url, "--output", "json"], env=cli.env, capture_output=True, text=True,
                         timeout=90, check=False)
    assert aws.returncode == 0, aws.stderr
    assert json.loads(aws.stdout)["Arn"] == ALICE_ADMIN
    assert issued(audit_events(stack), cli.session_id()) == 1  # three readers, one STS call: the cache


def test_twenty_concurrent_credential_process_calls_make_one_sts_call(cli: Cli, stack: DevStack) -> None:
    sid = cli.login()
    with ThreadPoolExecutor(max_workers=20) as pool:
        runs = list(pool.map(lambda _: cli.run("credential-process", "--role", DEV), range(20)))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs if r.returncode]
    keys = {json.loads(r.stdout)["AccessKeyId"] for r in runs}
    assert len(keys) == 1 and issued(audit_events(stack), sid) == 1


def _cached(cli: Cli, role: str, duration: int | None = None) -> tuple[str, state.SessionInfo]:
    os.environ["STS_BROKER_HOME"] = str(cli.home)
    try:
        return cache.cache_file(state.dirs().cache, role, duration), state.current_session(None)
    finally:
        del os.environ["STS_BROKER_HOME"]


def test_refresh_before_botocores_window_and_fifteen_minute_roles(cli: Cli, stack: DevStack) -> None:
    sid = cli.login()
    first = json.loads(cli.run("credential-process", "--role", ADMIN).stdout)
    path, info = _cached(cli, ADMIN)
    entry = cache.read(path, info, ADMIN)
    assert entry is not None
    # Fifteen minutes left: botocore would ask on every call; the client fetches new ones.
    cache.write(path, info, ADMIN, cache.Entry(entry.credentials, time.time() - 2700, time.time() + 900))
    second = json.loads(cli.run("credential-process", "--role", ADMIN).stdout)
    assert second["AccessKeyId"] != first["AccessKeyId"] and issued(audit_events(stack), sid) == 2
    # A 15-minute role: fresh credentials are served again from the cache, not fetched on every call.
    short = [json.loads(cli.run("credential-process", "--role", ADMIN, "--duration", "900").stdout)
             for _ in range(2)]
    assert short[0] == short[1] and issued(audit_events(stack), sid) == 3


def test_corrupted_and_foreign_cache_files_are_refused(cli: Cli, stack: DevStack) -> None:
    sid = cli.login()
    assert cli.run("credential-process", "--role", ADMIN).returncode == 0
    path, _ = _cached(cli, ADMIN)
    Path(path).write_bytes(b"{not json")
    done = cli.run("credential-process", "--role", ADMIN)
    assert done.returncode == 0 and json.loads(done.stdout)["Version"] == 1
    assert done.stderr == (f"sts-broker: ignoring the credential cache file {path}: not valid JSON; "
                           "fetching new credentials\n")
    data = json.loads(Path(path).read_text())
    data["session_id"] = "someone-elses-session"
    Path(path).write_text(json.dumps(data))
    done = cli.run("credential-process", "--role", ADMIN)
    assert "written for another session, broker or role" in done.stderr and done.returncode == 0
    assert issued(audit_events(stack), sid) == 3


def test_exec_and_console(cli: Cli, stack: DevStack) -> None:
    cli.login()
    done = cli.run("exec", "--role", ADMIN, "--", "aws", "sts", "get-caller-identity", "--endpoint-url",
                   stack.aws.endpoint_url, "--region", "us-east-1", "--output", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["Arn"] == ALICE_ADMIN, done.stderr
    assert cli.run("exec", "--role", ADMIN, "--", "sh", "-c", "exit 5").returncode == 5
    console = cli.run("console", "--role", "demo/DemoDeveloper", "--destination", "/s3/home", "--print")
    assert console.returncode == 0 and console.stdout.startswith(f"{stack.aws.federation_url}?Action=login&")


ENDED_COMMANDS = [["credential-process", "--role", ADMIN], ["roles"], ["status"], ["configure", "--dry-run"],
                  ["exec", "--role", ADMIN, "--", "true"], ["console", "--role", ADMIN, "--print"]]


def _says_ended(cli: Cli, stack: DevStack, what: str) -> None:
    for command in ENDED_COMMANDS:
        done = cli.run(*command)
        assert (done.returncode, done.stdout) == (2, ""), command
        assert done.stderr == f"sts-broker: {what}; run sts-broker login --broker {stack.broker_url}\n", command


def test_logout_revokes_on_the_broker_and_every_command_says_so(cli: Cli, stack: DevStack) -> None:
    sid = cli.login()
    token = cli.token()
    assert cli.run("credential-process", "--role", ADMIN).returncode == 0
    done = cli.run("logout")
    assert done.returncode == 0 and not (cli.home / "session.token").exists()
    assert os.listdir(cli.home / "cache") == []
    ended = httpx.get(f"{stack.broker_url}/cli/session", headers={"Authorization": f"Bearer {token}"})
    assert ended.status_code == 401
    assert any(e["event"] == "cli_session_revoked" and e.get("session_id") == sid for e in audit_events(stack))
    _says_ended(cli, stack, "you are not logged in")


def test_revocation_elsewhere_ends_the_session_for_every_command(cli: Cli, stack: DevStack) -> None:
    cli.login()
    assert httpx.post(f"{stack.broker_url}/oauth2/revoke", data={"token": cli.token()}).status_code == 200
    first = cli.run("credential-process", "--role", DEV)  # not cached: the broker is asked and says no
    assert (first.returncode, first.stdout) == (2, "")
    assert first.stderr.startswith("sts-broker: your broker session has ended; run sts-broker login")
    assert not (cli.home / "session.token").exists()
    _says_ended(cli, stack, "your broker session has ended")
