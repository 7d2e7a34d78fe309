"""The client address: the TCP peer, or behind trusted load balancers the address X-Forwarded-For names.

The client address keys the rate limits and fills the audit log's `client`, so it is always an IP address
in one normal form (`ipaddress`'s compressed spelling; an IPv4-mapped IPv6 address as its IPv4 address;
no IPv6 zone): a client must not be able to pick arbitrary strings (`unknown`, 5,000 characters, the same
address spelled many ways) and so get a rate-limit counter of its own per request.

Behind `sts-broker serve --forwarded-allow-ips` the header is read right to left: each hop appends the
address it saw, so the first address not in the trusted set is the client. A hop that is not an IP
address (`unknown`, `_hidden`, a name, garbage) ends the walk: the client is then the nearest trusted
proxy that reported it (with one load balancer, the TCP peer), never the string itself. uvicorn's own
proxy-header handling is not used: it takes any string as the client and silently ignores a malformed
`--forwarded-allow-ips` entry.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HOPS = 32  # a walk through more trusted proxies than this stops at the last one reached
MAX_ENTRY = 64  # longer than any spelling of an address with a port: not an address


def _plain(ip: IpAddress) -> IpAddress:
    """One spelling per address: IPv4-mapped IPv6 as IPv4, and no IPv6 zone (`fe80::1%1`, `%2` ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
    return ip


def parse_hop(entry: str) -> IpAddress | None:
    """One X-Forwarded-For entry: an address, optionally `v4:port` or `[v6]:port`; None if it is not one."""
    entry = entry.strip()
    if not entry or len(entry) > MAX_ENTRY:
        return None
    return _parse_short(entry)


@functools.lru_cache(maxsize=4096)  # keys are at most MAX_ENTRY characters: the cache stays small
def _parse_short(entry: str) -> IpAddress | None:
    if entry.startswith("["):
        end = entry.find("]")
        rest = entry[end + 1:] if end > 0 else "x"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        entry = entry[1:end]
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if not port.isdigit():
            return None
        entry = host
    try:
        return _plain(ipaddress.ip_address(entry))
    except ValueError:
        return None


def parse_trusted(spec: str) -> tuple[IpNetwork, ...]:
    """`--forwarded-allow-ips`: comma-separated addresses or CIDR networks. Anything else is an error (the
    message names the entry): a typo must not leave a deployment trusting nobody, or everybody."""
    networks: list[IpNetwork] = []
    for raw in spec.split(","):
        item = raw.strip()
        if item == "*":
            raise ValueError("'*' would let every client choose its own address; name the load balancers' "
                             "addresses or networks (0.0.0.0/0,::/0 if every peer really is one)")
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item[:80]!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


class ForwardedFor:
    """ASGI middleware: from a trusted peer, scope["client"] becomes the client X-Forwarded-For names (an IP
    address, normal form), and scope["scheme"] follows X-Forwarded-Proto when it is http or https."""

    def __init__(self, app: ASGIApp, trusted: Iterable[IpNetwork]) -> None:
        self.app, self.trusted = app, tuple(trusted)
        self._trusts = functools.lru_cache(maxsize=4096)(self._compute_trust)

    def _compute_trust(self, ip: IpAddress) -> bool:
        return any(ip in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            peer = parse_hop(str(scope["client"][0]))
            if peer is not None and self._trusts(peer):
                self._rewrite(scope, peer)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope, peer: IpAddress) -> None:
        hops: list[bytes] = []
        proto: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops.append(value)
            elif name == b"x-forwarded-proto":
                proto = value
        if proto is not None and proto.strip() in (b"http", b"https"):
            scope["scheme"] = proto.strip().decode("ascii")
        if hops:
            client = self.client_of(b",".join(hops).decode("latin-1"), peer)
            scope["client"] = (str(client), 0)

    def client_of(self, forwarded_for: str, peer: IpAddress) -> IpAddress:
        """Right to left: the first hop not trusted is the client; a hop that is not an address stops the
        walk at the nearest trusted proxy (`current`)."""
        current = peer
        entries = forwarded_for.rsplit(",", MAX_HOPS)[-MAX_HOPS:]
        for entry in reversed(entries):
            hop = parse_hop(entry)
            if hop is None:
                return current
            if not self._trusts(hop):
                return hop
            current = hop
        return current


def client_host(scope: Scope) -> str:
    """The client address every part of the web layer uses (rate limits, audit): the TCP peer, or what
    ForwardedFor put there; both are IP addresses."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
