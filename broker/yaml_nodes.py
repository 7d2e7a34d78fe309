"""YAML text to plain data (dicts, lists, scalars) in one pass of libyaml's C parser, with the line of every
key and list item, and the bounds of yaml_limits.py applied as the events arrive.

Why events and not `compose` + `construct`: the composer and the constructor recurse once per nesting level
and re-walk an alias's node each time it is used, so the bounds must be judged before either runs; the event
stream is flat. The data is built here from the events with an explicit stack (no recursion), scalars are
resolved and constructed by PyYAML's safe resolver and constructors (so `1` is an int, `2026-01-01` a date,
`yes` a bool, exactly as `yaml.safe_load`), and an alias re-uses the object its anchor built, as PyYAML does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from broker.yaml_limits import MAX_DEPTH, MAX_NODES

Path = tuple[str, ...]
Lines = dict[Path, int]
Expand = Callable[[str, Path], str]  # ${NAME} expansion of a string scalar at a path

_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE, _STR = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                         ("null", "bool", "int", "float", "binary", "timestamp", "str"))
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_RESOLVER: Any = yaml.resolver.Resolver()
_IMPLICIT_FIRST = frozenset(ch for ch in _RESOLVER.yaml_implicit_resolvers if ch is not None)
_WILDCARD = None in _RESOLVER.yaml_implicit_resolvers  # resolvers for any first character: none in PyYAML 6
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it (pinned: it is)


class YamlProblem(ValueError):
    """The document is not YAML, or not within bounds. `line`/`column` are 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


@dataclass(slots=True)
class _Open:
    """A collection being built: its data, path, anchor, expanded size, and (mappings) the key awaited."""

    data: Any  # a dict (is_map) or a list
    path: Path
    anchor: str | None
    size: int = 1
    key: Any = None
    has_key: bool = False
    merges: list[dict[Any, Any]] = field(default_factory=list)
    merging: bool = False
    is_map: bool = False


@dataclass
class Document:
    data: Any
    lines: Lines


def _mark_line(event: Any) -> int:
    return int(event.start_mark.line) + 1


def _tag(event: Any) -> str:
    """The resolver's tag; a quoted scalar, or a plain one whose first character starts no implicit type
    (most of a config: keys, names, ARNs), is a string without running the resolver's patterns."""
    tag = event.tag
    if tag is not None and tag != "!":
        return str(tag)
    value = event.value
    if not event.implicit[0] or (value and value[0] not in _IMPLICIT_FIRST and not _WILDCARD):
        return _STR
    return str(_RESOLVER.resolve(yaml.ScalarNode, value, event.implicit))


def _scalar(event: Any, tag: str) -> Any:
    if tag == _STR:
        return event.value
    construct = _CONSTRUCTOR.yaml_constructors.get(tag) if tag in _SCALAR_TAGS else None
    if construct is None:
        raise YamlProblem(f"tag {str(tag)[:60]} is not supported", _mark_line(event))
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return construct(_CONSTRUCTOR, node)
    except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):  # `!!int one` & co.
        raise YamlProblem(f"{event.value[:40]!r} does not fit its tag {tag}", _mark_line(event)) from None


class _Builder:
    def __init__(self, expand: Expand | None) -> None:
        self.expand = expand
        self.lines: Lines = {}
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (data, size with aliases expanded)
        self.stack: list[_Open] = []
        self.root: Any = None

    def child_path(self, event: Any) -> Path:
        """Where the value now arriving goes; records its line (a mapping key's, a list item's)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if not top.is_map:
            path = (*top.path, str(len(top.data)))
            self.lines[path] = _mark_line(event)
            return path
        return (*top.path, str(top.key))

    def add(self, value: Any, size: int, event: Any) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        self.count(top, size)
        if not top.is_map:
            top.data.append(value)
        elif not top.has_key:
            self.set_key(top, value, event)
        else:
            self.set_value(top, value, event)

    def set_key(self, top: _Open, key: Any, event: Any) -> None:
        try:
            hash(key)
        except TypeError:
            raise YamlProblem("a mapping key is itself a mapping or list", _mark_line(event)) from None
        top.key, top.has_key = key, True
        self.lines[(*top.path, str(key))] = _mark_line(event)

    def set_value(self, top: _Open, value: Any, event: Any) -> None:
        assert isinstance(top.data, dict)
        if top.merging:  # `<<: *base` or `<<: [*a, *b]`: keys of the mappings named, explicit keys win
            named = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in named):
                raise YamlProblem("a merge key (<<) takes a mapping or a list of mappings", _mark_line(event))
            top.merges.extend(named)
        else:
            top.data[top.key] = value
        top.has_key, top.merging = False, False

    def scalar(self, event: Any) -> None:
        """The commonest event, so the way through it is short: a key, or a value (its path built only for
        ${NAME} expansion)."""
        tag = _tag(event)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and not top.has_key:
            if tag == _MERGE:
                top.has_key, top.merging = True, True
                return
            key = _scalar(event, tag)  # a scalar: hashable
            top.key, top.has_key = key, True
            self.lines[(*top.path, str(key))] = event.start_mark.line + 1
            self.remember(event.anchor, key, 1)
            self.count(top, 1)
            return
        value = _scalar(event, tag)
        if top is not None and not top.is_map:
            self.lines[(*top.path, str(len(top.data)))] = event.start_mark.line + 1
        if self.expand is not None and isinstance(value, str) and "${" in value:
            path = () if top is None else (*top.path, str(top.key if top.is_map else len(top.data)))
            value = self.expand(value, path)  # values only, as before: a key is never expanded
        self.remember(event.anchor, value, 1)
        if top is None:
            self.root = value
            return
        self.count(top, 1)
        if top.is_map:
            self.set_value(top, value, event)
        else:
            top.data.append(value)

    def count(self, top: _Open, size: int) -> None:
        top.size += size
        if top.size > MAX_NODES:
            raise YamlProblem(f"more than {MAX_NODES} values once aliases are expanded")

    def alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:  # undefined, or an alias inside the collection it names
            raise YamlProblem(f"alias *{str(event.anchor)[:40]} is undefined or refers to a collection that "
                              "contains it", _mark_line(event))
        self.child_path(event)
        value, size = self.anchors[event.anchor]
        self.add(value, size, event)

    def open(self, event: Any, data: dict[Any, Any] | list[Any]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", _mark_line(event))
        tag = event.tag
        if tag not in (None, "!", _MAP if isinstance(data, dict) else _SEQ):
            raise YamlProblem(f"tag {str(tag)[:60]} is not supported", _mark_line(event))
        self.stack.append(_Open(data, self.child_path(event), event.anchor, is_map=isinstance(data, dict)))

    def close(self, event: Any) -> None:
        done = self.stack.pop()
        if isinstance(done.data, dict) and done.merges:
            merged: dict[Any, Any] = {}
            for mapping in reversed(done.merges):  # the first mapping named wins among merged ones
                merged.update(mapping)
            merged.update(done.data)
            done.data = merged
        self.remember(done.anchor, done.data, done.size)
        self.add(done.data, done.size, event)

    def remember(self, anchor: str | None, value: Any, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    context = f" ({exc.context}, line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
    message = f"{exc.problem or 'syntax error'}{context}"
    return YamlProblem(message, mark.line + 1 if mark else None, mark.column + 1 if mark else None)


def parse(text: str, expand: Expand | None = None) -> Document:
    """One document's data and line map. Raises YamlProblem (syntax, bounds, a tag that does not fit)."""
    builder = _Builder(expand)
    handlers: dict[type, Callable[[Any], None]] = {
        yaml.ScalarEvent: builder.scalar, yaml.AliasEvent: builder.alias,
        yaml.MappingStartEvent: lambda e: builder.open(e, {}),
        yaml.SequenceStartEvent: lambda e: builder.open(e, []),
        yaml.MappingEndEvent: builder.close, yaml.SequenceEndEvent: builder.close,
    }
    loader = LOADER(text)
    documents = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblem("more than one document (---) in the file", _mark_line(event))
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_problem(exc) from None
    except yaml.YAMLError as exc:  # the reader's own errors (a control character, bad encoding)
        raise YamlProblem(" ".join(str(exc).replace("\"<unicode string>\", ", "").split())) from None
    finally:
        loader.dispose()
    return Document(builder.root, builder.lines)
