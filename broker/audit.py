"""Audit events as JSON lines. Field names that could carry a secret are refused by construction,
so a careless call fails in tests instead of leaking in production."""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO

AuditValue = str | int | bool | None | list[str] | dict[str, str]
_SECRET_NAMES = re.compile(r"(secret|password|token|credential|code|verifier|assertion|cookie|session_key)",
                           re.IGNORECASE)
# Names that match the pattern above but carry no secret.
_ALLOWED = {"reason_code", "status_code", "error_code"}


@functools.lru_cache(maxsize=512)
def _looks_secret(name: str) -> bool:
    """Field names are few and fixed in the code, so each is judged once."""
    return bool(_SECRET_NAMES.search(name)) and name not in _ALLOWED


class AuditLog:
    def __init__(self, path: str = "-") -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stream: IO[str] = sys.stdout if path == "-" else open(path, "a", encoding="utf-8")  # noqa: SIM115
        # Called with every event (metrics count them); they see the same secret-free fields.
        self.observers: list[Callable[[str, Mapping[str, AuditValue]], None]] = []

    def __repr__(self) -> str:
        return f"AuditLog(path={self._path!r})"

    def event(self, event: str, **fields: AuditValue) -> None:
        for name in fields:
            if _looks_secret(name):
                raise ValueError(f"audit field {name!r} looks like a secret; audit events never carry secrets")
        record: dict[str, AuditValue] = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        for observer in self.observers:
            observer(event, fields)

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
