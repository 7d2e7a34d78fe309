"""Human durations in config files: 90, "90s", "15m", "8h", "1h30m", "1d"."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+)([dhms])", re.ASCII)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 15m, 1h, 8h")
    if isinstance(value, int):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isascii() and text.isdigit():  # str.isdigit also takes "١٢" and "²"
            return timedelta(seconds=int(text))
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    raise ValueError(f"not a duration: {value!r} (use seconds or text like 15m, 1h, 8h)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
