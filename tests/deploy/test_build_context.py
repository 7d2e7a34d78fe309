"""What `docker build .` would send from this work tree, by the .dockerignore rules (tests/deploy/test_dockerfile.py
reads them as Docker does): only what the image is built from, after a local run left .venv, caches and keys
behind (the context once carried the 331 MB .venv), and every file the wheel's package data names."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from tests.deploy.dockerfile import ROOT
from tests.deploy.test_dockerfile import _ignored

PATTERNS = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
REINCLUDED = [p[1:].rstrip("/") for p in PATTERNS if p.startswith("!")]


def _context() -> dict[str, int]:
    """Relative path -> size of every file the context holds; directories that nothing re-includes are not
    walked (the rules exclude them whole, as Docker does)."""
    found: dict[str, int] = {}
    for directory, subdirectories, files in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else relative + "/"
        subdirectories[:] = [d for d in subdirectories if not _ignored(prefix + d, PATTERNS)
                             or any(r.startswith(prefix + d + "/") for r in REINCLUDED)]
        for name in files:
            if not _ignored(prefix + name, PATTERNS):
                found[prefix + name] = (Path(directory) / name).stat().st_size
    return found


def test_the_context_is_the_sources_only() -> None:
    context = _context()
    tops = {path.split("/")[0] for path in context}
    assert tops == {"pyproject.toml", "README.md", "broker"}
    assert not any("__pycache__" in path or path.endswith((".pyc", ".pem")) for path in context)
    assert sum(context.values()) < 8 * 1024 * 1024, sum(context.values())
    assert (ROOT / ".venv").is_dir()  # there, and left out


def test_the_context_has_the_package_data() -> None:
    context = _context()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    matched = [p.relative_to(ROOT).as_posix() for package, globs in package_data.items()
               for pattern in globs for p in (ROOT / package).glob(pattern)]
    assert {"broker/web/templates/base.html", "broker/devstack/demo_rules.yaml"} <= set(matched)
    assert [path for path in matched if path not in context] == []
