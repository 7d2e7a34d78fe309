"""Make template output valid for STS, deterministically and without merging two values, or refuse it.

Escape (quoted-printable style): a character outside the plain set of the destination becomes '=' and two
upper-case hex digits per byte of its UTF-8 form (lone surrogates included, 'surrogatepass'); '=' itself is
never plain, so it becomes '=3D'. Every '=' in an escaped value therefore starts exactly one "=XX" group and
the value decodes back to the original: two different values never give the same escaped text. Plain ASCII
(alice@example.com) is unchanged. The output is ASCII only, so no Unicode case mapping or normalisation on
the AWS side (IgnoreCase condition operators) can merge two values either; ASCII case folding of an output
folds the input's ASCII letters and nothing else (the hex digits are case-blind when decoded).

- RoleSessionName and SourceIdentity: plain is [A-Za-z0-9_+,.@-] (the STS set [A-Za-z0-9_+=,.@-] without
  the escape); ':' is escaped, so the reserved 'aws:' prefix can never come out. Fewer than 2 characters, or
  a value with no letter or digit of any script, is refused (it names nobody; padding would invent names).
- Session tag values: plain is ASCII letters, digits, space and _.:/+@- (AWS's tag set without '='); a
  space at either end is escaped too ('=20'), since ends are invisible and trimmed by many tools.
- Longer than the limit (64; 32 for a federated user's Name; 256): the escaped text cut at an escape
  boundary, then '==' (which an escaped value never contains, so a shortened value never equals an
  unshortened one), then 26 characters of base32 (a-z2-7, 130 bits) of the SHA-256 of the original's
  UTF-8: a second value with the same output needs a SHA-256 second preimage on 130 bits, and base32
  survives case-insensitive comparison intact.
- A claim value inserted into a session policy is refused unless it is made only of [A-Za-z0-9_+=,.@-]:
  rewriting it could make two people share a resource path, and '*', '?' or '${' would widen the policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata

# \A...\Z: anchored whatever method a caller uses ('$' would also match before a trailing newline).
STS_NAME = re.compile(r"\A[A-Za-z0-9_+=,.@-]{2,64}\Z")
POLICY_VALUE = re.compile(r"\A[A-Za-z0-9_+=,.@-]+\Z")
TAG_VALUE = re.compile(r"\A[A-Za-z0-9 _.:/=+@-]{0,256}\Z")
_NAME_ESCAPED = re.compile(r"[^A-Za-z0-9_+,.@-]+")
_TAG_ESCAPED = re.compile(r"[^A-Za-z0-9 _.:/+@-]+")
_EDGE_SPACES = re.compile(r"\A +| +\Z")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
MAX_NAME, MAX_TAG_VALUE = 64, 256
FEDERATED_NAME = 32  # GetFederationToken's Name: the same characters, 2..32 of them
LONG_MARK, DIGEST_CHARS = "==", 26
TAG_PUNCTUATION = set("_.:/=+-@")


class UnusableName(ValueError):
    pass


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")  # injective on every str, lone surrogates included


def _escape_run(match: re.Match[str]) -> str:
    return "".join(f"={byte:02X}" for byte in _utf8(match.group()))


def _escape(value: str, outside: re.Pattern[str]) -> str:
    return value if outside.search(value) is None else outside.sub(_escape_run, value)  # plain: no copy


def digest(value: str) -> str:
    """130 bits of SHA-256 in lower-case base32: only [a-z2-7], valid in names and tag values alike."""
    return base64.b32encode(hashlib.sha256(_utf8(value)).digest()).decode("ascii")[:DIGEST_CHARS].lower()


def _shorten(escaped: str, original: str, limit: int) -> str:
    if len(escaped) <= limit:
        return escaped
    keep = limit - len(LONG_MARK) - DIGEST_CHARS
    split = escaped.rfind("=", keep - 2, keep)  # an "=XX" group that would be cut goes whole
    return escaped[:keep if split == -1 else split] + LONG_MARK + digest(original)


def sts_name(value: str, limit: int = MAX_NAME) -> str:
    """RoleSessionName / SourceIdentity (or, with limit 32, a federated user's Name) for `value`: distinct
    values give distinct names."""
    escaped = _escape(value, _NAME_ESCAPED)
    if len(escaped) < 2 or not (_ASCII_ALNUM.search(value) or any(map(str.isalnum, value))):
        raise UnusableName("the value renders to fewer than 2 characters or has no letter or digit")
    return _shorten(escaped, value, limit)


def tag_value(value: str) -> str:
    """A session tag value for `value`: distinct values give distinct tag values."""
    escaped = _escape(value, _TAG_ESCAPED)
    escaped = _EDGE_SPACES.sub(lambda m: "=20" * len(m.group()), escaped)
    return _shorten(escaped, value, MAX_TAG_VALUE)


def _tag_char_ok(ch: str) -> bool:
    return ch.isalnum() or ch in TAG_PUNCTUATION or unicodedata.category(ch).startswith("Z")


def tag_key_ok(key: str) -> bool:
    return 1 <= len(key) <= 128 and all(_tag_char_ok(ch) for ch in key) and not key.lower().startswith("aws:")


def policy_value(value: str) -> str:
    if not POLICY_VALUE.fullmatch(value):
        raise UnusableName("a value inserted into a session policy may only contain [A-Za-z0-9_+=,.@-]")
    return value
