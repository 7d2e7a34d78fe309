"""Configuration loading: broker.yaml and idp_configs/*.yaml into the pydantic models of settings.py and
connectors/*_config.py.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
`${NAME}` in any string is replaced by the environment variable NAME (a missing one is an error).
Relative paths are resolved against the directory of the file that names them.
"""

from __future__ import annotations

import functools
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
)

from broker import config_hints, yaml_nodes
from broker.connectors.idp_icon import icon_problem
from broker.errors import ConfigError
from broker.logins.kinds import KINDS
from broker.settings import AuditConfig, IdpModel, Settings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# The IdP kinds, from their one table (logins/kinds.py): `type` picks the model.
IdpConfig = IdpModel
_IDP_UNION: Any = functools.reduce(operator.or_, (kind.model for kind in KINDS.values()))
_IDP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Annotated[_IDP_UNION, Field(discriminator="type")])


def parse_idp(data: Any) -> IdpConfig:
    """Dispatch on `type`. The chosen model validates directly, so error locations stay relative to the
    file; an absent or unknown type gets the union's own message (expected 'oidc', 'token' or 'saml')."""
    name = data.get("type") if isinstance(data, dict) else None
    kind = KINDS.get(name) if isinstance(name, str) else None
    parsed = kind.model.model_validate(data) if kind is not None else _IDP_ADAPTER.validate_python(data)
    return cast(IdpConfig, parsed)  # every model in KINDS has id, type, name, claims_provided (kinds.py checks)


# ---- loading -------------------------------------------------------------------------------------


Lines = dict[tuple[str, ...], int]


def _env_expander(problems: list[tuple[str, ...]] | None) -> Callable[[str, tuple[str, ...]], str]:
    """Replace ${NAME}; a missing variable is a problem, or (problems=None, for linting) an empty string."""
    def expand(text: str, path: tuple[str, ...]) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ and problems is not None:
                problems.append((*path, f"environment variable {name} is not set"))
            return os.environ.get(name, "")
        return _ENV_REF.sub(sub, text)
    return expand


def located(file: Path, lines: Lines, loc: tuple[str, ...], message: str, data: Any = None) -> str:
    """`file:line: field: message`; with the file's data, list items with an id are named by it."""
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    line = line or min(lines.values(), default=None)  # a top-level key missing: where the mapping starts
    where = f"{file}:{line}" if line else f"{file}"
    return f"{where}: {config_hints.shown_path(loc, data) or '<root>'}: {message}"


def read_yaml(file: Path, *, need_env: bool = True) -> tuple[Any, list[str], Lines]:
    """Parse a YAML file (once, libyaml) and expand ${ENV} references. Problems name the file and line."""
    problems: list[tuple[str, ...]] = []
    try:
        text = file.read_text(encoding="utf-8")
        document = yaml_nodes.parse(text, _env_expander(problems if need_env else None))
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror}"], {}
    except UnicodeDecodeError as exc:
        return None, [f"{file}: not UTF-8 (byte {exc.start}); save it as UTF-8"], {}
    except yaml_nodes.YamlProblem as exc:
        where = f"{file}:{exc.line}:{exc.column}" if exc.column else f"{file}:{exc.line}" if exc.line else f"{file}"
        return None, [f"{where}: not valid YAML: {exc.message}"], {}
    lines = document.lines
    return document.data, [located(file, lines, loc, msg) for *loc_parts, msg in problems
                           for loc in [tuple(loc_parts)]], lines


_PART_PATH = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): (.*)$", re.DOTALL)


def validation_problems(file: Path, exc: ValidationError, lines: Lines | None = None, *,
                        model: type[BaseModel] | None = None, data: Any = None) -> list[str]:
    """One line per problem, located as precisely as the message allows: a message that starts with a
    relative path ("when.groups.regexp: ...") extends the field path, and a cross-field message listing
    several "rules.0.grant.1: ..." parts is split into one problem each. With the root `model`, an unknown key
    gets the closest known one ("did you mean"); with the file's `data`, rules are named by their id."""
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and (hint := config_hints.did_you_mean(model, loc)) is not None:
            message += f"; did you mean {hint!r}?"
        parts = message.split("; ") if not loc else [message]
        for part in parts:
            match = _PART_PATH.fullmatch(part)
            if match and (not loc or match.group(1).split(".")[0] == loc[-1]):
                where = (*loc[:-1], *match.group(1).split(".")) if loc else tuple(match.group(1).split("."))
                out.append(located(file, lines or {}, where, match.group(2), data))
            else:
                out.append(located(file, lines or {}, loc, part, data))
    return out


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_settings(file: Path) -> Settings:
    data, problems, lines = read_yaml(file)
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: <root>: expected a mapping"])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(file, exc, lines, model=Settings, data=data)) from None
    return resolve_paths(settings, file)


def resolve_paths(settings: Settings, file: Path) -> Settings:
    """The settings with every relative path made relative to the directory of broker.yaml."""
    base = file.resolve().parent
    audit_path = settings.audit.path
    if audit_path != "-":
        audit_path = str(_resolve(base, Path(audit_path)))
    aws = settings.aws
    if aws.credentials_file is not None:
        aws = aws.model_copy(update={"credentials_file": _resolve(base, aws.credentials_file)})
    rotation = settings.key_rotation
    if rotation.state_file is not None:
        rotation = rotation.model_copy(update={"state_file": _resolve(base, rotation.state_file)})
    return settings.model_copy(update={
        "aws": aws,
        "store": settings.store.resolved(base),
        "key_rotation": rotation,
        "audit": AuditConfig(path=audit_path),
        "idp_configs": _resolve(base, settings.idp_configs),
        "rules": _resolve(base, settings.rules),
        "keys": [k.model_copy(update={"file": k.file and _resolve(base, k.file),
                                      "cert": k.cert and _resolve(base, k.cert)}) for k in settings.keys],
    })


@dataclass
class IdpFiles:
    """The IdP files of a directory: each valid IdP, the file (and line map) it came from, and the problems
    of every file."""

    idps: dict[str, IdpConfig] = field(default_factory=dict)
    sources: dict[str, tuple[Path, Lines]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, file: Path, lines: Lines, idp: IdpConfig) -> None:
        if idp.id in self.sources:  # the first file keeps the id; the message names both
            first, first_lines = self.sources[idp.id]
            self.problems.append(located(file, lines, ("id",), f"duplicate IdP id {idp.id!r}: "
                                          f"{first}:{first_lines.get(('id',), 1)} has it too"))
            return
        self.idps[idp.id] = idp
        self.sources[idp.id] = (file, lines)


def read_idps(directory: Path, *, need_env: bool = True) -> IdpFiles:
    """Every *.yaml in the directory is one IdP; every file is read, whatever the others hold."""
    found = IdpFiles()
    for file in sorted(directory.glob("*.yaml")):
        data, file_problems, lines = read_yaml(file, need_env=need_env)
        found.problems += file_problems
        if file_problems:
            continue
        try:
            idp = parse_idp(data)
        except ValidationError as exc:
            name = data.get("type") if isinstance(data, dict) else None
            kind = KINDS.get(name) if isinstance(name, str) else None
            found.problems += validation_problems(file, exc, lines, model=kind.model if kind else None)
            continue
        files = KINDS[idp.type].files
        if files is not None:  # relative to the directory of the IdP's file; each must exist
            idp, named = files(idp, functools.partial(_resolve, file.resolve().parent))
            found.problems += [located(file, lines, (key,), f"no such file: {path}") for key, path in named
                               if not path.is_file()]
            found.problems += [located(file, lines, ("icon",), problem) for key, path in named
                               if key == "icon" and path.is_file() and (problem := icon_problem(path))]
        found.add(file, lines, idp)
    return found


def load_idps(directory: Path, *, need_env: bool = True) -> dict[str, IdpConfig]:
    """Every *.yaml in the directory is one IdP. All problems in all files are reported together."""
    if not directory.is_dir():
        raise ConfigError([f"{directory}: idp_configs is not a directory"])
    found = read_idps(directory, need_env=need_env)
    if found.problems:
        raise ConfigError(found.problems)
    return found.idps
