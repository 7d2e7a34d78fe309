"""The third-party seams (broker/seams/): each is pinned to the library releases it was read against, and
no other broker module reaches into a library's internals.

On a library upgrade the pin test fails on purpose: re-check the seam against the new release as
docs/upgrade-checklist.md says (tests and bench/seams.py), then move its WRITTEN_FOR to the new version."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest

import broker
import broker.seams

SEAMS = [importlib.import_module(f"broker.seams.{m.name}") for m in pkgutil.iter_modules(broker.seams.__path__)]
BROKER = Path(broker.__file__).parent
# Libraries whose internals only broker/seams/ may touch (import names).
LIBRARIES = frozenset({"uvicorn", "httptools", "onelogin", "xmlsec", "lxml", "botocore", "boto3", "authlib",
                       "joserfc", "redis", "hiredis", "httpx", "starlette", "itsdangerous", "cryptography"})
# Documented extension points and public-by-use names, not internals: lxml's element and tree types (named
# with an underscore, and so in lxml's own type stubs), lxml's resolver base class (its documented way to
# plug in entity resolution), Starlette's Response (its documented way to write a response class), httpx's
# AsyncBaseTransport (its documented way to write a custom transport).
ALLOWED = frozenset({"_Element", "_ElementTree", "Resolver", "Response", "AsyncBaseTransport"})


def test_the_seams_are_the_expected_modules() -> None:
    assert sorted(m.__name__ for m in SEAMS) == ["broker.seams.cryptography_keys", "broker.seams.python3_saml",
                                                 "broker.seams.uvicorn"]


@pytest.mark.parametrize("seam", SEAMS, ids=lambda m: m.__name__)
def test_each_seam_runs_on_the_library_release_it_was_written_for(seam: ModuleType) -> None:
    pinned: dict[str, str] = seam.WRITTEN_FOR
    assert pinned
    for distribution, written_for in pinned.items():
        installed = version(distribution)
        assert installed == written_for, (
            f"{seam.__name__} was written for {distribution} {written_for}, and {installed} is installed: "
            f"re-check it against the new release as docs/upgrade-checklist.md says (its tests and "
            f"`python -m bench.seams`), then set WRITTEN_FOR[{distribution!r}] = {installed!r}")


def _imported_library_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in LIBRARIES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            names |= {a.asname or a.name for a in node.names}
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def internals_reached(source: str) -> list[str]:
    """What one module does to a library beyond its public API: a private name imported or read, a library
    class subclassed (bar ALLOWED), an attribute of a library module or class assigned."""
    tree = ast.parse(source)
    library = _imported_library_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            found += [f"imports {node.module}" for part in node.module.split(".") if part.startswith("_")]
            found += [f"imports {a.name}" for a in node.names if a.name.startswith("_") and a.name not in ALLOWED]
        elif isinstance(node, ast.Attribute) and _root(node) in library and node.attr.startswith("_") \
                and not node.attr.startswith("__") and node.attr not in ALLOWED:
            found.append(f"reads {ast.unparse(node)}")
        elif isinstance(node, ast.ClassDef):
            found += [f"subclasses {ast.unparse(b)}" for b in node.bases
                      if _root(b) in library and ast.unparse(b).split(".")[-1] not in ALLOWED]
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"assigns {ast.unparse(t)}" for t in targets
                      if isinstance(t, ast.Attribute) and _root(t) in library]
    return found


def test_no_module_outside_the_seams_reaches_into_a_library() -> None:
    """broker/devstack/ is left out: it is the test IdPs' and the demo's code, never served in production."""
    reached = {}
    for path in sorted(BROKER.rglob("*.py")):
        part = path.relative_to(BROKER).parts[0]
        if part not in {"seams", "devstack"} and (found := internals_reached(path.read_text())):
            reached[str(path.relative_to(BROKER))] = found
    assert reached == {}


def test_the_check_finds_what_the_seams_do() -> None:
    """The check above can fail: run on the seams themselves, it names what each reaches."""
    uvicorn = internals_reached((BROKER / "seams" / "uvicorn.py").read_text())
    saml = internals_reached((BROKER / "seams" / "python3_saml.py").read_text())
    assert "subclasses HttpToolsProtocol" in uvicorn
    assert {"subclasses OneLogin_Saml2_Response", "assigns OneLogin_Saml2_XML.validate_xml",
            "assigns saml_utils.xmlsec"} <= set(saml)
    assert internals_reached("import httpx\nx: httpx._client.UseClientDefault") == ["reads httpx._client"]
    assert internals_reached("from uvicorn.protocols._x import y\nfrom redis import _z") == [
        "imports uvicorn.protocols._x", "imports _z"]
