"""What turns a validation error into a problem a person can act on: a "did you mean" for a mistyped key (the
closest field names of the model at that place), and list items named by their id (`rules[admins]` rather than
`rules.3`, `keys[k2026a]` rather than `keys.0`)."""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from pydantic import BaseModel

# Lists whose items carry an id: the list's key -> the item's id field.
ITEM_IDS = {"rules": "id", "keys": "kid", "tests": "name"}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: itself, or inside Annotated, Optional, unions, lists and
    dicts."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is None:
        return []
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    """Each field by the name a file spells it (its alias when it has one)."""
    return {(field.alias or name): field.annotation for name, field in model.model_fields.items()}


def models_at(root: type[BaseModel], loc: tuple[str, ...]) -> list[type[BaseModel]]:
    """The models that can sit at `loc`: a part naming a field steps into that field's models; any other part
    (a list index, a dict key, a union's tag) stays where it is."""
    current = [root]
    for part in loc:
        inner = [m for model in current for name, annotation in _field_names(model).items() if name == part
                 for m in _models_in(annotation)]
        if inner or any(part in _field_names(model) for model in current):
            current = inner
    return current


def did_you_mean(root: type[BaseModel] | None, loc: tuple[str, ...]) -> str | None:
    """For an unknown key at loc: the closest known key of the model(s) there, if one is close."""
    if root is None or not loc:
        return None
    names = sorted({name for model in models_at(root, loc[:-1]) for name in _field_names(model)})
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    return close[0] if close else None


def shown_path(loc: tuple[str, ...], data: Any) -> str:
    """loc as the person reads it: an item of a list in ITEM_IDS by its id when it has one."""
    out: list[str] = []
    node = data
    for part in loc:
        item_id = None
        if out and isinstance(node, list) and part.isdigit() and int(part) < len(node):
            item = node[int(part)]
            key = ITEM_IDS.get(out[-1]) if len(out) == 1 else None
            item_id = item.get(key) if key and isinstance(item, dict) else None
        if isinstance(item_id, str) and item_id:
            out[-1] = f"{out[-1]}[{item_id}]"
        else:
            out.append(part)
        node = _child(node, part)
    return ".".join(out)


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None
