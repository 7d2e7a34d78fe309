"""Bounds on a YAML document, judged on PyYAML's event stream before anything is composed.

PyYAML's composer and constructor recurse once per nesting level, and an alias re-uses its anchor's node,
so three documents a few lines long break the loaders that walk the result (environment expansion, the
line map, pydantic): one nested a few thousand levels deep (RecursionError, after seconds), one whose alias
refers to the collection it is inside (`&a [*a]`: a structure that contains itself, RecursionError), and an
alias bomb (each level of aliases multiplies the nodes a walk visits). The event stream is produced without
recursion, so each is refused here, in time linear in the text, with a message for the config problem list.
"""

from __future__ import annotations

import yaml

MAX_DEPTH = 64
MAX_NODES = 200_000  # counted with every alias expanded, as the loaders walk the document

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def yaml_shape_problem(text: str) -> str | None:
    """None when the document is within bounds; else what is wrong. Syntax errors raise yaml.YAMLError."""
    sizes: dict[str, int] = {}  # anchor -> nodes under it, aliases expanded
    open_: list[tuple[str | None, int]] = [(None, 0)]  # (anchor, nodes so far) per open collection
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, _OPEN):
            if len(open_) > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            open_.append((event.anchor, 1))
            continue
        if isinstance(event, _CLOSE):
            anchor, size = open_.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:  # undefined, or an alias inside the collection it names
                return f"alias *{str(event.anchor)[:40]} is undefined or refers to a collection that contains it"
            anchor, size = None, sizes[event.anchor]
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        parent, count = open_[-1]
        open_[-1] = (parent, count + size)
        if count + size > MAX_NODES:
            return f"more than {MAX_NODES} values once aliases are expanded"
    return None
