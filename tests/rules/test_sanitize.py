from __future__ import annotations

import pytest

from broker.rules.sanitize import STS_NAME, UnusableName, sts_name


# Characters STS does not take are escaped ('=' + hex of each UTF-8 byte), no longer replaced by '-' (which
# gave "Alice Smith" and "Alice-Smith" one session name, and refused every name written in another script).
@pytest.mark.parametrize(("raw", "expected"), [
    ("alice@example.com", "alice@example.com"),
    ("Alice Smith", "Alice=20Smith"),
    ("o'brien/ops", "o=27brien=2Fops"),
    ("日本", "=E6=97=A5=E6=9C=AC"),
    ("aws:admin", "aws=3Aadmin"),
])
def test_replaces_invalid_characters(raw: str, expected: str) -> None:
    if expected.strip("-") == "":
        with pytest.raises(UnusableName):
            sts_name(raw)
    else:
        assert sts_name(raw) == expected


def test_long_values_are_truncated_with_a_digest_and_stay_distinct() -> None:
    a, b = sts_name("x" * 100 + "a"), sts_name("x" * 100 + "b")
    assert len(a) == 64 and a != b and STS_NAME.match(a) and STS_NAME.match(b)
    assert sts_name("x" * 100 + "a") == a  # deterministic


@pytest.mark.parametrize("raw", ["", "a", "-", "!!!"])
def test_unusable(raw: str) -> None:
    with pytest.raises(UnusableName):
        sts_name(raw)
