"""Bounds on a YAML document, applied by broker/yaml_nodes.py to libyaml's event stream as it arrives.

PyYAML's composer and constructor recurse once per nesting level, and an alias re-uses its anchor's node,
so three documents a few lines long break the loaders that walk the result (environment expansion, the
line map, pydantic): one nested a few thousand levels deep (RecursionError, after seconds), one whose alias
refers to the collection it is inside (`&a [*a]`: a structure that contains itself, RecursionError), and an
alias bomb (each level of aliases multiplies the nodes a walk visits). The event stream is produced without
recursion, so each is refused there, in time linear in the text, with a message for the config problem list:
deeper than MAX_DEPTH, an alias to an anchor not yet closed, more than MAX_NODES values with every alias
expanded.
"""

from __future__ import annotations

MAX_DEPTH = 64
MAX_NODES = 200_000  # counted with every alias expanded, as the loaders walk the document
