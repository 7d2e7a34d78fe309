"""Credentials as lines to paste into a shell or an AWS file: what the credentials page offers to copy.

bash/zsh come from formats.as_env and the credentials file from formats.as_ini (one definition of each);
fish, PowerShell and Windows cmd are here, each with its own quoting. The profile name follows the
`credentials_page.profile_name` template."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from broker.issuers.credentials import Credentials
from broker.outputs.formats import as_env, as_ini, expiration_text, note

UNSAFE_PROFILE = re.compile(r"[^A-Za-z0-9_.+-]+")  # as the CLI's `configure` names profiles
CMD_SAFE = re.compile(r"[A-Za-z0-9+/=:._-]*")  # cmd has no quoting for % and ^; AWS values never hold them


@dataclass(frozen=True, slots=True)
class Snippet:
    key: str  # the element id's suffix, and what tests look for
    label: str
    text: str


def variables(creds: Credentials) -> list[tuple[str, str]]:
    return [("AWS_ACCESS_KEY_ID", creds.access_key_id), ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key),
            ("AWS_SESSION_TOKEN", creds.session_token), ("AWS_CREDENTIAL_EXPIRATION", expiration_text(creds))]


def _comment(creds: Credentials, mark: str) -> str:
    text = note(creds)
    return "" if text is None else f"{mark} {text}\n"


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def as_fish(creds: Credentials) -> str:
    return _comment(creds, "#") + "".join(f"set -x {k} {_fish_quote(v)}\n" for k, v in variables(creds))


def as_powershell(creds: Credentials) -> str:
    return _comment(creds, "#") + "".join(f"$Env:{k} = '{v.replace(chr(39), chr(39) * 2)}'\n"
                                         for k, v in variables(creds))


def as_cmd(creds: Credentials) -> str:
    lines = [f'set "{k}={v}"' if CMD_SAFE.fullmatch(v) else f"REM {k} holds characters cmd cannot set"
             for k, v in variables(creds)]
    return _comment(creds, "REM") + "".join(f"{line}\n" for line in lines)


def profile_name(template: str, account_name: str | None, account_id: str, role: str) -> str:
    name = template.format(account=account_name or account_id, account_id=account_id, role=role)
    return UNSAFE_PROFILE.sub("-", name).strip("-") or role


def credential_process_profile(profile: str, role_arn: str, broker_url: str) -> str:
    """The ~/.aws/config profile that has the CLI fetch (and refresh) this role's credentials itself."""
    return (f"[profile {profile}]\n"
            f"credential_process = sts-broker credential-process --role {shlex.quote(role_arn)} "
            f"--broker {shlex.quote(broker_url)}\n")


def snippets(creds: Credentials, profile: str, broker_url: str) -> list[Snippet]:
    shells: list[tuple[str, str, Callable[[Credentials], str]]] = [
        ("bash", "bash / zsh", as_env), ("fish", "fish", as_fish), ("powershell", "PowerShell", as_powershell),
        ("cmd", "Windows cmd", as_cmd),
    ]
    return [*(Snippet(key, label, render(creds)) for key, label, render in shells),
            Snippet("ini", f"~/.aws/credentials (profile {profile})", as_ini(creds, profile)),
            Snippet("credential-process", "~/.aws/config with credential_process (after sts-broker login)",
                    credential_process_profile(profile, creds.role_arn, broker_url))]
