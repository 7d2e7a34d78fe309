"""The credentials page over real HTTP: what a browser gets from POST /roles/credentials, its snippets run
in real shells and read by the real AWS CLI against the strict local AWS; the raw formats for clients that
ask with `format=` or `Accept`, as before the page."""

from __future__ import annotations

import configparser
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.devstack import browser
from tests.portal.conftest import ACCOUNT, DEVELOPER, JSON, Portal

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
AWS_CLI = str(Path(sys.executable).with_name("aws"))
BOB_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/DemoDeveloper/bob@example.com"


@pytest.fixture
def bob(portal: Portal) -> Iterator[tuple[httpx.Client, str]]:
    with browser.browser() as client:
        assert browser.login(client, portal.url, "dev", "bob").status_code == 303
        yield client, browser.roles(client, portal.url)["csrf_token"]


def snippet(page: str, key: str) -> str:
    match = re.search(rf'<pre id="creds-{key}" tabindex="0">(.*?)</pre>', page, re.S)
    assert match is not None, key
    return html.unescape(match.group(1))


def aws_cli(args: list[str], portal: Portal, env: dict[str, str]) -> dict[str, str]:
    """The real AWS CLI against the strict local AWS, with only the environment given (no host credentials)."""
    base = {"PATH": os.environ["PATH"], "HOME": env.get("HOME", "/nonexistent"), "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    done = subprocess.run([AWS_CLI, *args, "--endpoint-url", portal.dev.aws.endpoint_url, "--output", "json"],
                          env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_a_browser_gets_the_page(portal: Portal, bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    page = client.post(f"{portal.url}/roles/credentials", data={"role": DEVELOPER, "csrf_token": csrf}, headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1]
    text = page.text
    assert "<title>Credentials for DemoDeveloper · sts-broker</title>" in text
    assert f'<span id="creds-account-name">portal</span> (<code id="creds-account-id">{ACCOUNT}</code>)' in text
    assert '<code id="creds-profile">portal-DemoDeveloper</code>' in text
    assert '<a class="button" href="/roles">Back to your roles</a>' in text
    assert re.search(r'<script src="/static/credentials\.js\?v=[0-9a-f]{16}" defer></script>', text)
    assert "<script>" not in text
    assert " style=" not in text
    expires = re.search(r'<time id="creds-expires" datetime="([^"]+)">', text)
    assert expires is not None and expires.group(1).endswith("Z")
    for asset, kind in (("credentials.js", "text/javascript"), ("credentials.css", "text/css")):
        served = httpx.get(f"{portal.url}/static/{asset}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)


def test_the_snippets_work_in_their_shell_and_the_aws_cli(portal: Portal, bob: tuple[httpx.Client, str],
                                                          tmp_path: Path) -> None:
    """bash runs its lines and the CLI signs with them; the credentials file snippet is a profile the CLI
    reads by its name; fish, PowerShell and cmd set the same four values."""
    client, csrf = bob
    page = client.post(f"{portal.url}/roles/credentials", data={"role": DEVELOPER, "csrf_token": csrf},
                       headers=HTML).text
    bash = subprocess.run(["bash", "-c", snippet(page, "bash") + 'printf "%s\\n" "$AWS_ACCESS_KEY_ID" '
                           '"$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION"'],
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True, timeout=30)
    key, secret, token, expiration = bash.stdout.splitlines()
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    assert aws_cli(["sts", "get-caller-identity"], portal, env)["Arn"] == BOB_ARN

    credentials = tmp_path / "credentials"
    credentials.write_text(snippet(page, "ini"))
    ini = configparser.ConfigParser()
    ini.read_string(snippet(page, "ini"))
    assert dict(ini["portal-DemoDeveloper"]) == {"aws_access_key_id": key, "aws_secret_access_key": secret,
                                                 "aws_session_token": token}
    by_profile = aws_cli(["sts", "get-caller-identity", "--profile", "portal-DemoDeveloper"], portal,
                         {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
    assert by_profile["Arn"] == BOB_ARN

    values = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token,
              "AWS_CREDENTIAL_EXPIRATION": expiration}
    assert snippet(page, "fish") == "".join(f"set -x {k} '{v}'\n" for k, v in values.items())
    assert snippet(page, "powershell") == "".join(f"$Env:{k} = '{v}'\n" for k, v in values.items())
    assert snippet(page, "cmd") == "".join(f'set "{k}={v}"\n' for k, v in values.items())
    assert snippet(page, "credential-process") == (
        f"[profile portal-DemoDeveloper]\ncredential_process = sts-broker credential-process --role {DEVELOPER} "
        f"--broker {portal.url}\n")


@pytest.mark.parametrize(("form", "headers", "media"), [
    ({"format": "json"}, HTML, "application/json"),
    ({}, JSON, "application/json"),
    ({}, {"Accept": "*/*"}, "application/json"),
    ({"format": "env"}, HTML, "text/plain"),
    ({"format": "ini"}, HTML, "text/plain"),
    ({"format": "credential_process"}, {}, "application/json"),
    ({"format": "page"}, JSON, "text/html"),
])
def test_raw_formats_stay_for_format_and_accept(portal: Portal, bob: tuple[httpx.Client, str],
                                                form: dict[str, str], headers: dict[str, str], media: str) -> None:
    client, csrf = bob
    answer = client.post(f"{portal.url}/roles/credentials", data={"role": DEVELOPER, "csrf_token": csrf, **form},
                         headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(media)
    assert answer.headers["cache-control"] == "no-store"
    if form.get("format") == "ini":
        assert "[DemoDeveloper]" in answer.text  # the raw ini keeps its profile name (existing clients)


def test_an_unknown_format_is_refused_before_anything_is_issued(portal: Portal,
                                                                bob: tuple[httpx.Client, str]) -> None:
    client, csrf = bob
    before = portal.issued()
    answer = client.post(f"{portal.url}/roles/credentials?format=yaml", headers=JSON,
                         data={"role": DEVELOPER, "csrf_token": csrf})
    assert answer.status_code == 400 and answer.json()["error"] == "format_unknown"
    assert "page, json, credential_process, env, ini" in answer.json()["message"]
    assert portal.issued() == before
