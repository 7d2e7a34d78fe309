"""Audit events as JSON lines. Field names that could carry a secret are refused by construction,
so a careless call fails in tests instead of leaking in production."""

from __future__ import annotations

import functools
import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import orjson

from broker import request_ids

AuditValue = str | int | bool | None | list[str] | dict[str, str]
_SECRET_NAMES = re.compile(r"(secret|password|token|credential|code|verifier|assertion|cookie|session_key)",
                           re.IGNORECASE)
# Names that match the pattern above but carry no secret.
_ALLOWED = {"reason_code", "status_code", "error_code"}


@functools.lru_cache(maxsize=1024)
def _secret_field(names: tuple[str, ...]) -> str | None:
    """The first field name that could carry a secret. Events have few, fixed field sets (they are written
    in the code), so each set is judged once."""
    return next((n for n in names if _SECRET_NAMES.search(n) and n not in _ALLOWED), None)


def timestamp(now: float | None = None) -> str:
    """datetime.now(UTC).isoformat(timespec="milliseconds") at a third of its cost: the date and time of
    day are formatted once per second."""
    now = time.time() if now is None else now
    second = int(now)
    micros = round((now - second) * 1e6)  # rounded to microseconds first, as datetime does
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_second(second)}.{micros // 1000:03d}+00:00"


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class AuditLog:
    def __init__(self, path: str = "-") -> None:
        self._path = path
        self._lock = threading.Lock()
        # A file gets each line in one write(2) on an unbuffered O_APPEND descriptor: nothing to flush, and
        # lines from several processes sharing the file never interleave.
        self._file: io.FileIO | None = None if path == "-" else io.FileIO(
            path, "a", opener=lambda name, flags: os.open(name, flags, 0o640))
        # Called with every event (metrics count them); they see the same secret-free fields.
        self.observers: list[Callable[[str, Mapping[str, AuditValue]], None]] = []

    def __repr__(self) -> str:
        return f"AuditLog(path={self._path!r})"

    def event(self, event: str, **fields: AuditValue) -> None:
        bad = _secret_field(tuple(fields))
        if bad is not None:
            raise ValueError(f"audit field {bad!r} looks like a secret; audit events never carry secrets")
        record: dict[str, AuditValue] = {"ts": timestamp(), "event": event}
        request_id = request_ids.current.get()
        if request_id is not None:  # the request that caused it (broker/request_ids.py)
            record["request_id"] = request_id
        for name, value in fields.items():
            if value is not None:
                record[name] = value
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)  # compact UTF-8, one line
        if self._file is not None:
            self._write(line)
        else:
            with self._lock:
                sys.stdout.write(line.decode())
                sys.stdout.flush()
        for observer in self.observers:
            observer(event, fields)

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        while data:  # a regular file takes it whole; a pipe may take part of it
            written = self._file.write(data)
            if not written:  # fail closed: an exchange whose audit line cannot be written is not answered
                raise OSError("the audit log took no bytes")
            data = data[written:]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
