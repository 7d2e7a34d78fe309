"""Conditions of the rules language, compiled once at load into small predicate objects.

A condition tree is a mapping: `all: [...]`, `any: [...]`, `not: {...}`, or a claim name mapped to its
operators (several operators on one claim must all hold; several keys in one mapping must all hold).
Comparison is exact and case-sensitive unless `ignore_case: true`, which folds ASCII letters only, so a
Unicode look-alike never matches. A list claim matches when any element does (contains_all excepted).
Every operator except `absent` needs the claim to be present: a negated operator on a missing claim is
false, so a missing claim never widens a match. Values longer than MAX_VALUE match nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.durations import parse_duration

MAX_VALUE = 4096
Claims = Mapping[str, tuple[str, ...]]
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
COMBINATORS = ("all", "any", "not")


class ConditionError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def fold(text: str) -> str:
    return text.translate(_ASCII_FOLD)


def scalar_text(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConditionError(path, f"expected a string, number or boolean, got {type(value).__name__}")


def _texts(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConditionError(path, "expected a non-empty list")
    return tuple(scalar_text(v, f"{path}.{i}") for i, v in enumerate(value))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _instant(text: str, now: datetime, relative: bool = False) -> float | None:
    """Epoch seconds, an ISO 8601 time, or (in rules only: `relative`) a duration relative to now such as
    -8h. A claim value is never relative: "8h" in a claim is not a time, so it matches nothing."""
    number = _number(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        if not relative:
            return None
        try:
            sign = -1 if text.startswith("-") else 1
            return now.timestamp() + sign * parse_duration(text.lstrip("+-")).total_seconds()
        except ValueError:
            return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# ---- operators: each builds a test over the claim's values (already length-screened) ------------------

ValuesTest = Callable[[tuple[str, ...], datetime], bool]


def _any(values: tuple[str, ...], hit: Callable[[str], bool]) -> bool:
    return any(hit(v) for v in values)


def _string_op(op: str, arg: Any, path: str, ignore_case: bool) -> ValuesTest:
    norm: Callable[[str], str] = fold if ignore_case else (lambda s: s)
    if op in {"equals", "not_equals", "contains"}:
        want = norm(scalar_text(arg, path))
        return lambda vs, _: _any(vs, lambda v: norm(v) == want)
    if op in {"in", "not_in", "contains_any"}:
        allowed = frozenset(norm(t) for t in _texts(arg, path))
        return lambda vs, _: _any(vs, lambda v: norm(v) in allowed)
    if op == "contains_all":
        needed = frozenset(norm(t) for t in _texts(arg, path))
        return lambda vs, _: needed <= {norm(v) for v in vs}
    if op in {"starts_with", "ends_with"}:
        affix = norm(scalar_text(arg, path))
        if op == "starts_with":
            return lambda vs, _: _any(vs, lambda v: norm(v).startswith(affix))
        return lambda vs, _: _any(vs, lambda v: norm(v).endswith(affix))
    return _pattern_op(op, arg, path, ignore_case)


def _pattern_op(op: str, arg: Any, path: str, ignore_case: bool) -> ValuesTest:
    source = scalar_text(arg, path)
    if op == "glob":
        source = fnmatch.translate(fold(source) if ignore_case else source)
    try:
        pattern = re.compile(source, re.IGNORECASE | re.ASCII if ignore_case else 0)
    except re.error as exc:
        raise ConditionError(path, f"invalid {op} pattern: {exc}") from None
    if op == "glob":
        return lambda vs, _: _any(vs, lambda v: pattern.match(fold(v) if ignore_case else v) is not None)
    return lambda vs, _: _any(vs, lambda v: pattern.fullmatch(v) is not None)


def _compare_op(op: str, arg: Any, path: str) -> ValuesTest:
    text = scalar_text(arg, path)
    compare: dict[str, Callable[[float, float], bool]] = {
        "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
        "before": lambda a, b: a < b, "after": lambda a, b: a > b,
    }
    check = compare[op]
    if op in {"before", "after"}:
        if _instant(text, datetime.now(UTC), relative=True) is None:
            raise ConditionError(path, f"{op} needs a time: epoch seconds, ISO 8601, or a duration like -8h")

        def timed(vs: tuple[str, ...], now: datetime) -> bool:
            limit = _instant(text, now, relative=True)
            return limit is not None and _any(vs, lambda v: (t := _instant(v, now)) is not None and check(t, limit))
        return timed
    limit = _number(text)
    if limit is None:
        raise ConditionError(path, f"{op} needs a number")
    return lambda vs, _: _any(vs, lambda v: (n := _number(v)) is not None and check(n, limit))


STRING_OPS = {"equals", "not_equals", "in", "not_in", "contains", "contains_any", "contains_all",
              "starts_with", "ends_with", "glob", "regex"}
COMPARE_OPS = {"lt", "le", "gt", "ge", "before", "after"}
PRESENCE_OPS = {"exists", "absent"}
NEGATED = {"not_equals", "not_in"}
INDEXABLE = {"equals", "in", "contains", "contains_any"}
OPERATORS = STRING_OPS | COMPARE_OPS | PRESENCE_OPS


# ---- the tree -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a condition did not hold: where it is, which operator, and the claim's actual values."""

    path: str
    claim: str
    operator: str
    actual: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ClaimTest:
    path: str
    claim: str
    operator: str
    test: ValuesTest | None  # None for exists/absent
    # For exact, case-sensitive membership tests: the claim must hold one of these values. Lets the
    # evaluator index rules by value instead of trying each one.
    index_values: frozenset[str] | None = None

    def check(self, claims: Claims, now: datetime) -> Failure | None:
        if self.holds(claims, now):
            return None
        return Failure(self.path, self.claim, self.operator, claims.get(self.claim))

    def holds(self, claims: Claims, now: datetime) -> bool:
        values = claims.get(self.claim)
        if self.operator in PRESENCE_OPS:
            ok = bool(values) == (self.operator == "exists")
        elif not values:
            ok = False
        else:
            if any(len(v) > MAX_VALUE for v in values):
                values = tuple(v for v in values if len(v) <= MAX_VALUE)
            assert self.test is not None
            hit = bool(values) and self.test(values, now)
            ok = not hit if self.operator in NEGATED else hit
        return ok


@dataclass(frozen=True, slots=True)
class Combined:
    path: str
    kind: str  # all | any | not
    parts: tuple[Node, ...]

    def check(self, claims: Claims, now: datetime) -> Failure | None:
        if self.kind == "all":
            return next((f for p in self.parts if (f := p.check(claims, now)) is not None), None)
        if self.kind == "any":
            failures = [p.check(claims, now) for p in self.parts]
            return None if any(f is None for f in failures) else Failure(self.path, "", "any", None)
        inner = self.parts[0].check(claims, now)
        return Failure(self.path, "", "not", None) if inner is None else None

    def holds(self, claims: Claims, now: datetime) -> bool:
        if self.kind == "all":
            return all(p.holds(claims, now) for p in self.parts)
        if self.kind == "any":
            return any(p.holds(claims, now) for p in self.parts)
        return not self.parts[0].holds(claims, now)


Node = ClaimTest | Combined


def claim_key(name: str) -> str:
    """`claims.x.y` and `x.y` name the same claim; builtins (email, groups, ...) stay as they are."""
    return name.removeprefix("claims.")


def _claim_tests(claim: str, spec: Any, path: str) -> list[Node]:
    if not isinstance(spec, dict) or not spec:
        raise ConditionError(path, "expected a mapping of operators, e.g. {contains: admins}")
    ignore_case = spec.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise ConditionError(f"{path}.ignore_case", "expected true or false")
    tests: list[Node] = []
    for op, arg in spec.items():
        if op == "ignore_case":
            continue
        where = f"{path}.{op}"
        if op not in OPERATORS:
            raise ConditionError(where, f"unknown operator {op!r}; known: {', '.join(sorted(OPERATORS))}")
        if op in PRESENCE_OPS:
            if arg is not True:
                raise ConditionError(where, f"write `{op}: true`")
            tests.append(ClaimTest(where, claim_key(claim), op, None))
            continue
        test = _string_op(op, arg, where, ignore_case) if op in STRING_OPS else _compare_op(op, arg, where)
        index = None
        if op in INDEXABLE and not ignore_case:
            index = frozenset(_texts(arg, where) if isinstance(arg, list) else (scalar_text(arg, where),))
        tests.append(ClaimTest(where, claim_key(claim), op, test, index))
    if not tests:
        raise ConditionError(path, "ignore_case alone is not a condition")
    return tests


def parse(tree: Any, path: str = "when") -> Node:
    """Compile a condition mapping. Raises ConditionError naming the path of the first problem."""
    if not isinstance(tree, dict):
        raise ConditionError(path, "expected a mapping")
    parts: list[Node] = []
    for key, spec in tree.items():
        where = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(spec, list) or not spec:
                raise ConditionError(where, f"{key} takes a non-empty list of conditions")
            parts.append(Combined(where, key, tuple(parse(s, f"{where}.{i}") for i, s in enumerate(spec))))
        elif key == "not":
            parts.append(Combined(where, "not", (parse(spec, where),)))
        else:
            parts.extend(_claim_tests(str(key), spec, where))
    return parts[0] if len(parts) == 1 else Combined(path, "all", tuple(parts))


def guard(node: Node | None) -> ClaimTest | None:
    """A membership test that must hold for the whole condition to hold (at the top, or in a top-level
    all), if there is one: the evaluator looks such rules up by value."""
    if isinstance(node, ClaimTest):
        return node if node.index_values is not None else None
    if isinstance(node, Combined) and node.kind == "all":
        return next((g for p in node.parts if (g := guard(p)) is not None), None)
    return None


def referenced_claims(node: Node) -> set[str]:
    if isinstance(node, ClaimTest):
        return {node.claim}
    return set().union(*(referenced_claims(p) for p in node.parts))
