"""An IdP's signing keys, cached for the lifetime its Cache-Control allows (bounded), refreshed on an
unknown kid at most once per `min_refresh` seconds, so a flood of made-up kids costs one fetch."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.connectors.fetch import fetch_json
from broker.errors import UpstreamUnavailable

_MAX_AGE = re.compile(r"max-age=(\d+)")


def cache_lifetime(headers: httpx.Headers, *, default: float, low: float, high: float) -> float:
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    seconds = float(match.group(1)) if match else default
    return min(max(seconds, low), high)


class JwksCache:
    def __init__(
        self, http: httpx.AsyncClient, uri: str, *, timeout: float, max_bytes: int = 64 * 1024,
        min_refresh: float = 30.0, default_ttl: float = 3600.0, max_ttl: float = 86400.0,
        clock: Callable[[], float] = time.monotonic, failure_backoff: float = 5.0,
    ) -> None:
        self._http, self.uri, self._timeout, self._max_bytes = http, uri, timeout, max_bytes
        self._min_refresh, self._default_ttl, self._max_ttl = min_refresh, default_ttl, max_ttl
        self._clock = clock
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = -1e18
        self._expires_at = -1e18
        # After a failed fetch, wait this long before the next: a flood while the IdP is down costs one call.
        self._failure_backoff = failure_backoff
        self._failed_at = -1e18
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_set(self, kid: str | None) -> KeySet:
        async with self._lock:
            now = self._clock()
            fresh = now < self._expires_at
            known = kid is None or kid in self._kids
            may_refresh = now - self._fetched_at >= self._min_refresh
            if self._keys is None or not fresh or (not known and may_refresh):
                await self._refresh_or_back_off(now, fresh)
            assert self._keys is not None
            return self._keys

    async def _refresh_or_back_off(self, now: float, fresh: bool) -> None:
        if now - self._failed_at < self._failure_backoff:
            if self._keys is not None and fresh:
                return  # an unknown kid: the signature check refuses it with the keys we have
            raise UpstreamUnavailable(f"JWKS at {self.uri} failed moments ago; not asking again yet",
                                      reason="jwks_backoff")
        try:
            await self._refresh(now)
        except UpstreamUnavailable:
            self._failed_at = now
            raise

    async def _refresh(self, now: float) -> None:
        document, headers = await fetch_json(self._http, self.uri, seconds=self._timeout, max_bytes=self._max_bytes)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise UpstreamUnavailable(f"JWKS at {self.uri} is not a valid key set", reason="jwks_invalid") from None
        self.fetches += 1
        self._keys = keys
        self._kids = frozenset(k.kid for k in keys.keys if k.kid)
        self._fetched_at = now
        self._expires_at = now + cache_lifetime(headers, default=self._default_ttl, low=60, high=self._max_ttl)
