"""Fetch small documents from identity providers: discovery, JWKS, SAML metadata. Bounded in time and size."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from broker.errors import UpstreamUnavailable
from broker.safe_json import JsonRefused, loads_object
from broker.settings import https_or_loopback


async def fetch_bytes(http: httpx.AsyncClient, url: str, *, seconds: float, max_bytes: int,
                      reasons: str = "idp") -> tuple[bytes, httpx.Headers]:
    """GET url without following redirects (a redirect could lead anywhere), within `seconds` in all and
    `max_bytes`. Failures are UpstreamUnavailable with reason codes `<reasons>_http_error`, `_too_large`,
    `_timeout`, `_unreachable`."""
    try:
        async with asyncio.timeout(seconds), http.stream("GET", url, timeout=seconds,
                                                         follow_redirects=False) as response:
            if response.status_code != 200:
                raise UpstreamUnavailable(f"GET {url} answered {response.status_code}", reason=f"{reasons}_http_error")
            return await read_capped(response, url, max_bytes=max_bytes, reasons=reasons), response.headers
    except (TimeoutError, httpx.TimeoutException):
        raise UpstreamUnavailable(f"GET {url} timed out", reason=f"{reasons}_timeout") from None
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"GET {url}: {type(exc).__name__}", reason=f"{reasons}_unreachable") from None


async def read_capped(response: httpx.Response, url: str, *, max_bytes: int, reasons: str = "idp") -> bytes:
    """A streamed response's body, refused (`<reasons>_too_large`) as soon as it passes max_bytes."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise UpstreamUnavailable(f"{url}: larger than {max_bytes} bytes", reason=f"{reasons}_too_large")
    return bytes(body)


def parse_document(body: bytes, url: str) -> dict[str, Any]:
    """A JSON object from an IdP, parsed with `safe_json`'s limits (depth, duplicate names, NaN)."""
    try:
        return loads_object(body)
    except JsonRefused as exc:
        raise UpstreamUnavailable(f"{url}: {exc}", reason="idp_bad_answer") from None


async def fetch_json(http: httpx.AsyncClient, url: str, *, seconds: float, max_bytes: int) -> tuple[
        dict[str, Any], httpx.Headers]:
    """A JSON object and the response headers (JWKS caching reads Cache-Control)."""
    body, headers = await fetch_bytes(http, url, seconds=seconds, max_bytes=max_bytes)
    return parse_document(body, f"GET {url}"), headers


async def discover(http: httpx.AsyncClient, issuer: str, *, seconds: float) -> dict[str, Any]:
    """The issuer's OIDC discovery document. Its issuer must be exactly the configured one (OIDC Discovery
    4.3) and its jwks_uri https (plain http only on loopback)."""
    url = f"{issuer}/.well-known/openid-configuration"
    doc, _ = await fetch_json(http, url, seconds=seconds, max_bytes=64 * 1024)
    if doc.get("issuer") != issuer:
        raise UpstreamUnavailable(f"discovery issuer {str(doc.get('issuer'))[:100]!r} != configured issuer",
                                  reason="discovery_issuer_mismatch")
    try:
        doc["jwks_uri"] = https_or_loopback(str(doc["jwks_uri"]))
    except (KeyError, ValueError):
        raise UpstreamUnavailable("discovery has no acceptable jwks_uri", reason="idp_bad_answer") from None
    return doc
