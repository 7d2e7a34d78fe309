"""The app's parts are read through one typed object (broker/web/context.py: WebContext, context_of), never
as loose attributes of Starlette's untyped `app.state`: the only name on it is `context`."""

from __future__ import annotations

import ast
from pathlib import Path

import broker

SOURCE = Path(broker.__file__).parent


def _is_app(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id.endswith("app")) or (
        isinstance(node, ast.Attribute) and node.attr == "app")


def loose_state(path: Path) -> list[str]:
    """`<...>app.state.<name>` with any name but `context`, read or written."""
    return [f"{path}:{node.lineno}: state.{node.attr}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr != "context" and isinstance(node.value, ast.Attribute)
            and node.value.attr == "state" and _is_app(node.value.value)]


def test_the_scan_sees_a_loose_attribute(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("a = request.app.state.service\napp.state.audit = 1\n"
                     "b = app.state.context\nside.state = app.state\n")
    assert [hit.split(": ")[1] for hit in loose_state(probe)] == ["state.service", "state.audit"]


def test_app_state_holds_only_the_context() -> None:
    found = [hit for path in sorted(SOURCE.rglob("*.py")) for hit in loose_state(path)]
    assert not found, "read the app's parts through context_of(request):\n" + "\n".join(found)
