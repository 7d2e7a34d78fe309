"""No module of broker/ reaches into another's private names (`from broker.x import _name`, or
`x._name` on an imported broker module): what a module shares, it names publicly. Read from the source
of all of broker/, every package included."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import broker

SOURCE = Path(broker.__file__).parent


def _module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def private_imports(path: Path, root: Path = SOURCE) -> list[str]:
    """`path` is a module of the package at `root` (broker/)."""
    here, tree = _module_of(path, root), ast.parse(path.read_text(), str(path))
    where = path.relative_to(root.parent)
    found, modules = [], set()  # modules: local names bound to a broker module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.asname and a.name.startswith("broker.")}
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, here, path.name == "__init__.py")
            if source != "broker" and not source.startswith("broker."):
                continue
            for alias in node.names:
                if _private(alias.name) and source != here:
                    found.append(f"{where}:{node.lineno}: {source}.{alias.name}")
                elif _is_module(f"{source}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and _private(node.attr)):
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_scan_sees_a_private_import(tmp_path: Path) -> None:
    """The scanner itself, on a module written for it: both spellings are caught, public names are not."""
    root = tmp_path / "broker"
    (root / "web").mkdir(parents=True)
    probe = root / "web" / "probe.py"
    probe.write_text("from broker.outputs.formats import FORMATS, _hidden\nfrom broker.web import errors\n"
                     "from . import render as r\nfrom .probe import _own\nx = errors._audit\ny = r.__name__\n")
    found = [hit.split(": ", 1)[1] for hit in private_imports(probe, root)]
    assert found == ["broker.outputs.formats._hidden", "errors._audit"]


def test_no_private_name_is_imported_across_broker_modules() -> None:
    found = [hit for path in sorted(SOURCE.rglob("*.py")) for hit in private_imports(path)]
    assert not found, "private names imported across modules:\n" + "\n".join(found)
