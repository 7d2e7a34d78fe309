"""Make template output valid for STS names, deterministically.

RoleSessionName and SourceIdentity must match [A-Za-z0-9_+=,.@-]{2,64}. The rule: every other character
becomes '-'; a value longer than 64 keeps its first 55 characters plus '-' and 8 hex digits of the
SHA-256 of the original (so two long names never collide by truncation); a value shorter than 2 is
refused, because padding would make distinct people look alike. (':' is replaced, so the reserved
'aws:' prefix can never come out.)
"""

from __future__ import annotations

import hashlib
import re

_INVALID = re.compile(r"[^A-Za-z0-9_+=,.@-]")
STS_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")
MAX_NAME = 64


class UnusableName(ValueError):
    pass


def sts_name(value: str) -> str:
    cleaned = _INVALID.sub("-", value)
    if len(cleaned) > MAX_NAME:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned[:55]}-{digest}"
    if len(cleaned) < 2 or cleaned.strip("-") == "":
        raise UnusableName("the value renders to fewer than 2 usable characters")
    return cleaned
