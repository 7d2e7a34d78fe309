"""The `sts-broker` client's device login (RFC 8628) and `exec --container`, as an engineer runs them: the
console script polls while the person approves the code in their browser (scripted, through the dev IdP);
the AWS CLI reads container credentials from the broker with the token `exec --container` gave it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from broker.devstack.device_login import decide
from broker.devstack.stack import DevStack
from tests.device_container.device import signed_in
from tests.flows.cli_client import SCRIPT, Cli

ADMIN = "arn:aws:iam::456789012345:role/DemoAdmin"
CODE = re.compile(r"enter the code ([A-Z]{4}-[A-Z]{4})")


@pytest.fixture
def cli(dc_stack: DevStack, tmp_path: Path) -> Cli:
    return Cli(tmp_path, dc_stack.broker_url)


def _device_login(cli: Cli, stack: DevStack, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `sts-broker login ARGS`, approve the code it prints as alice; returns its stderr."""
    process = subprocess.Popen([SCRIPT, "login", "--broker", stack.broker_url, *args], env=env or cli.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines = [process.stderr.readline() for _ in range(2)]
    found = CODE.search("".join(lines))
    assert found, lines
    with signed_in(stack.broker_url, "alice") as browser:
        assert decide(browser, stack.broker_url, found.group(1)).status_code == 200
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    return "".join(lines) + rest


def test_device_login_then_credentials(cli: Cli, dc_stack: DevStack) -> None:
    err = _device_login(cli, dc_stack, "--device")
    assert f"Logged in to {dc_stack.broker_url}" in err and "/device" in err
    status = cli.run("status")
    assert "device name:  sts-broker on " in status.stdout
    creds = json.loads(cli.run("credential-process", "--role", ADMIN).stdout)
    assert creds["Version"] == 1 and creds["AccessKeyId"]


def test_without_a_usable_browser_login_falls_back_to_the_device_grant(cli: Cli, dc_stack: DevStack) -> None:
    env = {**cli.env, "BROWSER": "/nonexistent/browser %s"}
    err = _device_login(cli, dc_stack, env=env)
    assert "No usable browser here: signing in with a code instead." in err
    assert cli.run("roles").returncode == 0


def test_exec_container_gives_a_revocable_credentials_url(cli: Cli, dc_stack: DevStack) -> None:
    cli.login()
    done = cli.run("exec", "--role", ADMIN, "--container", "--", "sh", "-c",
                   "aws sts get-caller-identity --endpoint-url \"$ENDPOINT\" --region us-east-1 --output json"
                   " && printenv AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN"
                   " && test -z \"$AWS_ACCESS_KEY_ID\"", ENDPOINT=dc_stack.aws.endpoint_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().split("\n")
    identity, uri, token = "\n".join(lines[:-2]), lines[-2], lines[-1]
    assert json.loads(identity)["Arn"] == "arn:aws:sts::456789012345:assumed-role/DemoAdmin/alice@example.com"
    assert uri == f"{dc_stack.broker_url}/container-credentials"
    assert httpx.get(uri, headers={"Authorization": token}).status_code == 200
    assert cli.run("logout").returncode == 0
    assert httpx.get(uri, headers={"Authorization": token}).status_code in (401, 403)
