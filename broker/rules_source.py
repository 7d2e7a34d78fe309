"""The rules file as the server sees it: reloaded when it changes on disk, and when a reload fails the
server keeps serving the last good rules (and says so in the audit log)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from broker.audit import AuditLog
from broker.config import read_yaml, validation_problems
from broker.errors import ConfigError
from broker.rules.evaluate import compiled_of
from broker.rules.schema import RuleSet


def load_rules(file: Path) -> RuleSet:
    """The rules file, validated. Raises ConfigError listing all problems (with line numbers)."""
    data, problems, lines = read_yaml(file)
    if problems:
        raise ConfigError(problems)
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(file, exc, lines, model=RuleSet, data=data)) from None


class RulesSource:
    def __init__(self, path: Path, initial: RuleSet, audit: AuditLog, *, check_every: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self._rules, self._audit = path, initial, audit
        self._check_every, self._clock = check_every, clock
        self._checked = clock()
        self._stamp = self._file_stamp()
        compiled_of(initial)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    @property
    def current(self) -> RuleSet:
        if self._clock() - self._checked >= self._check_every:
            self.reload_if_changed()
        return self._rules

    def reload_if_changed(self) -> bool:
        """True when new rules were loaded. A failed load keeps the last good rules."""
        self._checked = self._clock()
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = load_rules(self.path)
            compiled_of(rules)  # compile now, not on the first request that needs it
        except ConfigError as exc:
            self._audit.event("rules_reload_failed", file=str(self.path), problems=exc.problems[:20],
                              kept_rules=len(self._rules.rules))
            return False
        self._rules = rules
        self._audit.event("rules_reloaded", file=str(self.path), rules=len(rules.rules))
        return True
