"""Fuzzing the rules loader (broker/rules_source.py load_rules, broker/rules/schema.py): random YAML documents,
structural mutations of the shipped rules files, and byte-level noise in their text. A rules file either
loads (and then compiles and evaluates without error) or is refused with a ConfigError naming the problem;
never another exception, which `sts-broker check` would print as a traceback and a hot reload would turn
into a 500 for the request that noticed the change."""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import BrokerError, ConfigError
from broker.rules.evaluate import compiled_of, evaluate
from broker.rules_source import load_rules
from tests.factories import identity
from tests.security._fuzz_support import REPO, fuzz_settings

RULE_FILES = sorted([*REPO.glob("examples/**/rules*.yaml"), *REPO.glob("examples/rules/*.yaml"),
                     *REPO.glob("tests/*/rules.yaml"), REPO / "broker" / "devstack" / "demo_rules.yaml"])
EXAMPLES = [yaml.safe_load(p.read_text()) for p in RULE_FILES]
PEOPLE = [identity(), identity(groups=(), email=None, email_verified=None, claims={}),
          identity(idp="okta", groups=("aws-platform-admins", "contractors", "developers"), mfa=True,
                   claims={"department": ("a/b", "\u212a", "x" * 300), "plan": ("pro",)})]

KEYS = st.sampled_from(["version", "rules", "id", "idps", "when", "grant", "role", "effect", "deny", "allow",
                        "require_mfa", "duration", "session_name", "tags", "policy", "policy_arns", "via",
                        "provider", "accounts", "defaults", "groups", "email", "contains", "in", "equals",
                        "matches", "regexp", "any", "all", "not", "token", "source_identity", "claims.plan",
                        "transitive_tags", "roles_from", "Statement", "Version"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True),
                    st.text(max_size=40), st.dates(), st.datetimes(),
                    st.sampled_from(["{email}", "{claims.x}", "{email|lower}", "{", "}", "{{}}", "${NOPE}", "[a-",
                                     "(?P<x", "1h", "0s", "13h", "-1h", "arn:aws:iam::111122223333:role/X",
                                     "arn:aws:iam::*:role/*", "saml", "passthrough", "web_identity"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(KEYS, st.text(max_size=10), st.integers(), st.booleans()),
                                                 inner, max_size=4)), max_leaves=16)
YAML_SNIPPETS = ["&a ", "*a", "*nope", "<<: *a\n", "!!binary ", "!!set ", "!!python/object:os.system ", "? ",
                 "\t", "%YAML 1.1\n", "---\n", "...\n", "- ", ": ", "{", "[", "'", '"', "|\n", ">-\n", "#",
                 "\ufeff", "\x00", "\x85", "\u2028", "${BROKER_UNSET_VARIABLE}", "!!int ", "!!float .nan ", "~"]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-rules-") as tmp:
        yield Path(tmp)


def _judge(workdir: Path, data: bytes) -> None:
    file = workdir / "rules.yaml"
    file.write_bytes(data)
    try:
        rules = load_rules(file)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    compiled_of(rules)
    for person in PEOPLE:
        with contextlib.suppress(BrokerError):  # a refusal the rules decided is not a crash
            evaluate(rules, person)


def _mutate(node: Any, path: list[int], op: str, value: Any) -> Any:
    """Follow `path` (indices into the children, modulo their count) and replace, delete or add there."""
    if not path or not isinstance(node, (dict, list)) or not node:
        return value if op == "replace" else node
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    key = keys[path[0] % len(keys)]
    if len(path) == 1 and op == "delete":
        del node[key]
    elif len(path) == 1 and op == "add":
        if isinstance(node, dict):
            node[str(value)[:20] if not isinstance(value, (str, int)) else value] = copy.deepcopy(node[key])
        else:
            node.append(value)
    else:
        node[key] = _mutate(node[key], path[1:], op, value)
    return node


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()


@fuzz_settings(50)
@given(doc=VALUES)
def test_rules_random_documents(workdir: Path, doc: Any) -> None:
    _judge(workdir, _dump(doc))


@fuzz_settings(50)
@given(example=st.sampled_from(range(len(EXAMPLES))), edits=st.lists(st.tuples(
    st.lists(st.integers(0, 50), min_size=1, max_size=6), st.sampled_from(["replace", "delete", "add"]), VALUES),
    min_size=1, max_size=4))
def test_rules_mutated_examples(workdir: Path, example: int, edits: list[tuple[list[int], str, Any]]) -> None:
    data = copy.deepcopy(EXAMPLES[example])
    for path, op, value in edits:
        data = _mutate(data, path, op, value)
    _judge(workdir, _dump(data))


@fuzz_settings(80)
@given(example=st.sampled_from(RULE_FILES), edits=st.lists(st.tuples(
    st.floats(0, 1, allow_nan=False), st.one_of(st.sampled_from(YAML_SNIPPETS).map(str.encode), st.binary(max_size=8)),
    st.integers(0, 12)), min_size=1, max_size=4))
def test_rules_text_noise(workdir: Path, example: Path, edits: list[tuple[float, bytes, int]]) -> None:
    data = example.read_bytes()
    for where, snippet, cut in edits:
        at = int(where * len(data))
        data = data[:at] + snippet + data[at + cut:]
    _judge(workdir, data)


@pytest.mark.parametrize("text", [
    b"version: 1\nrules: []\n# caf\xe9 (latin-1, as an editor might save it)\n",
    b"version: 1\nrules: &a [*a]\n",
    b"version: 1\nrules: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    b"version: 1\nrules: []\nx: &x {a: &y {b: *x}}\n",
    b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    b"version: 1\nrules: []\n",
    b"version: !!int one\nrules: []\n",
    b"version: 1\nrules: [{id: !!bool maybe}]\n",
    b"version: 1\nrules: [{id: !!timestamp 2026-13-45}]\n",
    b"version: 1\nrules: [{id: !!timestamp soon}]\n",
], ids=["latin-1", "self-alias", "deep", "alias-cycle", "alias-bomb", "int-tag", "bool-tag", "timestamp-tag",
        "timestamp-tag-text"])
def test_rules_loader_refuses_hostile_yaml(workdir: Path, text: bytes) -> None:
    """What the fuzz found (bytes that are not UTF-8, an alias that contains itself, deep nesting, explicit
    tags whose value does not fit: PyYAML raises ValueError, KeyError or AttributeError for those, not a
    YAMLError) and the alias bomb beside them: each a ConfigError naming the file, fast."""
    file = workdir / "hostile.yaml"
    file.write_bytes(text)
    started = datetime.now()
    with pytest.raises(ConfigError) as info:
        load_rules(file)
    assert str(file) in info.value.problems[0]
    assert (datetime.now() - started).total_seconds() < 2


def test_rules_examples_load() -> None:
    """The fuzz seeds are real rules files that load."""
    assert len(RULE_FILES) >= 5
    for file in RULE_FILES:
        load_rules(file)
