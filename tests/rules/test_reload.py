"""A changed rules file is picked up; a broken one is refused and the last good rules keep serving."""

from __future__ import annotations

import json
import os
from pathlib import Path

from broker.audit import AuditLog
from broker.rules.evaluate import evaluate
from broker.rules_source import RulesSource, load_rules
from tests.factories import identity

GOOD = "version: 1\nrules:\n  - id: r\n    grant: [{role: 'arn:aws:iam::111122223333:role/%s'}]\n"


def test_reload_and_keep_last_good(tmp_path: Path) -> None:
    file, log = tmp_path / "rules.yaml", tmp_path / "audit.log"
    file.write_text(GOOD % "One")
    now = [0.0]
    source = RulesSource(file, load_rules(file), AuditLog(str(log)), check_every=2.0, clock=lambda: now[0])

    def roles() -> list[str]:
        return [g.role_arn.rsplit("/", 1)[1] for g in evaluate(source.current, identity()).grants]

    assert roles() == ["One"]
    file.write_text(GOOD % "Two")
    os.utime(file, ns=(1, 10**18))
    assert roles() == ["One"]  # not yet time to look
    now[0] = 3.0
    assert roles() == ["Two"]
    file.write_text("version: 1\nrules:\n  - id: r\n    grant: [{role: not-an-arn}]\n")
    os.utime(file, ns=(1, 2 * 10**18))
    now[0] = 6.0
    assert roles() == ["Two"]  # the broken file is refused, the last good rules serve
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["rules_reloaded", "rules_reload_failed"]
    assert "rules[r].grant.0.role" in events[1]["problems"][0] and events[1]["kept_rules"] == 1
