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
from pathlib import Path
from typing import Annotated, Any, cast

import yaml
from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
)

from broker.connectors.idp_icon import icon_problem
from broker.errors import ConfigError
from broker.logins.kinds import KINDS
from broker.settings import AuditConfig, IdpModel, Settings
from broker.yaml_limits import yaml_shape_problem

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


def _expand_env(node: Any, path: tuple[str, ...], problems: list[tuple[str, ...]] | None) -> Any:
    """Replace ${NAME}; a missing variable is a problem, or (problems=None, for linting) an empty string."""
    if isinstance(node, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ and problems is not None:
                problems.append((*path, f"environment variable {name} is not set"))
            return os.environ.get(name, "")
        return _ENV_REF.sub(sub, node)
    if isinstance(node, dict):
        return {k: _expand_env(v, (*path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, (*path, str(i)), problems) for i, v in enumerate(node)]
    return node


Lines = dict[tuple[str, ...], int]


def _line_map(node: yaml.Node | None, path: tuple[str, ...] = (), lines: Lines | None = None) -> Lines:
    """The 1-based line of every key and list item, by its path, so problems can name their line."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines[child] = item.start_mark.line + 1
            _line_map(item, child, lines)
    return lines


def _located(file: Path, lines: Lines, loc: tuple[str, ...], message: str) -> str:
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    where = f"{file}:{line}" if line else f"{file}"
    return f"{where}: {'.'.join(loc) or '<root>'}: {message}"


def _load(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree it was built from, from one parse: `safe_load` and `compose` each parse
    the text, and the line map needs the nodes."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def read_yaml(file: Path, *, need_env: bool = True) -> tuple[Any, list[str], Lines]:
    """Parse a YAML file and expand ${ENV} references. Problems name the file and line."""
    try:
        text = file.read_text(encoding="utf-8")
        shape = yaml_shape_problem(text)
        if shape is not None:
            return None, [f"{file}: {shape}"], {}
        raw, node = _load(text)
        lines = _line_map(node)
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror}"], {}
    except UnicodeDecodeError as exc:
        return None, [f"{file}: not UTF-8 (byte {exc.start}); save it as UTF-8"], {}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # PyYAML's constructors, on `!!int x` & co.
        return None, [f"{file}: not valid YAML: a value does not fit its explicit tag ({type(exc).__name__})"], {}
    except yaml.YAMLError as exc:
        return None, [f"{file}: not valid YAML: {exc}"], {}
    problems: list[tuple[str, ...]] = []
    data = _expand_env(raw, (), problems if need_env else None)
    return data, [_located(file, lines, loc, msg) for *loc_parts, msg in problems
                  for loc in [tuple(loc_parts)]], lines


_PART_PATH = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): (.*)$", re.DOTALL)


def validation_problems(file: Path, exc: ValidationError, lines: Lines | None = None) -> list[str]:
    """One line per problem, located as precisely as the message allows: a message that starts with a
    relative path ("when.groups.regexp: ...") extends the field path, and a cross-field message listing
    several "rules.0.grant.1: ..." parts is split into one problem each."""
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts = message.split("; ") if not loc else [message]
        for part in parts:
            match = _PART_PATH.fullmatch(part)
            if match and (not loc or match.group(1).split(".")[0] == loc[-1]):
                where = (*loc[:-1], *match.group(1).split(".")) if loc else tuple(match.group(1).split("."))
                out.append(_located(file, lines or {}, where, match.group(2)))
            else:
                out.append(_located(file, lines or {}, loc, part))
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
        raise ConfigError(validation_problems(file, exc, lines)) from None
    base = file.resolve().parent
    audit_path = settings.audit.path
    if audit_path != "-":
        audit_path = str(_resolve(base, Path(audit_path)))
    aws = settings.aws
    if aws.credentials_file is not None:
        aws = aws.model_copy(update={"credentials_file": _resolve(base, aws.credentials_file)})
    return settings.model_copy(update={
        "aws": aws,
        "audit": AuditConfig(path=audit_path),
        "idp_configs": _resolve(base, settings.idp_configs),
        "rules": _resolve(base, settings.rules),
        "keys": [k.model_copy(update={"file": _resolve(base, k.file)}) for k in settings.keys],
    })


def load_idps(directory: Path, *, need_env: bool = True) -> dict[str, IdpConfig]:
    """Every *.yaml in the directory is one IdP. All problems in all files are reported together."""
    if not directory.is_dir():
        raise ConfigError([f"{directory}: idp_configs is not a directory"])
    idps: dict[str, IdpConfig] = {}
    problems: list[str] = []
    for file in sorted(directory.glob("*.yaml")):
        data, file_problems, lines = read_yaml(file, need_env=need_env)
        problems += file_problems
        if file_problems:
            continue
        try:
            idp = parse_idp(data)
        except ValidationError as exc:
            problems += validation_problems(file, exc, lines)
            continue
        if idp.id in idps:
            problems.append(f"{file}: id: duplicate IdP id {idp.id!r}")
        files = KINDS[idp.type].files
        if files is not None:  # relative to the directory of the IdP's file; each must exist
            idp, named = files(idp, functools.partial(_resolve, file.resolve().parent))
            problems += [_located(file, lines, (key,), f"no such file: {path}") for key, path in named
                         if not path.is_file()]
            problems += [_located(file, lines, ("icon",), problem) for key, path in named
                         if key == "icon" and path.is_file() and (problem := icon_problem(path))]
        idps[idp.id] = idp
    if problems:
        raise ConfigError(problems)
    return idps

