"""`sts-broker check`: every problem of every file the configuration names, in one pass: broker.yaml, the
key files, every IdP file (and SAML metadata), the rules file. Each problem is `file:line: field: message`,
with the fix where one is known.

A broken broker.yaml does not stop the other files being checked: the paths it names are taken from its
data as written (relative to its directory), whether or not the rest of it is valid.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broker.config import (
    IdpFiles,
    Lines,
    located,
    read_idps,
    read_yaml,
    resolve_paths,
    validation_problems,
)
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import check_metadata_file
from broker.errors import ConfigError
from broker.issuers.saml_idp import load_saml_keys
from broker.issuers.signing import KeyRing
from broker.rules_source import load_rules
from broker.service import load_components
from broker.settings import Settings

_KEY_PROBLEM = re.compile(r"^keys\.([A-Za-z0-9_.-]+): (.*)$", re.DOTALL)


class _Report:
    """The problems found so far, each located in `file` by its line map."""

    def __init__(self, file: Path, lines: Lines, data: Any) -> None:
        self.file, self.lines, self.data = file, lines, data
        self.problems: list[str] = []

    def at(self, loc: tuple[str, ...], message: str) -> None:
        self.problems.append(located(self.file, self.lines, loc, message, self.data))


def _where(problem: str) -> tuple[str, ...]:
    """`file:line` and field of a problem."""
    return tuple(problem.split(": ", 2)[:2])


def _about_unset(field: str, unset: set[str]) -> bool:
    """A field whose ${NAME} is unset, or a section holding one (`store` for an unset `store.url`): its own
    complaint is about the empty value the variable left."""
    return field != "<root>" and any(u == field or u.startswith(f"{field}.") for u in unset)


def _path(base: Path, value: Any) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else (base / path).resolve()


def _settings(report: _Report, data: Any, read_problems: list[str]) -> Settings | None:
    """broker.yaml validated; problems at a field whose ${NAME} is unset are left to that message."""
    if not isinstance(data, dict):
        report.at((), "expected a mapping (public_url, session, keys, idp_configs, rules, ...)")
        return None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        unset = {_where(p)[-1] for p in read_problems}
        report.problems += [p for p in validation_problems(report.file, exc, report.lines, model=Settings, data=data)
                            if not _about_unset(_where(p)[-1], unset)]
        return None
    return resolve_paths(settings, report.file) if not read_problems else None


def _key_files(report: _Report, data: dict[str, Any]) -> bool:
    """Each key file named must exist and be readable; the fix for a missing one. True when all are there."""
    base = report.file.resolve().parent
    keys = data.get("keys")
    ok = True
    for i, key in enumerate(keys if isinstance(keys, list) else []):
        path = _path(base, key.get("file")) if isinstance(key, dict) else None
        if path is None:
            continue
        if not path.is_file():
            report.at(("keys", str(i), "file"), f"no such file: {path}; create it with "
                      f"`sts-broker keys generate --out {path}`")
            ok = False
        elif not os.access(path, os.R_OK):
            report.at(("keys", str(i), "file"), f"{path} is not readable by this user (uid {os.getuid()}): "
                      "give it to the user the broker runs as (chown), mode 600")
            ok = False
    return ok


def _key_contents(report: _Report, settings: Settings) -> None:
    """The keys load (RSA, big enough, one active): problems named `keys.KID: ...` are located at that key."""
    found: list[str] = []
    for load in (KeyRing.load, load_saml_keys):
        try:
            load(settings.keys)
        except ConfigError as exc:
            found += [p for p in exc.problems if p not in found]
    index = {k.kid: i for i, k in enumerate(settings.keys)}
    for problem in found:
        match = _KEY_PROBLEM.fullmatch(problem)
        if match and match.group(1) in index:
            report.at(("keys", str(index[match.group(1)]), "file"), match.group(2))
        else:
            report.at(("keys",), problem)


def _idps(report: _Report, directory: Path) -> IdpFiles | None:
    if not directory.is_dir():
        report.at(("idp_configs",), f"not a directory: {directory}")
        return None
    found = read_idps(directory)
    report.problems += found.problems
    for idp_id, cfg in found.idps.items():
        if isinstance(cfg, SamlIdpConfig):
            try:
                check_metadata_file(cfg)
            except ConfigError as exc:
                file, lines = found.sources[idp_id]
                idp_report = _Report(file, lines, None)
                key = "metadata_file" if cfg.metadata_file is not None else "metadata_signing_certificate"
                for problem in exc.problems:
                    idp_report.at((key,), problem)
                report.problems += idp_report.problems
    return found


def _rules(report: _Report, file: Path) -> None:
    if not file.is_file():
        report.at(("rules",), f"no such file: {file}")
        return
    try:
        load_rules(file)
    except ConfigError as exc:
        report.problems += exc.problems


def check_config(config: Path) -> list[str]:
    """Every problem found, in the order: broker.yaml, key files, IdP files, rules. Empty: all good."""
    data, read_problems, lines = read_yaml(config)
    report = _Report(config, lines, data)
    report.problems += read_problems
    if data is None and read_problems:
        return report.problems  # not YAML (or not readable): nothing names the other files
    settings = _settings(report, data, read_problems)
    if not isinstance(data, dict):
        return report.problems
    base = config.resolve().parent
    keys_there = _key_files(report, data)
    if settings is not None and keys_there:
        _key_contents(report, settings)
    idp_dir, rules = _path(base, data.get("idp_configs")), _path(base, data.get("rules"))
    if idp_dir is not None:
        _idps(report, idp_dir)
    if rules is not None:
        _rules(report, rules)
    if not report.problems and settings is not None:
        try:  # what serving loads, beyond the checks above (a safety net: nothing found should remain)
            load_components(settings)
        except ConfigError as exc:
            report.problems += exc.problems
    return report.problems
