"""`sts-broker rules check | explain | test`: the rules file's tools (file I/O here; the logic is in rules/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from broker.config import load_idps, read_yaml, validation_problems
from broker.config_hints import shown_path
from broker.connectors.saml_config import SamlIdpConfig
from broker.errors import ConfigError
from broker.rules.evaluate import evaluate
from broker.rules.explain import as_text
from broker.rules.lint import lint
from broker.rules.schema import IdentitySpec, RuleSet, TestCase
from broker.rules.testing import FIXED_NOW, identity_of, run_cases
from broker.rules_source import load_rules


def _print_problems(problems: list[str]) -> None:
    print(f"{len(problems)} problem(s):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _load(file: Path) -> RuleSet | None:
    try:
        return load_rules(file)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None


def check(file: Path, idp_configs: Path | None) -> int:
    rules = _load(file)
    if rules is None:
        return 1
    provided, saml_without_aws = None, None
    if idp_configs is not None:
        try:
            idps = load_idps(idp_configs, need_env=False)
        except ConfigError as exc:
            _print_problems(exc.problems)
            return 1
        provided = {i: cfg.claims_provided() for i, cfg in idps.items()}
        saml_without_aws = {i for i, cfg in idps.items()
                            if isinstance(cfg, SamlIdpConfig) and cfg.aws_passthrough is None}
    data, _, lines = read_yaml(file)
    for finding in lint(rules, provided, saml_without_aws):
        line = next((lines[finding.path[:n]] for n in range(len(finding.path), 0, -1)
                     if finding.path[:n] in lines), None)
        print(f"{file}:{line}: {shown_path(finding.path, data)}: warning: {finding.message}")
    print(f"{file}: OK ({len(rules.rules)} rules, {len(rules.tests)} test cases)")
    return 0


def _identity(path: Path) -> IdentitySpec:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return IdentitySpec.model_validate(data)


def explain(file: Path, identity_file: Path) -> int:
    rules = _load(file)
    if rules is None:
        return 1
    try:
        spec = _identity(identity_file)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"{identity_file}: {exc}", file=sys.stderr)
        return 1
    print(as_text(evaluate(rules, identity_of(spec), now=FIXED_NOW, explain=True)))
    return 0


def _beside(file: Path) -> list[TestCase]:
    """Cases in FILE's `tests:` plus those in FILE.tests.yaml (a list, or a mapping with `tests:`)."""
    sibling = file.with_name(f"{file.stem}.tests.yaml")
    if not sibling.exists():
        return []
    data, problems, lines = read_yaml(sibling)
    if problems:
        raise ConfigError(problems)
    cases: Any = data.get("tests", []) if isinstance(data, dict) else data
    try:
        return TypeAdapter(list[TestCase]).validate_python(cases)
    except ValidationError as exc:
        raise ConfigError(validation_problems(sibling, exc, lines)) from None


def test(file: Path) -> int:
    rules = _load(file)
    if rules is None:
        return 1
    try:
        cases = rules.tests + _beside(file)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return 1
    results = run_cases(rules, cases)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'} {result.name}")
        if not result.passed:
            print("\n".join(f"    {line}" for line in result.diff.splitlines()))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0
