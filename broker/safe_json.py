"""JSON from outside the broker (token headers and payloads, JWKS, discovery, token endpoint answers), parsed
with limits. The standard parser recurses once per nesting level, so `[[[[...]]]]` 10,000 deep is a
RecursionError, not a ValueError; the depth is bounded here before parsing, and a RecursionError is caught
besides. Sizes are bounded by the callers (they know their own caps) before the bytes arrive here.

What is refused, as `JsonRefused` (a ValueError, so "not JSON" handling catches it too):
- nesting deeper than `max_depth` (JSON text, arrays and objects alike);
- a member name twice in one object (RFC 8259 leaves that to the parser: Python keeps the last, other
  parsers the first; a signed token must mean one thing to everyone who reads it);
- NaN, Infinity and -Infinity (not JSON; Python accepts them by default);
- a string holding a lone surrogate (`"\\ud800"`: not Unicode text; every encoder after the parser fails on it);
- anything that is not a JSON object at the top, for `loads_object`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # a token's claims nest 2-3 deep, a JWKS 3: ample, and far below the recursion limit
_ESCAPE = re.compile(r"\\.", re.DOTALL)  # a backslash and what it escapes (an escaped quote ends no string)
_STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string is plain: nothing inside it counts
# Outside strings, valid JSON holds only brackets and these; deleting them (str.translate, in C) leaves the
# brackets, plus whatever makes the text invalid JSON anyway. Objects count as arrays for depth: the
# parser recurses into either, and a mismatched pair is its own error once the depth is known to be small.
_SCALARS = str.maketrans("{}", "[]", " \t\n\r,:0123456789.-+eEtruefalsn")
_ONLY_OTHERS = str.maketrans("", "", "[]")


class JsonRefused(ValueError):
    """Why a JSON text was refused; the message names the limit, never the content."""


def _depth_within(text: str, max_depth: int) -> bool:
    """Whether the brackets outside strings nest at most max_depth deep (and balance). Every step is one
    linear pass in C: escapes out, strings out, all but brackets out; then each `replace` removes the
    innermost empty pairs (not the pairs it exposes), so max_depth passes empty a document that deep."""
    if text.count("[") + text.count("{") <= max_depth:
        return True  # the common case: too few brackets to nest that deep, whatever their order
    brackets = _STRING.sub("", _ESCAPE.sub("", text)).translate(_SCALARS)
    if brackets.translate(_ONLY_OTHERS):
        raise JsonRefused("not valid JSON")
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = brackets.replace("[]", "")
    return not brackets


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JsonRefused("a member name appears twice in one object")
    return obj


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)  # built once


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8") from None
    if not _depth_within(text, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels (or brackets not balanced)")
    try:
        document = _DECODER.decode(text)
    except RecursionError:  # belt and braces: the depth check above should make this unreachable
        raise JsonRefused("nested too deep for the parser") from None
    except JsonRefused:
        raise
    except ValueError:
        raise JsonRefused("not valid JSON") from None
    if "\\u" in text:  # a surrogate can only come from an escape (the text itself is valid UTF-8 or str)
        _unicode_only(document)
    return document


def _unicode_only(document: Any) -> None:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused("a string holds a lone surrogate (not Unicode text)") from None


def loads_object(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    document = loads(data, max_depth=max_depth)
    if not isinstance(document, dict):
        raise JsonRefused("not a JSON object")
    return document
