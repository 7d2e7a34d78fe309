"""The credentials page's snippets with values that need quoting (bash runs its own), the profile name
template, and the `console:` / `credentials_page:` settings refusing what could leave the console."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from broker.issuers.credentials import Credentials
from broker.outputs.formats import as_env
from broker.outputs.shells import as_cmd, as_fish, as_powershell, profile_name
from broker.portal_settings import ConsoleConfig, CredentialsPageConfig

AWKWARD = Credentials("ASIAEXAMPLE", "it's a \\ secret $HOME `x`", "tok%PATH%en", datetime(2030, 1, 1, tzinfo=UTC),
                      "arn:aws:iam::1:role/R", "arn:aws:sts::1:assumed-role/R/x")


def test_bash_reads_back_every_value_exactly() -> None:
    script = as_env(AWKWARD) + 'printf "%s\\n" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=10, env={})
    assert done.stdout.splitlines() == [AWKWARD.secret_access_key, AWKWARD.session_token]


def test_fish_powershell_and_cmd_quote_their_own_way() -> None:
    assert "set -x AWS_SECRET_ACCESS_KEY 'it\\'s a \\\\ secret $HOME `x`'\n" in as_fish(AWKWARD)
    assert "$Env:AWS_SECRET_ACCESS_KEY = 'it''s a \\ secret $HOME `x`'\n" in as_powershell(AWKWARD)
    cmd = as_cmd(AWKWARD)
    assert 'set "AWS_ACCESS_KEY_ID=ASIAEXAMPLE"\n' in cmd
    assert "REM AWS_SECRET_ACCESS_KEY holds characters cmd cannot set\n" in cmd and "%PATH%" not in cmd


@pytest.mark.parametrize(("template", "expected"), [
    ("{account}-{role}", "portal-Dev"), ("{account_id}_{role}", "373737373737_Dev"),
    ("team/{account} {role}!", "team-portal-Dev"), ("{role}", "Dev"),
])
def test_profile_names_follow_the_template(template: str, expected: str) -> None:
    assert profile_name(template, "portal", "373737373737", "Dev") == expected
    assert profile_name("{account}-{role}", None, "373737373737", "Dev") == "373737373737-Dev"


@pytest.mark.parametrize("template", ["{nope}-{role}", "{0}", "{account", ""])
def test_a_bad_profile_template_is_a_config_error(template: str) -> None:
    with pytest.raises(ValidationError):
        CredentialsPageConfig(profile_name=template)


@pytest.mark.parametrize("path", ["//evil.example", "https://evil.example/", "/a%2F%2Fb", "/\\evil", "s3/home",
                                  "/s3/../../x", "/s3 home", "javascript:alert(1)", "/x\n"])
def test_a_configured_destination_must_stay_in_the_console(path: str) -> None:
    with pytest.raises(ValidationError):
        ConsoleConfig(destinations={"x": path})


@pytest.mark.parametrize(("field", "value"), [("destinations", {"Bad Name": "/s3/home"}),
                                              ("regions", ["moon-1"]), ("regions", ["us-east-1.evil"])])
def test_names_and_regions_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        ConsoleConfig.model_validate({field: value})


def test_federation_token_credentials_say_what_they_cannot_do_in_every_shell() -> None:
    federated = Credentials("ASIAEXAMPLE", "s", "t", datetime(2030, 1, 1, tzinfo=UTC), "arn:aws:iam::1:role/R",
                            "arn:aws:sts::1:federated-user/x", via="federation_token")
    for render, mark in ((as_env, "#"), (as_fish, "#"), (as_powershell, "#"), (as_cmd, "REM")):
        assert render(federated).startswith(f"{mark} Federation-token credentials (GetFederationToken)")
    assert not as_fish(AWKWARD).startswith("#")
