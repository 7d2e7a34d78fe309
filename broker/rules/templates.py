"""Templates in grants: `{email}`, `{subject}`, `{idp}`, `{claims.department}`, with filters:
`{email|local_part}`, `{claims.name|lower}`. Parsed once at load; a missing claim is an error for the grant
that uses it, never an empty string. `{{` and `}}` are literal braces."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from broker.rules.conditions import fold

FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
NAME = re.compile(r"\A(email|subject|idp|issuer|claims\.[A-Za-z0-9_:./-]+)\Z")
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
# ASCII only: str.lower/upper map the Kelvin sign (U+212A) to 'k', long s (U+017F) to 'S', dotless i (U+0131)
# to 'I', sharp s to 'SS', and str.strip removes Unicode spaces: two different people would get one session
# name, tag or policy path.
FILTERS: dict[str, Callable[[str], str]] = {
    "lower": fold,
    "upper": lambda s: s.translate(_ASCII_UPPER),
    "local_part": lambda s: s.rsplit("@", 1)[0],
    "domain": lambda s: s.rsplit("@", 1)[1] if "@" in s else "",
    "strip": lambda s: s.strip(string.whitespace),
}


class TemplateError(ValueError):
    pass


class MissingClaim(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    filters: tuple[str, ...]

    @property
    def claim(self) -> str:
        return self.name.removeprefix("claims.")


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[str | Field, ...]

    @property
    def claims(self) -> set[str]:
        return {p.claim for p in self.parts if isinstance(p, Field)}

    def render(self, values: Mapping[str, tuple[str, ...]]) -> str:
        return "".join(p if isinstance(p, str) else _render_field(p, values) for p in self.parts)

    def render_each(self, values: Mapping[str, tuple[str, ...]], escape: Callable[[str], str]) -> str:
        """Like render, but each claim value passes through `escape` (for values inside policies)."""
        return "".join(p if isinstance(p, str) else escape(_render_field(p, values)) for p in self.parts)


def _render_field(part: Field, values: Mapping[str, tuple[str, ...]]) -> str:
    found = values.get(part.claim)
    if not found:
        raise MissingClaim(f"claim {part.claim!r} is missing")
    text = found[0]
    for name in part.filters:
        text = FILTERS[name](text)
    return text


def parse_template(source: str) -> Template:
    parts: list[str | Field] = []
    last = 0
    for match in FIELD.finditer(source):
        parts.append(source[last:match.start()])
        last = match.end()
        if match.group(0) in ("{{", "}}"):
            parts.append(match.group(0)[0])
            continue
        name, *filters = (s.strip() for s in match.group(1).split("|"))
        if not NAME.fullmatch(name):
            raise TemplateError(f"unknown template field {{{name}}}: use email, subject, idp, issuer or claims.NAME")
        unknown = [f for f in filters if f not in FILTERS]
        if unknown:
            raise TemplateError(f"unknown filter {unknown[0]!r}: use {', '.join(FILTERS)}")
        parts.append(Field(name, tuple(filters)))
    parts.append(source[last:])
    if any(isinstance(p, str) and ("{" in p or "}" in p) and p not in ("{", "}") for p in parts):
        raise TemplateError("unbalanced braces (write {{ or }} for a literal brace)")
    return Template(source, tuple(p for p in parts if p != ""))
