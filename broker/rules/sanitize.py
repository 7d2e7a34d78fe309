"""Make template output valid for STS, deterministically, or refuse it.

- RoleSessionName and SourceIdentity must match [A-Za-z0-9_+=,.@-]{2,64}: every other character becomes
  '-'; a value longer than 64 keeps its first 55 characters plus '-' and 8 hex digits of the SHA-256 of the
  original (two long names never collide by truncation); fewer than 2 usable characters is refused, because
  padding would make distinct people look alike. (':' is replaced, so the reserved 'aws:' prefix can never
  come out.)
- Session tag values may hold letters, digits, separators and _.:/=+-@, up to 256 characters: every other
  character becomes '-', and a longer value keeps 247 characters plus '-' and 8 hex digits.
- A claim value inserted into a session policy is refused unless it is made only of [A-Za-z0-9_+=,.@-]:
  rewriting it could make two people share a resource path, and '*', '?' or '${' would widen the policy.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_INVALID = re.compile(r"[^A-Za-z0-9_+=,.@-]")
STS_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")
POLICY_VALUE = re.compile(r"^[A-Za-z0-9_+=,.@-]+$")
MAX_NAME, MAX_TAG_VALUE = 64, 256
TAG_PUNCTUATION = set("_.:/=+-@")


class UnusableName(ValueError):
    pass


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def sts_name(value: str) -> str:
    cleaned = _INVALID.sub("-", value)
    if len(cleaned) > MAX_NAME:
        cleaned = f"{cleaned[:55]}-{_digest(value)}"
    if len(cleaned) < 2 or cleaned.strip("-") == "":
        raise UnusableName("the value renders to fewer than 2 usable characters")
    return cleaned


def _tag_char_ok(ch: str) -> bool:
    return ch.isalnum() or ch in TAG_PUNCTUATION or unicodedata.category(ch).startswith("Z")


def tag_value(value: str) -> str:
    cleaned = "".join(ch if _tag_char_ok(ch) else "-" for ch in value)
    if len(cleaned) > MAX_TAG_VALUE:
        cleaned = f"{cleaned[:247]}-{_digest(value)}"
    return cleaned


def tag_key_ok(key: str) -> bool:
    return 1 <= len(key) <= 128 and all(_tag_char_ok(ch) for ch in key) and not key.lower().startswith("aws:")


def policy_value(value: str) -> str:
    if not POLICY_VALUE.match(value):
        raise UnusableName("a value inserted into a session policy may only contain [A-Za-z0-9_+=,.@-]")
    return value
