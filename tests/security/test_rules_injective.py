"""Finding 3 (issue 11): rendering never gives two different claim values one session name, source identity,
tag value or policy value, unless a filter the rules chose says so (ASCII case, ASCII whitespace, the part of
an email before or after '@'); and what it renders is always valid for STS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from broker.rules.grants_build import GrantError, GrantPlan, build
from broker.rules.sanitize import MAX_NAME, MAX_TAG_VALUE, UnusableName, policy_value, sts_name, tag_value
from broker.rules.schema import GrantFields, GrantSpec
from tests.security._rules_support import (
    NAME_PLAIN,
    STS_NAME_AWS,
    TAG_PLAIN,
    TAG_VALUE_ASCII,
    TRAPS,
    ascii_lower,
    ascii_upper,
    check_encoded,
    escaped_length,
    hostile_text,
)

ROLE = "arn:aws:iam::111122223333:role/Tenant"
KAREN, KELVIN_KAREN = "karen@example.com", "\u212aaren@example.com"


def _name_or_none(value: str) -> str | None:
    try:
        return sts_name(value)
    except UnusableName:
        return None


# ---- the sanitizers alone ----------------------------------------------------------------------------------

@settings(max_examples=600, deadline=None)
@given(hostile_text)
@example("\u212aaren@example.com")
@example("=3D")
@example("\ud800x")
@example("x" * 36 + "=E2" + "y" * 60)
@example("aws:admin")
def test_session_names_decode_back_and_are_valid_for_sts(value: str) -> None:
    name = _name_or_none(value)
    if name is None:
        assert escaped_length(value, NAME_PLAIN) < 2 or not any(c.isalnum() for c in value)
        return
    check_encoded(value, name, NAME_PLAIN, MAX_NAME)
    assert STS_NAME_AWS.fullmatch(name) and not name.lower().startswith("aws:")
    assert sts_name(value) == name  # deterministic


@settings(max_examples=600, deadline=None)
@given(hostile_text)
@example(" padded ")
@example("   ")
@example("Cloud & Platform")
@example(" " * 300)
def test_tag_values_decode_back_and_are_valid_for_sts(value: str) -> None:
    tag = tag_value(value)
    check_encoded(value, tag, TAG_PLAIN, MAX_TAG_VALUE)
    assert TAG_VALUE_ASCII.fullmatch(tag), tag


@settings(max_examples=400, deadline=None)
@given(hostile_text, hostile_text)
def test_two_different_values_never_share_a_name_or_tag(a: str, b: str) -> None:
    assume(a != b)
    assert tag_value(a) != tag_value(b)
    name_a, name_b = _name_or_none(a), _name_or_none(b)
    assert name_a is None or name_a != name_b


@settings(max_examples=500, deadline=None)
@given(hostile_text, st.sampled_from(TRAPS), st.sampled_from(TRAPS), st.integers(min_value=0, max_value=400))
def test_a_confusable_swapped_in_never_collides(base: str, one: str, other: str, at: int) -> None:
    """The attack of the finding: the same text with one character swapped for a look-alike."""
    assume(one != other)
    at = min(at, len(base))
    a, b = base[:at] + one + base[at:], base[:at] + other + base[at:]
    assert tag_value(a) != tag_value(b)
    name_a, name_b = _name_or_none(a), _name_or_none(b)
    assert name_a is None or name_a != name_b


def test_plain_emails_are_unchanged() -> None:
    for email in ("alice@example.com", "first.last+aws@sub.example.co.uk", "o_neil-2@example.com"):
        assert sts_name(email) == email and tag_value(email) == email


@pytest.mark.parametrize(("a", "b"), [
    ("a b", "a-b"), ("a?b", "a-b"), ("a b", "a?b"), ("\u212aaren", "?aren"), ("Alice Smith", "Alice-Smith"),
    ("x=3Dy", "x=y"), ("aws:x", "aws-x"), ("\u00e9", "e\u0301"),
])
def test_old_replacement_collisions_are_gone(a: str, b: str) -> None:
    assert sts_name(a) != sts_name(b) and tag_value(a) != tag_value(b)


def test_long_values_keep_130_bits_of_digest() -> None:
    """Over the limit: a prefix, '==', then 26 base32 characters (130 bits); 8 hex digits (32 bits) could be
    brute-forced to a second value with the same name by whoever controls the claim."""
    base = "a" * 100
    names = {sts_name(base + str(i)) for i in range(2000)}
    assert len(names) == 2000
    name = sts_name(base + "1")
    assert len(name) == MAX_NAME and name[:36] == "a" * 36 and name[36:38] == "=="
    assert set(name[38:]) <= set("abcdefghijklmnopqrstuvwxyz234567") and len(name[38:]) == 26


def test_a_shortened_value_never_splits_an_escape() -> None:
    for pad in range(30, 40):
        name = sts_name("x" * pad + "\u212a" * 20)
        check_encoded("x" * pad + "\u212a" * 20, name, NAME_PLAIN, MAX_NAME)


@pytest.mark.parametrize("value", ["alice\n", "alice\r\n", "al*ce", "${aws:username}", "\u212aaren", "a b", ""])
def test_policy_values_must_be_plain(value: str) -> None:
    with pytest.raises(UnusableName):
        policy_value(value)


# ---- through the rules: templates, filters, grants ---------------------------------------------------------

PLACES = ("session_name", "source_identity", "tags", "policy")


def _plan(template: str, place: str) -> GrantPlan:
    """A grant with `template` in one place only (one refusal must not hide what the others render)."""
    fields: dict[str, Any] = {"role": ROLE, "session_name": "fixed-name"}
    if place == "policy":
        fields["policy"] = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::home/{template}/*"}]}
    else:
        fields[place] = {"who": template} if place == "tags" else template
    return GrantPlan.build("r", GrantSpec.model_validate(fields), GrantFields())


def _rendered(template: str, value: str) -> dict[str, Any]:
    claims = {"email": (value,), "v": (value,)}
    out: dict[str, Any] = {}
    for place in PLACES:
        try:
            [grant] = build(_plan(template, place), claims, True, {})
        except GrantError:
            out[place] = None
            continue
        out[place] = {"session_name": grant.session_name, "source_identity": grant.source_identity,
                      "tags": dict(grant.tags), "policy": grant.policy}[place]
    return out


FILTERS: dict[str, Callable[[str], str]] = {"": lambda s: s, "|lower": ascii_lower, "|upper": ascii_upper,
                                             "|strip": lambda s: s.strip(" \t\n\r\v\f")}


@settings(max_examples=300, deadline=None)
@given(hostile_text, hostile_text, st.sampled_from(sorted(FILTERS)))
@example(KAREN, KELVIN_KAREN, "|lower")
@example("STRASSE", "STRA\u00dfE", "|upper")
@example("SIR", "\u017fir", "|upper")
@example("IT", "\u0131t", "|upper")
@example("bob", "bob\u00a0", "|strip")
def test_filters_merge_only_what_they_say(a: str, b: str, name: str) -> None:
    """Two values that the filter's ASCII meaning keeps apart stay apart in every output; whatever renders is
    valid for STS."""
    assume(FILTERS[name](a) != FILTERS[name](b))
    template = f"{{claims.v{name}}}"
    out_a, out_b = _rendered(template, a), _rendered(template, b)
    for field in out_a:
        assert out_a[field] is None or out_a[field] != out_b[field], (field, out_a[field])
    for out in (out_a, out_b):
        for field in ("session_name", "source_identity"):
            assert out[field] is None or STS_NAME_AWS.fullmatch(out[field])
        assert out["tags"] is None or TAG_VALUE_ASCII.fullmatch(out["tags"]["who"])
        if out["policy"] is not None:
            resource = json.loads(out["policy"])["Statement"][0]["Resource"]
            assert resource.startswith("arn:aws:s3:::home/") and "\n" not in resource


def test_kelvin_karen_and_karen_never_share_a_path() -> None:
    """The finding's own case, through `{email|lower}` in every place."""
    karen, kelvin = _rendered("{email|lower}", KAREN), _rendered("{email|lower}", KELVIN_KAREN)
    assert karen["session_name"] == karen["source_identity"] == KAREN and karen["tags"] == {"who": KAREN}
    assert kelvin["session_name"] == kelvin["source_identity"] == "=E2=84=AAaren@example.com"
    assert kelvin["tags"] == {"who": "=E2=84=AAaren@example.com"}
    assert "home/karen@example.com/" in karen["policy"] and kelvin["policy"] is None  # not plain: refused


def test_ascii_filters_do_what_they_say() -> None:
    assert _rendered("{email|lower}", "KAREN@Example.COM")["session_name"] == KAREN  # ASCII case: the rules' choice
    assert _rendered("{email|upper}", "stra\u00dfe@x.de")["session_name"] == "STRA=C3=9FE@X.DE"
    assert _rendered("{email|strip}", " \tkaren@example.com\n")["session_name"] == KAREN
    assert _rendered("{email|strip}", "\u00a0karen@example.com")["session_name"] == "=C2=A0karen@example.com"
