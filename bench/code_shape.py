"""The shape of broker/ at a git revision: module count, the largest modules (lines), the longest functions
(lines, `def` to last line). Read from git objects, so any commit is measured without a checkout.

    python -m bench.code_shape [REV ...]      (default: HEAD; each with and without broker/devstack/)

Not a speed bench and not in `make bench`: the before/after figures issue 13 asks for.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass

TOP = 5


@dataclass(frozen=True)
class Shape:
    modules: int
    lines: int
    largest: list[tuple[int, str]]
    longest: list[tuple[int, str]]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def shape(rev: str, skip: str | None = None) -> Shape:
    """`skip`: a folder left out (broker/devstack/ is demo and test support, not the broker)."""
    paths = [p for p in _git("ls-tree", "-r", "--name-only", rev, "broker/").splitlines()
             if p.endswith(".py") and not (skip and p.startswith(skip))]
    sizes: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for path in paths:
        text = _git("show", f"{rev}:{path}")
        sizes.append((len(text.splitlines()), path))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                functions.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return Shape(len(paths), sum(n for n, _ in sizes), sorted(sizes, reverse=True)[:TOP],
                 sorted(functions, reverse=True)[:TOP])


def report(rev: str, skip: str | None = None) -> str:
    s = shape(rev, skip)
    where = f"broker/ without {skip}" if skip else "broker/"
    out = [f"## {rev}: {s.modules} modules, {s.lines} lines in {where}", "", "| largest modules | lines |",
           "|---|---|"]
    out += [f"| {path} | {n} |" for n, path in s.largest]
    out += ["", "| longest functions | lines |", "|---|---|"]
    out += [f"| {where} | {n} |" for n, where in s.longest]
    return "\n".join(out)


def main(revs: list[str]) -> int:
    for skip in (None, "broker/devstack/"):
        print("\n\n".join(report(rev, skip) for rev in revs or ["HEAD"]), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
