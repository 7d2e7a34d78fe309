"""The two error tables (web/errors.py HTTP_STATUS, routes_token.py OAUTH_ERRORS) against the source: every
error broker/ constructs, with every reason code it is given, lands on an entry of its own, never on the
BrokerError catch-all (a silent 500). The reasons are found by reading broker/'s source, not listed here."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import broker
from broker.errors import BadRequest, BrokerError, StsUnavailable, TokenInvalid, UpstreamUnavailable
from broker.web.errors import HTTP_STATUS, ErrorKey, entry_for
from broker.web.routes_token import OAUTH_ERRORS

SOURCE = Path(broker.__file__).parent
CATCH_ALL_REASONS = {"internal_error"}  # the one reason that is meant to be a 500


def _tree() -> dict[str, type[BrokerError]]:
    for module in pkgutil.walk_packages(broker.__path__, "broker."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: dict[str, type[BrokerError]] = {}
    todo: list[type[BrokerError]] = [BrokerError]
    while todo:
        kind = todo.pop()
        assert found.setdefault(kind.__name__, kind) is kind, f"two error classes named {kind.__name__}"
        todo.extend(kind.__subclasses__())
    return found


TREE = _tree()


@dataclass(frozen=True)
class Site:
    where: str
    kind: type[BrokerError]
    reason: str | None  # None: computed at run time (an f-string, a lookup): only the class decides


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _reason_arg(call: ast.Call) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == "reason"), None)


def _constant(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _factories(tree: ast.Module) -> dict[str, tuple[type[BrokerError], int, str, str | None]]:
    """Helpers such as `def _refuse(reason, detail): return TokenInvalid(detail, reason=reason)`: their
    name -> (error class, position and name of the reason parameter, its default)."""
    found: dict[str, tuple[type[BrokerError], int, str, str | None]] = {}
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        params = [a.arg for a in func.args.args]
        defaults = dict(zip(reversed(params), reversed(func.args.defaults), strict=False))
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call) and _name(n) in TREE):
            arg = _reason_arg(call)
            if isinstance(arg, ast.Name) and arg.id in params:
                found[func.name] = (TREE[_name(call)], params.index(arg.id), arg.id, _constant(defaults.get(arg.id)))
    return found


def _sites_in(path: Path) -> Iterator[Site]:
    tree = ast.parse(path.read_text(), str(path))
    factories = _factories(tree)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        where, name = f"{path.relative_to(SOURCE.parent)}:{call.lineno}", _name(call)
        if name in TREE:
            arg = _reason_arg(call)
            kind = TREE[name]
            yield Site(where, kind, kind.reason if arg is None else _constant(arg))
        elif name in factories:
            kind, index, param, default = factories[name]
            given = next((kw.value for kw in call.keywords if kw.arg == param), None)
            if given is None and index < len(call.args):
                given = call.args[index]
            yield Site(where, kind, default if given is None else _constant(given))


SITES = [site for path in sorted(SOURCE.rglob("*.py")) for site in _sites_in(path)]
REASONS = sorted({(site.kind, site.reason) for site in SITES if site.reason is not None},
                 key=lambda kr: (kr[0].__name__, kr[1] or ""))


def test_the_scan_finds_what_is_raised() -> None:
    """The scan is not vacuous: direct raises, the module helpers' reasons and class defaults are all seen."""
    found = {(site.kind, site.reason) for site in SITES}
    assert len(SITES) > 100
    assert {(StsUnavailable, "sts_timeout"), (TokenInvalid, "token_expired"), (TokenInvalid, "saml_replay"),
            (BadRequest, "unsupported_grant_type"), (UpstreamUnavailable, None)} <= found
    assert (TokenInvalid, "saml_signature_shape") in found  # a helper's default reason


def _id(value: object) -> str:
    return str(getattr(value, "__name__", value))


@pytest.mark.parametrize(("kind", "reason"), REASONS, ids=_id)
def test_every_reason_raised_has_a_status(kind: type[BrokerError], reason: str) -> None:
    key = entry_for(HTTP_STATUS, kind, reason)
    assert key is not BrokerError or reason in CATCH_ALL_REASONS, f"{kind.__name__}({reason!r}) is a silent 500"


def test_every_site_with_a_reason_computed_at_run_time_has_a_status_by_class() -> None:
    for site in SITES:
        if site.reason is None:
            assert next(k for k in site.kind.__mro__ if k in HTTP_STATUS) is not BrokerError, site.where


@pytest.mark.parametrize("kind", [kind for _, kind in sorted(TREE.items())], ids=_id)
def test_every_error_class_has_a_status(kind: type[BrokerError]) -> None:
    key = entry_for(HTTP_STATUS, kind, kind.reason)
    assert key is not BrokerError or kind.reason in CATCH_ALL_REASONS, f"{kind.__name__} is a silent 500"


@pytest.mark.parametrize("table", [HTTP_STATUS, OAUTH_ERRORS], ids=["HTTP_STATUS", "OAUTH_ERRORS"])
def test_each_reason_key_is_raised_by_one_class(table: Mapping[ErrorKey, object]) -> None:
    """A reason key decides whatever class carries it: so it must be raised somewhere, by one class only."""
    for key in (k for k in table if isinstance(k, str)):
        kinds = {site.kind for site in SITES if site.reason == key}
        assert len(kinds) == 1, f"{key!r} raised by {sorted(k.__name__ for k in kinds)}"


def test_every_class_key_is_in_the_tree() -> None:
    for table in (HTTP_STATUS, OAUTH_ERRORS):
        assert {k for k in table if not isinstance(k, str)} <= set(TREE.values())


def test_statuses_are_http_errors() -> None:
    assert all(400 <= status <= 599 for status in HTTP_STATUS.values())
    assert all(status is None or 400 <= status <= 599 for _, status in OAUTH_ERRORS.values())


def test_every_error_class_is_in_the_one_tree() -> None:
    """Every BrokerError subclass broker/ defines lives in broker/errors.py (the XML guard's XmlRejected was
    the last one outside)."""
    assert "XmlRejected" in TREE and len(TREE) > 20
    assert {name: kind.__module__ for name, kind in TREE.items() if kind.__module__ != "broker.errors"} == {}
