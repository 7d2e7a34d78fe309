"""broker/yaml_nodes.py builds from libyaml's events what `yaml.safe_load` builds, with the line of every key
and item, and refuses what yaml_limits.py bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker import yaml_nodes
from broker.yaml_limits import MAX_DEPTH

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted({*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("idp_configs/*.yaml"), *ROOT.glob("tests/**/*.yaml")})


def test_libyaml_is_there() -> None:
    """The C parser is what makes one parse fast; the pinned PyYAML wheel carries it."""
    assert yaml.__with_libyaml__ and yaml_nodes.LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("file", FILES, ids=[str(f.relative_to(ROOT)) for f in FILES])
def test_same_data_as_safe_load(file: Path) -> None:
    text = file.read_text(encoding="utf-8")
    assert yaml_nodes.parse(text).data == yaml.safe_load(text)


def test_scalars_anchors_and_merge_keys() -> None:
    text = ("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nd: [2026-01-02, yes, ~, 1.5, '1', !!binary aGk=]\n"
            "e: &e [1, 2]\nf: *e\n")
    doc = yaml_nodes.parse(text)
    assert doc.data == yaml.safe_load(text)
    assert doc.data["f"] is doc.data["e"]  # an alias is the anchor's object, as PyYAML builds it
    assert doc.lines[("c", "y")] == 4 and doc.lines[("d", "2")] == 5 and doc.lines[("base", "x")] == 1


def test_expansion_applies_to_values_only_with_their_path() -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    def expand(text: str, path: tuple[str, ...]) -> str:
        seen.append((text, path))
        return text.replace("${X}", "x")

    doc = yaml_nodes.parse("${X}: a\nb:\n  - ${X}-1\n", expand)
    assert doc.data == {"${X}": "a", "b": ["x-1"]} and seen == [("${X}-1", ("b", "0"))]


@pytest.mark.parametrize(("text", "message", "line"), [
    ("a: [1, 2\n", "did not find expected ',' or ']'", 2),
    ("a: !!int one\n", "'one' does not fit its tag tag:yaml.org,2002:int", 1),
    ("a: !!python/object:os.system x\n", "tag tag:yaml.org,2002:python/object:os.system is not supported", 1),
    ("a: !!set {x}\n", "tag tag:yaml.org,2002:set is not supported", 1),
    ("? [a]\n: 1\n", "a mapping key is itself a mapping or list", 1),
    ("a: 1\n---\nb: 2\n", "more than one document", 2),
    ("x: &x {a: *x}\n", "alias *x is undefined or refers to a collection that contains it", 1),
    ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", f"nested deeper than {MAX_DEPTH} levels", 1),
    ("c: <<\n", "tag tag:yaml.org,2002:merge is not supported", 1),
    ("a: 1\nb: {<<: [1]}\n", "a merge key (<<) takes a mapping or a list of mappings", 2),
])
def test_refused(text: str, message: str, line: int) -> None:
    with pytest.raises(yaml_nodes.YamlProblem) as info:
        yaml_nodes.parse(text)
    assert message in info.value.message and info.value.line == line


def test_alias_bomb_refused() -> None:
    levels = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(6)]
    with pytest.raises(yaml_nodes.YamlProblem, match="values once aliases are expanded"):
        yaml_nodes.parse("\n".join(levels) + "\n")
