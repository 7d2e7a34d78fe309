"""The token endpoint's form parser gives exactly parse_qsl's pairs and refusals (it replaced parse_qsl for
speed): every body here is judged by both, and a refusal by one must be a refusal by the other."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from broker.errors import BadRequest
from broker.token_exchange import MAX_FIELDS, _pairs

BODIES = [
    b"",
    b"a=1",
    b"a=",
    b"=1",
    b"=",
    b"a=1&b=2",
    b"a=1&a=2",
    b"a=1&&b=2",  # an empty field: strict parsing refuses it
    b"a=1&",
    b"&a=1",
    b"&",
    b"a",
    b"a=1&b",
    b"a=b=c",  # the first = splits
    b"a+b=c+d",
    b"a%20b=c%2Bd",
    b"a=%",
    b"a=%zz",
    b"a=%4",
    b"a=%E2%82%AC",  # a euro sign, percent-encoded UTF-8
    b"a=%FF%FE",  # bad UTF-8 once decoded: U+FFFD, as parse_qsl does
    b"a=%00",
    "a=€".encode(),
    b"a=1;b=2",  # ';' is not a separator
    b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
    b"grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
    b"subject_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    b"x=" + b"%41" * 100,  # short enough to be remembered
    b"x=" + b"%41" * 200,  # decoded without the cache
    b"x=" + b"+" * 300,
    "&".join(f"f{i}=1" for i in range(MAX_FIELDS)).encode(),
    "&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode(),  # one field too many
    "&".join("" for _ in range(MAX_FIELDS + 2)).encode(),  # only separators
]


def reference(body: bytes) -> list[tuple[str, str]] | None:
    """What parse_qsl makes of the body as the endpoint used to call it; None for a refusal."""
    text = body.decode("utf-8")
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS)
    except ValueError:
        return None


def ours(body: bytes) -> list[tuple[str, str]] | None:
    try:
        return _pairs(body)
    except BadRequest as exc:
        assert exc.reason == "form_malformed"
        return None


@pytest.mark.parametrize("body", BODIES, ids=[repr(b[:40]) for b in BODIES])
def test_same_pairs_and_refusals_as_parse_qsl(body: bytes) -> None:
    assert ours(body) == reference(body)


def test_the_corpus_holds_both_outcomes() -> None:
    outcomes = [reference(b) is None for b in BODIES]
    assert any(outcomes) and not all(outcomes)


def test_repeated_short_values_decode_the_same_every_time() -> None:
    body = b"a=%E2%82%AC+x&b=%E2%82%AC+x"
    assert _pairs(body) == _pairs(body) == [("a", "€ x"), ("b", "€ x")]


def test_not_utf8_is_its_own_refusal() -> None:
    with pytest.raises(BadRequest) as refused:
        _pairs(b"grant_type=\xff\xfe")
    assert refused.value.reason == "form_not_utf8"
