"""The portal's settings for console deep links and the credentials page (`console:` and `credentials_page:`
in broker.yaml). Their own module so settings.py only names them; the same strictness as every model there
(unknown keys are errors, values frozen)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
# A path in the console: starts with one "/", then unreserved and sub-delim characters, `?` and `#`. Never a
# second leading "/", a backslash, a percent escape (a console path needs none; an escape is how `//` and `\`
# get past a check), a dot segment, whitespace or a control character.
CONSOLE_PATH = re.compile(r"/(?!/)[A-Za-z0-9._~!$&'()*+,;=:/?#-]*", re.ASCII)


def console_path_problem(path: str) -> str | None:
    """Why `path` cannot be a console destination, or None when it can."""
    if len(path) > 512:
        return "is longer than 512 characters"
    if not CONSOLE_PATH.fullmatch(path):
        return "must be a path in the console such as /s3/home (no scheme, host, backslash, % or space)"
    if "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return "must not contain // or dot segments"
    return None


def _console_path(path: str) -> str:
    problem = console_path_problem(path)
    if problem is not None:
        raise ValueError(problem)
    return path


ConsolePath = Annotated[str, AfterValidator(_console_path)]
DestinationName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Region = Annotated[str, Field(pattern=REGION)]

DEFAULT_DESTINATIONS: dict[str, str] = {
    "home": "/console/home", "ec2": "/ec2/home", "s3": "/s3/home", "iam": "/iam/home",
    "lambda": "/lambda/home", "cloudwatch": "/cloudwatch/home", "cloudformation": "/cloudformation/home",
}
DEFAULT_REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsoleConfig(_Model):
    """Where "Open console" may land: `destinations` names paths in the console (the picker offers them; a
    `?destination=` must be one of the names or one of the paths exactly), `regions` the regions a person may
    choose (each sends them to that region's sign-in and console hosts). `new_tab`: the picker opens the
    console in a new tab."""

    destinations: dict[DestinationName, ConsolePath] = Field(default_factory=lambda: dict(DEFAULT_DESTINATIONS))
    regions: list[Region] = Field(default_factory=lambda: list(DEFAULT_REGIONS))
    new_tab: bool = True


def _profile_template(template: str) -> str:
    try:
        template.format(account="a", account_id="1", role="r")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"may use only {{account}}, {{account_id}} and {{role}} ({exc!r})") from None
    return template


class CredentialsPageConfig(_Model):
    """The credentials page. `profile_name`: the ini profile's name, from {account} (the account's name in
    the rules, else its id), {account_id} and {role}; characters a profile name cannot hold become "-"."""

    profile_name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_profile_template)] = \
        "{account}-{role}"
