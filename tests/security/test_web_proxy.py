"""The client address behind trusted proxies, case by case (the serve-level tests are in
tests/flows/test_forwarded.py): always an IP address in one spelling, never the header's string."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.types import Receive, Scope, Send

from broker.web.proxy import MAX_HOPS, ForwardedFor, parse_hop, parse_trusted

LB = ipaddress.ip_address("10.0.0.1")


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    """The wrapped app: client_of never reaches it."""


@pytest.mark.parametrize(("entry", "expected"), [
    ("203.0.113.7", "203.0.113.7"), (" 203.0.113.7 ", "203.0.113.7"), ("203.0.113.7:443", "203.0.113.7"),
    ("::ffff:203.0.113.7", "203.0.113.7"), ("2001:DB8:0:0::1", "2001:db8::1"), ("[2001:db8::1]:8443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"), ("fe80::1%eth0", "fe80::1"), ("[fe80::1%25]:1", "fe80::1"),
])
def test_hops_that_are_addresses(entry: str, expected: str) -> None:
    assert str(parse_hop(entry)) == expected


@pytest.mark.parametrize("entry", ["unknown", "_hidden", "", " ", "x" * 5000, "203.0.113.7:http", "[2001:db8::1",
                                   "[2001:db8::1]x", "2001:db8::1]:80", "203.0.113.007", "1.2.3", "localhost",
                                   "203.0.113.7:", "203.0.113.7/24", "\x00203.0.113.7", "[]:80"])
def test_hops_that_are_not_addresses(entry: str) -> None:
    assert parse_hop(entry) is None


def test_walk_right_to_left() -> None:
    proxy = ForwardedFor(_never_called, parse_trusted("10.0.0.0/8, 192.0.2.5"))
    assert str(proxy.client_of("198.51.100.9", LB)) == "198.51.100.9"
    assert str(proxy.client_of("198.51.100.9, 10.1.2.3, 192.0.2.5", LB)) == "198.51.100.9"
    assert str(proxy.client_of("6.6.6.6, 198.51.100.9, 10.1.2.3", LB)) == "198.51.100.9"  # left of it: forgeable
    assert str(proxy.client_of("198.51.100.9, unknown, 10.1.2.3", LB)) == "10.1.2.3"  # the proxy that said it
    assert str(proxy.client_of("unknown", LB)) == str(LB)
    assert str(proxy.client_of("10.9.9.9", LB)) == "10.9.9.9"  # all trusted: the farthest one
    many = ", ".join(["198.51.100.9"] + ["10.0.0.2"] * (MAX_HOPS + 5))
    assert str(proxy.client_of(many, LB)) == "10.0.0.2"  # bounded walk: stops at the last trusted hop it read


@pytest.mark.parametrize("spec", ["*", "", "10.0.0.1,", "10.0.0.300", "10.0.0.0/33", "lb.example.com", "unix:/x"])
def test_bad_trusted_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_trusted(spec)


def test_trusted_specs() -> None:
    assert [str(n) for n in parse_trusted("127.0.0.1, 10.0.0.0/8,::1,2001:db8::/32, 192.168.1.7/24")] == [
        "127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32", "192.168.1.0/24"]
