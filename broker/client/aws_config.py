"""`sts-broker configure`: profiles in the AWS config file ($AWS_CONFIG_FILE, else ~/.aws/config), edited as
text so that everything else in the file (other profiles, comments, order, spacing) stays byte for byte.

A profile is ours to update when it has no credential_process or its credential_process runs sts-broker;
a same-named profile set up some other way (SSO, static keys, another tool) is left alone and reported."""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HEADER = re.compile(r"\s*\[\s*(profile\s+)?([^\]]+?)\s*\]\s*(?:[#;].*)?")
KEY = re.compile(r"([A-Za-z0-9_.-]+)\s*=\s*(.*)")
UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class Profile:
    name: str
    settings: dict[str, str]  # credential_process, region


def config_path() -> str:
    return os.environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")


def profile_name(prefix: str, role: Mapping[str, object]) -> str:
    """`<account alias>-<role name>`; the account id where the rules name no account."""
    account = role.get("account_name") or role.get("account_id") or "account"
    name = f"{prefix}{account}-{role.get('role_name') or 'role'}"
    return UNSAFE.sub("-", name).strip("-")


def credential_process(command: str, role_arn: str) -> str:
    return f"{command} credential-process --role {shlex.quote(role_arn)}"


def _sections(lines: list[str]) -> list[tuple[str | None, int, int]]:
    """(header: "profile NAME", "default", ...; None before the first header, first line, end line) of each
    section."""
    starts: list[tuple[str | None, int]] = [(None, 0)] + [
        (f"profile {m.group(2)}" if m.group(1) else m.group(2), i)
        for i, line in enumerate(lines) if (m := HEADER.fullmatch(line.rstrip("\r\n")))]
    ends = [start for _, start in starts[1:]] + [len(lines)]
    return [(name, start, end) for (name, start), end in zip(starts, ends, strict=True)]


def _ours(body: list[str]) -> bool:
    for line in body:
        if (m := KEY.fullmatch(line.rstrip("\r\n"))) and m.group(1) == "credential_process":
            return "sts-broker" in m.group(2) and "credential-process" in m.group(2)
    return True


def _update(body: list[str], settings: dict[str, str]) -> list[str]:
    """The section's lines with our keys set in place (or added after its last setting)."""
    out, pending = list(body), dict(settings)
    for i, line in enumerate(out):
        if (m := KEY.fullmatch(line.rstrip("\r\n"))) and m.group(1) in pending:
            out[i] = f"{m.group(1)} = {pending.pop(m.group(1))}\n"
    last = max((i for i, line in enumerate(out) if line.strip() and not line.lstrip().startswith(("#", ";"))),
               default=0)
    return out[:last + 1] + [f"{k} = {v}\n" for k, v in pending.items()] + out[last + 1:]


def merge(text: str, profiles: Iterable[Profile]) -> tuple[str, list[str]]:
    """The new file text and the names of profiles skipped because someone else set them up."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    skipped: list[str] = []
    for profile in profiles:
        section = next((s for s in _sections(lines) if s[0] == f"profile {profile.name}"), None)
        if section is None:
            gap = ["\n"] if lines and lines[-1].strip() else []
            lines += gap + [f"[profile {profile.name}]\n"] + [f"{k} = {v}\n" for k, v in profile.settings.items()]
            continue
        _, start, end = section
        if not _ours(lines[start + 1:end]):
            skipped.append(profile.name)
            continue
        lines[start + 1:end] = _update(lines[start + 1:end], profile.settings)
    return "".join(lines), skipped


def diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=path, tofile=path))


def write(path: str, text: str) -> None:
    """Atomic replace, keeping the file's mode (0600 for a new file: it may come to hold keys)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
