"""The bad combinations `sts-broker rules check` refuses at load, with the path and a clear message: a chain of
two hops, a chained duration of two hours, a chain from a role no rule grants (what cannot be known at load:
whether a given person has the hub, is refused at issue time: test_paths_flows.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main

HEAD = """version: 1
rules:
  - id: hub
    grant:
      - role: arn:aws:iam::111122223333:role/Hub
  - id: spokes
    grant:
"""


@pytest.mark.parametrize(("grants", "message"), [
    ("""      - {role: "arn:aws:iam::444455556666:role/A", via: assume_role, from: "arn:aws:iam::111122223333:role/Hub"}
      - {role: "arn:aws:iam::444455556666:role/B", via: assume_role, from: "arn:aws:iam::444455556666:role/A"}
""", "rules[spokes].grant.1: from: arn:aws:iam::444455556666:role/A is granted via assume_role: one hop only"),
    ("""      - {role: "arn:aws:iam::444455556666:role/A", via: assume_role, from: "arn:aws:iam::111122223333:role/Hub",
         duration: 2h}
""", "rules[spokes].grant.0: a chained grant (from:) lasts at most 1h: AWS caps role chaining at one hour"),
    ("""      - {role: "arn:aws:iam::444455556666:role/A", via: assume_role,
         from: "arn:aws:iam::111122223333:role/Nope"}
""", "rules[spokes].grant.0: from: arn:aws:iam::111122223333:role/Nope is granted by no rule of this file"),
], ids=["two-hops", "chained-2h", "unknown-hub"])
def test_rules_check_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str], grants: str, message: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HEAD + grants)
    assert main(["rules", "check", str(rules)]) == 1
    assert message in capsys.readouterr().err
