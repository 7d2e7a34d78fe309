"""Support for tests/security/test_rules_*.

- A decoder of the broker's escaped names and tag values, written from the documented scheme and sharing no
  code with broker/rules/sanitize.py: if every short output decodes back to its input, no two inputs share an
  output, which is a stronger check than comparing sampled pairs.
- Hostile text for hypothesis: case-mapping traps (Kelvin sign, long s, dotless i, sharp s), confusables,
  combining marks, invisible and odd spaces, lone surrogates, the escape character itself, long values.
- AWS's own patterns for what STS takes, written from the STS documentation.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string

from hypothesis import strategies as st

STS_NAME_AWS = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)  # RoleSessionName, SourceIdentity
# AWS takes [\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}; the broker promises its ASCII part, with no space at either end.
TAG_VALUE_ASCII = re.compile(r"(?![ ])[A-Za-z0-9 _.:/=+@-]{0,256}(?<![ ])", re.ASCII)
HEX = "0123456789ABCDEF"
NAME_PLAIN = set(string.ascii_letters + string.digits + "_+,.@-")
TAG_PLAIN = set(string.ascii_letters + string.digits + " _.:/+@-")
LONG_MARK, DIGEST_CHARS = "==", 26

TRAPS = [
    "\u212a", "K", "k", "\u017f", "s", "S", "\u0131", "i", "I", "\u0130", "\u00df", "ss", "SS", "\ufb00", "ff",
    "\u0430", "a", "\u0301", "\u00e9", "e\u0301", "\u00a0", " ", "\u3000", "\u200b", "\u200d", "\u2028", "\t",
    "\n", "\r", "\x00", "\ud800", "\udfff", "\U0001f600", "\uff41", "=", "=3D", "=3d", "==", "=E2", "-", "?",
    "*", "${", "@", ":", "aws:", "AWS:", "/", "\\", "'", '"', "<", "&",
]
hostile_char = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from(TRAPS))
hostile_text = st.one_of(
    st.lists(hostile_char, max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(TRAPS), st.text(max_size=4)), max_size=20).map("".join),
    st.builds(lambda head, tail: head + tail, st.text(st.sampled_from("abcxyz.@-_"), min_size=30, max_size=300),
              st.lists(hostile_char, max_size=8).map("".join)),
)


def utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def decode(text: str) -> bytes:
    """The bytes an escaped text stands for; fails on anything that is not the documented form."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] == "=":
            pair = text[i + 1:i + 3]
            assert len(pair) == 2 and set(pair) <= set(HEX), f"broken escape at {i} in {text!r}"
            out.append(int(pair, 16))
            i += 3
        else:
            assert text[i].isascii(), text
            out += text[i].encode("ascii")
            i += 1
    return bytes(out)


def digest(value: str) -> str:
    return base64.b32encode(hashlib.sha256(utf8(value)).digest()).decode("ascii")[:DIGEST_CHARS].lower()


def escaped_length(value: str, plain: set[str]) -> int:
    edges = 0 if " " not in plain else len(value) - len(value.strip(" ")) if value.strip(" ") else len(value)
    return sum(1 if ch in plain else 3 * len(utf8(ch)) for ch in value) + 2 * edges


def check_encoded(value: str, out: str, plain: set[str], limit: int) -> None:
    """`out` is `value` in the documented form: the whole escape (decoding back to it), or, only when that is
    over `limit`, a decodable prefix of it + '==' + 26 base32 characters of its SHA-256."""
    assert len(out) <= limit and out.isascii(), out
    if LONG_MARK not in out:
        assert decode(out) == utf8(value)
        assert all(ch in plain or ch == "=" for ch in out)
        return
    assert escaped_length(value, plain) > limit
    prefix, _, tail = out.partition(LONG_MARK)
    assert tail == digest(value) and utf8(value).startswith(decode(prefix))


def ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def ascii_upper(text: str) -> str:
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text)
